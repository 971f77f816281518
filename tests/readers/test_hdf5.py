"""HDF5 / NetCDF4 fidelity: every variable read through the repository equals h5py's raw values
exactly, or ingest raises a typed error naming the file, variable and feature. No third outcome."""

from __future__ import annotations

import uuid
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  # registers the plugin filters, so h5py (the reference) can read them
import numpy as np
import pytest
import zarr

import icechunk_virtual as iv
from readers.errors import UnsupportedFeatureError
from readers.hdf5 import Hdf5Reader
from readers.registry import open_virtual

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "hdf5"
CORPUS_FILES = sorted(CORPUS.glob("*")) if CORPUS.is_dir() else []


def _raw_arrays(path: Path) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            found["/" + name] = obj[()]

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return found


def _ingest(paths: list[Path]) -> iv.Repository:
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    iv.ingest(repo, [str(p) for p in paths], progress=False)
    return repo


def assert_bit_exact(repo: iv.Repository, path: Path) -> list[str]:
    """Compare every array the reader found with h5py; return the compared paths."""
    scanned = open_virtual(str(path))
    raw = _raw_arrays(path)
    group = zarr.open_group(repo.readonly_session().store, mode="r")
    for name in scanned.arrays:
        ours = group[name.lstrip("/")][...]
        theirs = np.asarray(raw[name])
        assert ours.shape == theirs.shape, name
        assert ours.dtype == theirs.dtype.newbyteorder("="), name
        assert ours.tobytes() == theirs.astype(ours.dtype).tobytes(), f"{path.name}:{name} differs"
    return sorted(scanned.arrays)


@pytest.mark.skipif(not CORPUS_FILES, reason="../shared/corpus/hdf5 is not beside the checkout")
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_file_is_bit_exact_or_a_typed_error(path: Path) -> None:
    try:
        scanned = open_virtual(str(path))
    except UnsupportedFeatureError as exc:
        assert exc.url == str(path) and exc.variable.startswith("/") and exc.feature
        with pytest.raises(iv.UnsupportedSourceError, match=path.name):
            _ingest([path])
        return
    arrays = set(scanned.arrays)
    raw = set(_raw_arrays(path))
    dimension_only = raw - arrays
    for name in dimension_only:  # only netCDF's pure dimensions may be left out
        with h5py.File(path, "r") as f:
            assert bytes(f[name].attrs.get("NAME", b"")).startswith(b"This is a netCDF dimension")
    assert_bit_exact(_ingest([path]), path)


FILTERS = {
    "none": {},
    "deflate": {"compression": "gzip", "compression_opts": 6},
    "shuffle+deflate": {"compression": "gzip", "shuffle": True},
    "fletcher32": {"fletcher32": True},
    "shuffle+deflate+fletcher32": {"compression": "gzip", "shuffle": True, "fletcher32": True},
}


@pytest.mark.parametrize("filters", list(FILTERS), ids=str)
@pytest.mark.parametrize("dtype", ["<f4", ">f8", "<i2", ">u4", "i1"])
def test_generated_filters_and_byte_orders(tmp_path: Path, filters: str, dtype: str) -> None:
    path = tmp_path / "gen.h5"
    data = (np.random.default_rng(3).random((9, 7)) * 100).astype(dtype)
    with h5py.File(path, "w") as f:
        f.create_dataset("chunked", data=data, chunks=(4, 3), **FILTERS[filters])
        f.create_dataset("contiguous", data=data)
        compact = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        compact.set_layout(h5py.h5d.COMPACT)
        f.create_dataset("compact", data=data[:2, :2], dcpl=compact)
        f.create_dataset("scalar", data=data[0, 0])
        f.create_dataset("empty", shape=(5, 0), dtype=dtype)
        f.create_dataset("unwritten", shape=(4, 4), dtype=dtype, chunks=(2, 2), fillvalue=7)
    assert assert_bit_exact(_ingest([path]), path) == sorted(
        ["/chunked", "/contiguous", "/compact", "/scalar", "/empty", "/unwritten"]
    )


def test_unsupported_filters_name_file_variable_and_feature(tmp_path: Path) -> None:
    path = tmp_path / "lzf.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(10), chunks=(5,), compression="lzf")
    with pytest.raises(UnsupportedFeatureError) as caught:
        Hdf5Reader().scan(str(path))
    assert (caught.value.url, caught.value.variable) == (str(path), "/x")
    assert "32000 (lzf)" in caught.value.feature


def test_bad_input_is_a_typed_error_and_commits_nothing(tmp_path: Path) -> None:
    good = CORPUS / "air.nc"
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(good.read_bytes()[:5000])
    not_hdf5 = tmp_path / "text.nc"
    not_hdf5.write_bytes(b"hello, this is not a file format")
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    before = repo.lookup_branch("main")
    for bad, error in (
        (truncated, iv.CorruptSourceError),
        (not_hdf5, iv.CorruptSourceError),
        (tmp_path / "missing.nc", iv.SourceNotFoundError),
    ):
        with pytest.raises(error, match=bad.name):
            iv.ingest(repo, [str(good), str(bad)], progress=False)
    assert repo.lookup_branch("main") == before
