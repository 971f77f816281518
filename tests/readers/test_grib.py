"""GRIB fidelity: every message of every corpus file is in exactly one variable, and reads back
through the repository as ecCodes decodes it; damaged files are typed errors that commit nothing.
(Where each value sits is checked by label against cfgrib in ``test_grib_by_label.py``.)"""

from __future__ import annotations

import uuid
from pathlib import Path

import eccodes
import numpy as np
import pytest
import xarray as xr
import zarr

import icechunk_virtual as iv
from readers.codecs.grib import GRIB_CODEC
from readers.errors import CorruptFileError, UnsupportedFeatureError
from readers.grib import GribReader
from readers.registry import open_virtual

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "grib"
CORRUPTED = "era5-levels-corrupted.grib"
CORPUS_FILES = sorted(p for p in CORPUS.glob("*") if p.name != CORRUPTED) if CORPUS.is_dir() else []


def _eccodes_messages(path: Path) -> dict[int, tuple[np.ndarray, int]]:
    """Each message's offset, its values as ecCodes decodes them in storage order with missing
    points NaN (marked by ecCodes under cfgrib's sentinel ``missingValue``), and its row length
    if alternative row scanning stores every second row reversed (else 0)."""
    found = {}
    sentinel = float(np.finfo(np.float32).max)
    with path.open("rb") as f:
        while (handle := eccodes.codes_grib_new_from_file(f)) is not None:
            eccodes.codes_set(handle, "missingValue", sentinel)
            values = np.asarray(eccodes.codes_get_values(handle), dtype=np.float64)
            values[values == sentinel] = np.nan
            alternate = eccodes.codes_is_defined(handle, "alternativeRowScanning") and int(
                eccodes.codes_get(handle, "alternativeRowScanning")
            )
            row = int(eccodes.codes_get(handle, "Ni")) if alternate else 0
            found[int(eccodes.codes_get(handle, "offset"))] = (values, row)
            eccodes.codes_release(handle)
    return found


def _ingest(paths: list[Path]) -> iv.Repository:
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    iv.ingest(repo, [str(p) for p in paths], progress=False)
    return repo


@pytest.mark.skipif(not CORPUS_FILES, reason="../shared/corpus/grib is not beside the checkout")
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_every_message_reads_back_as_eccodes_decodes_it(path: Path) -> None:
    expected = _eccodes_messages(path)
    scanned = open_virtual(str(path))
    repo = _ingest([path])
    group = zarr.open_group(repo.readonly_session().store, mode="r")
    seen: list[int] = []
    for name, array in scanned.arrays.items():
        if array.codecs[0]["name"] != GRIB_CODEC:
            continue
        stored = group[name.lstrip("/")]
        refs = array.refs.to_pydict()
        for row in range(array.refs.num_rows):
            chunk = [refs[f"c{i}"][row] for i in range(len(array.shape))]
            region = tuple(
                slice(c * n, c * n + n) for c, n in zip(chunk, array.chunk_shape, strict=True)
            )
            ours = stored[region].reshape(-1)  # chunk by chunk: hypercubes may be mostly holes
            values, row_length = expected[refs["offset"][row]]
            if row_length:  # we return grid order (test_grib_by_label checks which): row sets
                ours, values = (np.sort(v.reshape(-1, row_length), axis=1) for v in (ours, values))
            np.testing.assert_array_equal(ours, values, err_msg=name)
            seen.append(refs["offset"][row])
    assert sorted(seen) == sorted(expected), "every message in exactly one variable"
    dataset = xr.open_zarr(repo.readonly_session().store, consolidated=False)
    assert set(dataset.data_vars) == {
        n.lstrip("/") for n, a in scanned.arrays.items() if a.codecs[0]["name"] == GRIB_CODEC
    }


def test_hypercubes_dimensions_and_holes() -> None:
    members = xr.open_zarr(_ingest([CORPUS / "era5-levels-members.grib"]).readonly_session().store,
                           consolidated=False)  # fmt: skip
    assert members["t"].dims == ("number", "time", "isobaricInhPa", "latitude", "longitude")
    assert members.sizes["number"] == 10 and members.sizes["isobaricInhPa"] == 2
    assert members["t"].attrs["GRIB_shortName"] == "t" and members["t"].attrs["units"] == "K"
    assert str(members.time.values[0]).startswith("2017-01-01")
    levels = xr.open_zarr(_ingest([CORPUS / "uv_on_different_levels.grib"]).readonly_session().store,
                          consolidated=False)  # fmt: skip
    assert levels["u"].dims[1] != levels["v"].dims[1]  # different level sets, different dims
    grids = xr.open_zarr(
        _ingest([CORPUS / "tp_on_different_grid_resolutions.grib"]).readonly_session().store,
        consolidated=False,
    )
    assert grids["tp"].shape != grids["tp_grid"].shape
    seasonal = open_virtual(str(CORPUS / "ncep-seasonal-monthly.grib")).arrays["/2t"]
    assert seasonal.refs.num_rows == 372 < np.prod(seasonal.shape[:3])  # a sparse hypercube
    taken = {tuple(r.values()) for r in seasonal.refs.select(["c0", "c1", "c2"]).to_pylist()}
    hole = next(i for i in np.ndindex(seasonal.shape[:3]) if i not in taken)
    store = _ingest([CORPUS / "ncep-seasonal-monthly.grib"]).readonly_session().store
    assert np.isnan(zarr.open_array(store, path="2t", mode="r")[hole]).all()  # holes are NaN
    steps = xr.open_zarr(_ingest([CORPUS / "step_60m.grib"]).readonly_session().store,
                         consolidated=False)  # fmt: skip
    assert steps.sizes["step"] == 73


def test_damaged_files_are_typed_errors_that_commit_nothing(tmp_path: Path) -> None:
    good = CORPUS / "regular_ll_sfc.grib"
    raw = good.read_bytes()
    cut = tmp_path / "cut.grib"
    cut.write_bytes(raw[: len(raw) // 2])
    edition = tmp_path / "edition.grib"
    edition.write_bytes(raw[:7] + b"\x03" + raw[8:])
    trailing = tmp_path / "trailing.grib"
    trailing.write_bytes(raw + b"\x00" * 100)
    with pytest.raises(CorruptFileError, match="message 0") as caught:
        GribReader().scan(str(CORPUS / CORRUPTED))
    assert caught.value.url == str(CORPUS / CORRUPTED)
    with pytest.raises(CorruptFileError, match="message 0"):
        GribReader().scan(str(cut))
    with pytest.raises(UnsupportedFeatureError, match="GRIB edition 3"):
        GribReader().scan(str(edition))
    assert open_virtual(str(trailing)).arrays["/skt"].refs.num_rows == 1
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    before = repo.lookup_branch("main")
    for bad, error in ((CORPUS / CORRUPTED, iv.CorruptSourceError), (cut, iv.CorruptSourceError),
                       (edition, iv.UnsupportedSourceError)):  # fmt: skip
        with pytest.raises(error, match=bad.name):
            iv.ingest(repo, [str(good), str(bad)], progress=False)
    assert repo.lookup_branch("main") == before


@pytest.mark.parametrize(
    "preamble",
    [b"****0001234****\r\r\n", b"\x00\x00\x01\x2a", b"\r\r\n345\r\r\nHRPA50 ECMF 010000\r\r\n"],
    ids=["wmo-header", "record-length", "bulletin"],
)
def test_messages_after_other_bytes_read_as_eccodes_reads_them(
    tmp_path: Path, preamble: bytes
) -> None:
    """Archives put WMO bulletin headers or record lengths before GRIB messages; ecCodes skips to
    each ``GRIB``, and so must the format detection."""
    messages = (CORPUS / "regular_ll_sfc.grib").read_bytes()
    path = tmp_path / "framed.grib"
    path.write_bytes(preamble + messages + b"\r\r\n\x03" + preamble + messages)
    expected = _eccodes_messages(path)
    assert len(expected) == 2
    scanned = open_virtual(str(path))  # the same message twice: skt and skt_dup1
    group = zarr.open_group(_ingest([path]).readonly_session().store, mode="r")
    found = []
    for name in ("skt", "skt_dup1"):
        [offset] = scanned.arrays[f"/{name}"].refs.column("offset").to_pylist()
        np.testing.assert_array_equal(group[name][...].reshape(-1), expected[offset][0])
        found.append(offset)
    assert sorted(found) == sorted(expected)
