"""NetCDF3 fidelity: every variable read through the repository equals netCDF4's raw values, and
xarray opens the repository as it opens the file; bad files are typed errors that commit nothing."""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
import zarr

import icechunk_virtual as iv
from readers import slabs
from readers.errors import CorruptFileError, UnsupportedFeatureError
from readers.netcdf3 import NetCDF3Reader
from readers.registry import open_virtual

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "netcdf3"
CORPUS_FILES = sorted(CORPUS.glob("*.nc")) if CORPUS.is_dir() else []
FORMATS = ["NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA"]


def _ingest(path: Path) -> iv.Repository:
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    iv.ingest(repo, [str(path)], progress=False)
    return repo


def assert_bit_exact(path: Path) -> iv.Repository:
    repo = _ingest(path)
    group = zarr.open_group(repo.readonly_session().store, mode="r")
    with netCDF4.Dataset(path) as nc:
        nc.set_auto_maskandscale(False)
        assert set(group.array_keys()) == set(nc.variables)
        for name, variable in nc.variables.items():
            theirs = np.asarray(variable[...])
            ours = group[name][...]
            assert ours.shape == theirs.shape, name
            assert ours.dtype == theirs.dtype.newbyteorder("="), name
            assert ours.tobytes() == theirs.astype(ours.dtype).tobytes(), f"{path.name}:{name}"
    return repo


def assert_same_dataset(repo: iv.Repository, path: Path) -> None:
    for mask_and_scale in (False, True):
        options = {"mask_and_scale": mask_and_scale, "decode_times": False}
        ours = xr.open_zarr(repo.readonly_session().store, consolidated=False, **options).load()
        with warnings.catch_warnings():  # xarray warns of a NaN fill on integers, and drops it
            warnings.simplefilter("ignore", xr.SerializationWarning)
            theirs = xr.open_dataset(path, engine="netcdf4", **options).load()
        for variable in theirs.variables.values():  # ...which masks nothing: ingest drops it too
            fill = variable.attrs.get("_FillValue")
            if variable.dtype.kind in "iu" and isinstance(fill, float) and np.isnan(fill):
                del variable.attrs["_FillValue"]
        xr.testing.assert_identical(ours, theirs)


@pytest.mark.skipif(not CORPUS_FILES, reason="../shared/corpus/netcdf3 is not beside the checkout")
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_file_is_bit_exact_and_opens_like_the_file(path: Path) -> None:
    assert_same_dataset(assert_bit_exact(path), path)


def _write_every_type(path: Path, file_format: str, records: int) -> None:
    with netCDF4.Dataset(path, "w", format=file_format) as nc:
        nc.setncattr("title", "every type")
        nc.setncattr("numbers", np.array([1.5, 2.5], dtype="f4"))
        nc.createDimension("time", None)
        nc.createDimension("y", 3)
        nc.createDimension("x", 5)
        nc.createDimension("chars", 4)
        types = ["i1", "i2", "i4", "f4", "f8"]
        if file_format == "NETCDF3_64BIT_DATA":
            types += ["u1", "u2", "u4", "i8", "u8"]
        rng = np.random.default_rng(7)
        for kind in types:
            values = (rng.random((records, 3, 5)) * 100).astype(kind)
            fixed = nc.createVariable(f"fixed_{kind}", kind, ("y", "x"), fill_value=False)
            fixed[:] = values[0] if records else 1
            fixed.setncattr("units", "m")
            record = nc.createVariable(f"record_{kind}", kind, ("time", "y", "x"))
            record[:] = values
            record.setncattr("valid_range", np.array([0, 100], dtype=kind))
        text = nc.createVariable("text", "S1", ("time", "chars"))
        text[:] = netCDF4.stringtochar(np.array([f"r{i}" for i in range(records)], dtype="S4"))
        fixed_text = nc.createVariable("fixed_text", "S1", ("y", "chars"))
        fixed_text[:] = netCDF4.stringtochar(np.array([b"ab", b"abcd", b""], dtype="S4"))
        nc.createVariable("scalar", "f8", ())[...] = 3.25
        filled = nc.createVariable("filled", "i2", ("time",), fill_value=-5)
        filled[: max(records - 1, 0)] = 1


@pytest.mark.parametrize("file_format", FORMATS)
@pytest.mark.parametrize("records", [0, 1, 4])
def test_every_type_and_record_layout(tmp_path: Path, file_format: str, records: int) -> None:
    path = tmp_path / "types.nc"
    _write_every_type(path, file_format, records)
    assert_same_dataset(assert_bit_exact(path), path)


@pytest.mark.parametrize("kind", ["i1", "S1", "i2", "f8"])
def test_a_single_record_variable_is_not_padded(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "one.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as nc:
        nc.createDimension("time", None)
        nc.createDimension("x", 3)  # 3 bytes a record for i1 / S1: padding would show
        v = nc.createVariable("v", kind, ("time", "x"))
        v[:] = (np.arange(21).reshape(7, 3) % 100).astype("i1" if kind == "S1" else kind)
    assert_bit_exact(path)


def test_streaming_record_count_is_taken_from_the_file_size(tmp_path: Path) -> None:
    path = tmp_path / "streaming.nc"
    _write_every_type(path, "NETCDF3_CLASSIC", 4)
    data = bytearray(path.read_bytes())
    data[4:8] = b"\xff\xff\xff\xff"
    streaming = tmp_path / "streaming_copy.nc"
    streaming.write_bytes(bytes(data))
    scanned = open_virtual(str(streaming))
    assert scanned.arrays["/record_f8"].shape == (4, 3, 5)
    assert scanned.arrays["/record_f8"].refs.equals(
        open_virtual(str(path)).arrays["/record_f8"].refs
    )


@pytest.mark.parametrize("rows", [64, 61])
def test_large_fixed_variables_are_split_into_slabs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int
) -> None:
    monkeypatch.setattr(slabs, "SLAB_BYTES", 16 * 5 * 8)
    path = tmp_path / "big.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as nc:
        nc.createDimension("y", rows)
        nc.createDimension("x", 5)
        nc.createVariable("v", "f8", ("y", "x"), fill_value=-1.0)[:] = np.arange(
            rows * 5.0
        ).reshape(rows, 5)
    scanned = open_virtual(str(path))
    assert scanned.arrays["/v"].chunk_shape == (16, 5)
    assert scanned.arrays["/v"].refs.num_rows == 4
    assert_bit_exact(path)


def test_bad_files_are_typed_errors_that_commit_nothing(tmp_path: Path) -> None:
    good = tmp_path / "good.nc"
    _write_every_type(good, "NETCDF3_CLASSIC", 4)
    raw = good.read_bytes()
    header_cut = tmp_path / "header_cut.nc"
    header_cut.write_bytes(raw[:200])
    data_cut = tmp_path / "data_cut.nc"
    data_cut.write_bytes(raw[:-100])
    version = tmp_path / "version.nc"
    version.write_bytes(b"CDF\x07" + raw[4:])
    with pytest.raises(CorruptFileError, match="header is truncated"):
        NetCDF3Reader().scan(str(header_cut))
    with pytest.raises(CorruptFileError, match="runs past the end") as caught:
        NetCDF3Reader().scan(str(data_cut))
    assert caught.value.url == str(data_cut) and caught.value.offset
    with pytest.raises(UnsupportedFeatureError, match="version byte 7"):
        NetCDF3Reader().scan(str(version))
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    before = repo.lookup_branch("main")
    for bad, error in ((header_cut, iv.CorruptSourceError), (data_cut, iv.CorruptSourceError),
                       (version, iv.UnsupportedSourceError)):  # fmt: skip
        with pytest.raises(error, match=bad.name):
            iv.ingest(repo, [str(good), str(bad)], progress=False)
    assert repo.lookup_branch("main") == before


def _two_byte_variables(second_name: bytes) -> bytes:
    """A classic file with byte variables 'sb' and ``second_name`` (found by fuzzing: netCDF-C
    reads a name up to its first NUL, so 'sb\\0' is a second 'sb')."""

    def name(raw: bytes) -> bytes:
        return len(raw).to_bytes(4, "big") + raw + b"\0" * (-len(raw) % 4)

    def variable(raw: bytes, begin: int) -> bytes:
        # one dimension (id 0), no attributes, NC_BYTE, vsize 4, begin
        return (
            name(raw)
            + (1).to_bytes(4, "big")
            + bytes(4)
            + bytes(8)
            + ((1).to_bytes(4, "big") + (4).to_bytes(4, "big") + begin.to_bytes(4, "big"))
        )

    head = b"CDF\x01" + bytes(4) + (10).to_bytes(4, "big") + (1).to_bytes(4, "big") + name(b"d")
    head += (2).to_bytes(4, "big") + bytes(8) + (11).to_bytes(4, "big") + (2).to_bytes(4, "big")
    size = len(head) + len(variable(b"sb", 0)) + len(variable(second_name, 0))
    body = variable(b"sb", size) + variable(second_name, size + 4)
    return head + body + b"\x80\x7f\0\0" + b"\x81\x81\0\0"


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (b"sb\0", "two variables are named 'sb'"),  # netCDF-C reads up to the first NUL
        (b"sb", "two variables are named 'sb'"),
        (b"a/b", "invalid NetCDF3 name b'a/b'"),
    ],
)
def test_names_that_collide_or_nest_are_corrupt(
    tmp_path: Path, second: bytes, message: str
) -> None:
    path = tmp_path / "names.nc"
    path.write_bytes(_two_byte_variables(second))
    with netCDF4.Dataset(path) as ds:  # the format library opens it, but which 'sb' is which?
        assert "sb" in ds.variables
    with pytest.raises(CorruptFileError, match=message):
        NetCDF3Reader().scan(str(path))
    good = tmp_path / "good.nc"
    good.write_bytes(_two_byte_variables(b"sc"))
    scanned = NetCDF3Reader().scan(str(good))
    assert set(scanned.arrays) == {"/sb", "/sc"}


@pytest.mark.parametrize("padding", [b"\0", b"\0\0\0", b"\0\0\0\0\0"])
def test_names_padded_with_nuls_read_as_netcdf_c_reads_them(tmp_path: Path, padding: bytes) -> None:
    """netCDF-C's own test programs write names with NULs counted in their length."""
    path = tmp_path / "padded.nc"
    path.write_bytes(_two_byte_variables(b"sc" + padding))
    with netCDF4.Dataset(path) as ds:
        expected = {name: ds[name][...].data.tolist() for name in ds.variables}
    assert set(expected) == {"sb", "sc"}
    group = zarr.open_group(_ingest(path).readonly_session().store, mode="r")
    assert {name: group[name][...].tolist() for name in expected} == expected


def test_a_huge_count_in_a_damaged_header_is_corrupt_without_allocating_it(
    tmp_path: Path,
) -> None:
    """A CDF-5 dimension name claiming 2**60 bytes: refused against the file size, not read."""
    path = tmp_path / "huge.nc"
    header = b"CDF\x05" + bytes(8) + (10).to_bytes(4, "big") + (1).to_bytes(8, "big")
    path.write_bytes(header + (2**60).to_bytes(8, "big") + b"name" + bytes(64))
    with pytest.raises(CorruptFileError, match="header is truncated"):
        NetCDF3Reader().scan(str(path))


def test_a_variable_claiming_more_records_than_the_file_holds_is_corrupt(tmp_path: Path) -> None:
    """numrecs of 2**31 - 1 on a small file: refused before any ref is built."""
    path = tmp_path / "records.nc"
    _write_every_type(path, "NETCDF3_CLASSIC", 4)
    raw = bytearray(path.read_bytes())
    raw[4:8] = (2**31 - 1).to_bytes(4, "big")  # numrecs
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match="runs past the end of the file"):
        NetCDF3Reader().scan(str(path))
