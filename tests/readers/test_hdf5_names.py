"""Nothing in an HDF5 / netCDF-4 file is silently missing or misnamed: a dataset named by a soft
link is there under that name (as h5py shows it), a netCDF-4 variable netCDF-C stores as
``_nc4_non_coord_<name>`` is ``<name>`` (as netCDF4-python shows it), and an external link is a
typed error rather than a hole. Files are written here with h5py / netCDF4, which are also the
oracles for names and values.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import h5py
import netCDF4
import numpy as np
import pytest
import zarr

import icechunk_virtual as iv
from readers.errors import UnsupportedFeatureError
from readers.registry import open_virtual


def _read_back(path: Path) -> zarr.Group:
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    iv.ingest(repo, [str(path)], progress=False)
    return zarr.open_group(repo.readonly_session().store, mode="r")


def _h5py_datasets(path: Path) -> dict[str, np.ndarray]:
    """Every dataset name h5py resolves (hard and soft links), with its values."""
    found: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:

        def visit(name: str, link: object) -> None:
            if isinstance(link, h5py.HardLink | h5py.SoftLink):
                target = f.get(name)
                if isinstance(target, h5py.Dataset):
                    found[name] = target[()]

        f.visititems_links(visit)
    return found


def test_a_dataset_named_by_a_soft_link_is_there_under_that_name(tmp_path: Path) -> None:
    path = tmp_path / "links.h5"
    with h5py.File(path, "w") as f:
        f["group/values"] = np.arange(12.0).reshape(3, 4)
        f["alias"] = h5py.SoftLink("/group/values")
        f["group/nested_alias"] = h5py.SoftLink("/group/values")
        f["dangling"] = h5py.SoftLink("/nothing/here")  # h5py cannot read it either
    expected = _h5py_datasets(path)
    assert set(expected) == {"group/values", "alias", "group/nested_alias"}
    group = _read_back(path)
    for name, values in expected.items():
        np.testing.assert_array_equal(group[name][...], values, err_msg=name)


def test_an_external_link_is_a_typed_error_not_a_hole(tmp_path: Path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    path = tmp_path / "external.h5"
    with h5py.File(path, "w") as f:
        f["kept"] = np.arange(2)
        f["elsewhere"] = h5py.ExternalLink(str(other), "/x")
    with pytest.raises(UnsupportedFeatureError, match="external link") as caught:
        open_virtual(str(path))
    assert "/elsewhere" in str(caught.value)


def test_a_netcdf4_non_coordinate_variable_keeps_its_name(tmp_path: Path) -> None:
    path = tmp_path / "non_coord.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 3)
        ds.createDimension("y", 4)
        x = ds.createVariable("x", "f8", ("y",))  # named like a dimension it does not index
        x[:] = [1.5, 2.5, 3.5, 4.5]
        ds.createVariable("v", "i4", ("x", "y"))[:] = np.arange(12).reshape(3, 4)
    with h5py.File(path, "r") as f:
        assert "_nc4_non_coord_x" in f  # the trait: netCDF-C's internal name on disk
    with netCDF4.Dataset(path) as ds:
        expected = {name: ds[name][...].data for name in ds.variables}
        dims = {name: ds[name].dimensions for name in ds.variables}
    group = _read_back(path)
    assert sorted(k for k, _ in group.arrays()) == sorted(expected)
    for name, values in expected.items():
        np.testing.assert_array_equal(group[name][...], values, err_msg=name)
        assert tuple(group[name].metadata.dimension_names) == dims[name]
