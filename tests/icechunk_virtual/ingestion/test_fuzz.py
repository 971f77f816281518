"""Fuzzed archive files: hypothesis truncates, flips bytes in and splices corpus files, then ingests
them. Every case must end in a typed error (an ``IcechunkVirtualError``) that commits nothing, or in
a commit whose values equal what the format's own library reads from the same damaged file.

``make test`` runs the hypothesis profile's example count (50) per reader; ``make stress`` runs the
``slow`` twins with 500.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import eccodes
import h5py
import netCDF4
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import icechunk_virtual as iv
from readers import parallel
from readers.codecs.grib import GRIB_CODEC
from readers.registry import open_virtual

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus"
SEEDS = {
    "hdf5": ["hdf5/issue1152.nc", "hdf5/hdf5_compression_zstd.h5"],
    "netcdf3": ["netcdf3/ubyte.nc", "netcdf3/netcdf_dummy_file.nc"],
    "grib": ["grib/regular_ll_sfc.grib", "grib/t_on_different_level_types.grib"],
}
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not beside")


@st.composite
def mutations(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` truncated, with bytes flipped, or with a range copied over another."""
    size = len(data)
    kind = draw(st.sampled_from(["truncate", "flip", "splice", "flip+truncate"]))
    out = bytearray(data)
    if "flip" in kind:
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, size - 1))
            out[at] ^= draw(st.integers(1, 255))
    if kind == "splice":
        start = draw(st.integers(0, size - 1))
        length = draw(st.integers(1, min(256, size - start)))
        to = draw(st.integers(0, size - length))
        out[to : to + length] = data[start : start + length]
    if "truncate" in kind:
        out = out[: draw(st.integers(0, size - 1))]
    return bytes(out)


def reference_hdf5(path: Path, array: str) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return np.asarray(f[array][()])


def reference_netcdf3(path: Path, array: str) -> np.ndarray:
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        return np.asarray(ds.variables[array.lstrip("/")][:])


def reference_grib_messages(path: Path) -> dict[int, np.ndarray]:
    found: dict[int, np.ndarray] = {}
    with path.open("rb") as f:
        while (handle := eccodes.codes_grib_new_from_file(f)) is not None:
            try:
                values = np.asarray(eccodes.codes_get_values(handle), dtype=np.float64)
                if eccodes.codes_get(handle, "bitmapPresent"):
                    values[np.asarray(eccodes.codes_get_array(handle, "bitmap")) == 0] = np.nan
                found[int(eccodes.codes_get(handle, "offset"))] = values
            finally:
                eccodes.codes_release(handle)
    return found


def check_values(reader: str, path: Path, repo: iv.Repository) -> None:
    """Each committed array equals the format library's reading of the damaged file; where our
    read fails, the library's must fail too (or ours must be a typed error)."""
    scanned = open_virtual(str(path))
    group = zarr.open_group(repo.readonly_session().store, mode="r")
    grib_messages: dict[int, np.ndarray] | None = None
    for name, array in scanned.arrays.items():
        stored = group[name.lstrip("/")]
        if reader == "grib" and array.codecs[0]["name"] == GRIB_CODEC:
            if grib_messages is None:
                grib_messages = _or_none(lambda: reference_grib_messages(path))
            refs = array.refs.to_pydict()
            for row in range(array.refs.num_rows):
                chunk = [refs[f"c{i}"][row] for i in range(len(array.shape))]
                region = tuple(
                    slice(c * n, c * n + n) for c, n in zip(chunk, array.chunk_shape, strict=True)
                )
                expected = (grib_messages or {}).get(refs["offset"][row])
                compare(lambda s=stored, r=region: s[r].reshape(-1), expected, name)
            continue
        if reader == "grib":
            expected_any: np.ndarray | None = None  # coordinates: no library reference
            compare(lambda s=stored: s[...], expected_any, name, reference_failed=False)
            continue
        reference = reference_hdf5 if reader == "hdf5" else reference_netcdf3
        expected = _or_none(lambda r=reference, n=name: r(path, n))  # type: ignore[misc]
        compare(lambda s=stored: s[...], expected, name)


def _or_none(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception:
        return None


def compare(
    read: Callable[[], np.ndarray],
    expected: np.ndarray | None,
    name: str,
    *,
    reference_failed: bool | None = None,
) -> None:
    reference_failed = expected is None if reference_failed is None else reference_failed
    try:
        ours = read()
    except iv.IcechunkVirtualError:
        return
    except Exception as exc:
        assert reference_failed, f"{name}: our read raised {exc!r}, the format library read it"
        return
    if expected is not None:
        np.testing.assert_array_equal(np.asarray(ours).reshape(-1), expected.reshape(-1), name)


def fuzz_one(reader: str, mutated: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzzed{suffix}"
        path.write_bytes(mutated)
        repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
        before = repo.lookup_branch("main")
        try:
            with pytest.MonkeyPatch.context() as patch:  # a crash must not end the test run
                patch.setattr(parallel, "IN_PROCESS_AT_MOST", 0)
                iv.ingest(repo, [str(path)], progress=False)
        except iv.IcechunkVirtualError as exc:
            assert repo.lookup_branch("main") == before, "a failed ingest committed"
            event(f"ingest: {type(exc).__name__}")
            return
        event("ingest: committed")
        check_values(reader, path, repo)


def fuzz_test(reader: str, examples: int | None) -> Callable[..., None]:
    seeds = [CORPUS / s for s in SEEDS[reader]]
    contents = [p.read_bytes() if p.exists() else b"\0" for p in seeds]
    strategy = st.integers(0, len(seeds) - 1).flatmap(
        lambda i: st.tuples(st.just(i), mutations(contents[i]))
    )
    options: dict[str, Any] = {"suppress_health_check": [HealthCheck.too_slow]}
    if examples is not None:
        options["max_examples"] = examples
    else:  # `make test`: the same cases every run (CI must not fail by chance); stress explores
        options["derandomize"] = True

    @settings(deadline=None, database=None, **options)
    @given(case=strategy)
    def run(case: tuple[int, bytes]) -> None:
        index, mutated = case
        fuzz_one(reader, mutated, seeds[index].suffix)

    return run  # type: ignore[no-any-return]


@pytest.mark.timeout(300)  # a hang on some input fails the test instead of stalling the run
@pytest.mark.parametrize("reader", sorted(SEEDS))
def test_fuzzed_files(reader: str) -> None:
    fuzz_test(reader, None)()


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("reader", sorted(SEEDS))
def test_fuzzed_files_500(reader: str) -> None:
    fuzz_test(reader, 500)()
