"""The private zarr and xarray names the adapters rely on still exist and behave as used.

When one of these fails after an upgrade, adapt ``icechunk_virtual/zarr/zarr_internals.py`` or
``xarray_internals.py`` (the only modules that touch them) and move the version checked.
"""

from __future__ import annotations

import inspect

import numpy as np
import xarray as xr
import zarr
from packaging.version import Version
from xarray.backends.zarr import ZarrArrayWrapper, ZarrStore
from zarr.core.array import AsyncArray
from zarr.core.codec_pipeline import FusedCodecPipeline

from icechunk_virtual.zarr import read_config, xarray_internals, zarr_internals


def _minor(version: str) -> tuple[int, ...]:
    return Version(version).release[:2]


def test_installed_releases_are_the_checked_ones() -> None:
    # pyproject caps both below the next minor (zarr) / year (xarray) release
    assert _minor(zarr.__version__) == _minor(zarr_internals.CHECKED_ZARR)
    assert Version(xr.__version__).release[0] == Version(xarray_internals.CHECKED_XARRAY).release[0]


def test_zarr_pool_and_workers() -> None:
    assert zarr_internals.pool_workers() >= 1
    pool = zarr_internals.pipeline_pool(2)
    assert list(pool.map(lambda x: x * 2, [1, 2, 3])) == [2, 4, 6]


def test_zarr_async_array_and_pipeline() -> None:
    array = zarr.create_array(zarr.storage.MemoryStore(), shape=(4,), chunks=(2,), dtype="i4")
    inner = zarr_internals.async_array_of(array)
    assert isinstance(inner, AsyncArray)
    assert zarr_internals.FusedCodecPipeline is FusedCodecPipeline
    with zarr.config.set(read_config()):  # our pipeline subclasses zarr's fused one
        ours = zarr.open_array(array.store, mode="r")
    assert isinstance(zarr_internals.async_array_of(ours).codec_pipeline, FusedCodecPipeline)
    parameters = inspect.signature(zarr_internals.decode_and_scatter_chunk).parameters
    assert len(parameters) >= 5  # raw, spec, chunk selection, out selection, out (+ drop axes)


def test_xarray_wrapper_hooks() -> None:
    for name in ("_getitem", "_oindex"):
        assert callable(getattr(ZarrArrayWrapper, name))
    assert callable(ZarrStore.open_store_variable)
    assert issubclass(xarray_internals.InlineArrayWrapper, ZarrArrayWrapper)
    assert issubclass(xarray_internals.InlineReadingStore, ZarrStore)


def test_the_inline_store_reads_what_xarray_reads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = zarr.storage.LocalStore(str(tmp_path / "s.zarr"))
    xr.Dataset({"v": ("x", np.arange(6.0))}).to_zarr(store, consolidated=False)
    opened = xarray_internals.InlineReadingStore.open_group(store, mode="r", consolidated=False)
    variable = opened.open_store_variable("v")
    np.testing.assert_array_equal(np.asarray(variable[1:4]), [1.0, 2.0, 3.0])
    assert isinstance(variable._data.array, xarray_internals.InlineArrayWrapper)
