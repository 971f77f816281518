"""``ingest`` of NetCDF4 files, read back through xarray: the same Dataset as opening the file
with netCDF4 — variables, dimensions, coordinates, attributes and CF decoding."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import icechunk_virtual as iv

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus" / "hdf5"
NETCDF4_FILES = sorted(CORPUS.glob("*.nc")) if CORPUS.is_dir() else []


def _open_both(path: Path, **options: bool) -> tuple[xr.Dataset, xr.Dataset]:
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    iv.ingest(repo, [str(path)], progress=False)
    store = repo.readonly_session().store
    ours = xr.open_zarr(store, consolidated=False, **options).load()
    theirs = xr.open_dataset(path, engine="netcdf4", **options).load()
    # xarray's Zarr backend hides attributes named _nc* (NCZarr's); the file may have one
    theirs.attrs = {k: v for k, v in theirs.attrs.items() if not k.lower().startswith("_nc")}
    return ours, theirs


@pytest.mark.skipif(not NETCDF4_FILES, reason="../shared/corpus/hdf5 is not beside the checkout")
@pytest.mark.parametrize("path", NETCDF4_FILES, ids=lambda p: p.name)
def test_encoded_dataset_is_identical_to_netcdf4s(path: Path) -> None:
    ours, theirs = _open_both(path, mask_and_scale=False)
    xr.testing.assert_identical(ours, theirs)
    for name, variable in theirs.variables.items():
        for key in ("_FillValue", "scale_factor", "add_offset", "units", "calendar", "dtype"):
            where = "encoding" if key in ("dtype", "calendar", "units") else "attrs"
            expected = getattr(variable, where).get(key)
            got = getattr(ours[name], where).get(key)
            assert (expected is None) == (got is None), (name, key)
            if expected is not None:
                np.testing.assert_array_equal(got, expected, err_msg=f"{name}.{key}")


@pytest.mark.skipif(not NETCDF4_FILES, reason="../shared/corpus/hdf5 is not beside the checkout")
@pytest.mark.parametrize("path", NETCDF4_FILES, ids=lambda p: p.name)
def test_decoded_values_match_netcdf4s(path: Path) -> None:
    """Masked and scaled values agree. xarray decodes packed integers read from Zarr to float64
    where netCDF4 gives float32 (Zarr attributes are JSON, so ``scale_factor`` loses its width);
    the values agree to float32 precision and the masks exactly."""
    ours, theirs = _open_both(path)
    assert set(ours.variables) == set(theirs.variables)
    assert ours.sizes == theirs.sizes
    for name, expected in theirs.variables.items():
        got = ours.variables[name]
        assert got.dims == expected.dims, name
        xr.testing.assert_identical(
            xr.Variable((), 0, got.attrs), xr.Variable((), 0, expected.attrs)
        )
        if expected.dtype.kind == "f":
            np.testing.assert_array_equal(np.isnan(got.values), np.isnan(expected.values))
            scale = np.nanmax(np.abs(expected.values), initial=0.0)
            precision = float(np.finfo(expected.dtype).eps) * scale  # float32 rounding of a*x+b
            np.testing.assert_allclose(
                got.values, expected.values, atol=2 * precision, err_msg=name
            )
        else:
            np.testing.assert_array_equal(got.values, expected.values, err_msg=name)


def test_repository_ingest_offers_every_option_of_ingest() -> None:
    import inspect

    options = inspect.signature(iv.ingest).parameters
    method = inspect.signature(iv.Repository.ingest).parameters
    assert [(n, p.default) for n, p in options.items() if n != "repo"] == [
        (n, p.default) for n, p in method.items() if n != "self"
    ]
