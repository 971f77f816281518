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


def test_empty_attributes_read_as_netcdf4_reads_them(tmp_path: Path) -> None:
    """HDF5's null-dataspace attributes (``h5py.Empty``) once failed the whole file."""
    path = tmp_path / "empty.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 3)
        ds.createVariable("x", "f8", ("x",))[:] = [1.0, 2.0, 3.0]
    with h5py.File(path, "a") as f:
        f["x"].attrs["empty_number"] = h5py.Empty("f4")
        f["x"].attrs["empty_text"] = h5py.Empty("S1")
        f.attrs["empty_global"] = h5py.Empty("<i4")
    with netCDF4.Dataset(path) as ds:
        expected_x = {k: ds["x"].getncattr(k) for k in ("empty_number", "empty_text")}
        expected_root = ds.getncattr("empty_global")
    group = _read_back(path)
    assert group["x"].attrs["empty_number"] == list(expected_x["empty_number"]) == []
    assert group["x"].attrs["empty_text"] == expected_x["empty_text"] == ""
    assert group.attrs["empty_global"] == list(expected_root) == []


def test_a_complex_attribute_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "complex.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
        f["x"].attrs["impedance"] = np.complex128(1 + 2j)
    with pytest.raises(UnsupportedFeatureError, match="impedance") as caught:
        open_virtual(str(path))
    assert "/x" in str(caught.value)


@pytest.mark.parametrize("dtype", ["<c8", ">c16"])
def test_complex_datasets_and_fill_values_round_trip(tmp_path: Path, dtype: str) -> None:
    path = tmp_path / "complex_data.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "chunked", data=(np.arange(6) + 1j * np.arange(6)).astype(dtype), chunks=(4,)
        )
        f.create_dataset("filled", shape=(5,), dtype=dtype, fillvalue=1 - 2j, chunks=(2,))
        f["filled"][:2] = [3 + 4j, 5 + 6j]
        f.create_dataset(
            "members", data=np.array([(1, 1 + 2j)], dtype=[("a", "<i4"), ("b", "<c16")])
        )
    expected = _h5py_datasets(path)
    group = _read_back(path)
    for name, values in expected.items():
        np.testing.assert_array_equal(group[name][...], values, err_msg=name)
    assert group["filled"].fill_value == 1 - 2j
