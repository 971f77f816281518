"""GRIB by label: what a user reads at each (member, time, step, level, latitude, longitude) is
what cfgrib reads there, NaN for NaN, and every missing point ecCodes counts is NaN.

Storage order is not the oracle: two bugs hid behind it (a field whose packing flags missing
points without a bitmap read as 9999 m waves; alternative row scanning left every second row
mirrored). So every corpus file cfgrib opens is compared with cfgrib label by label, and
generated files (written with ecCodes here, from first principles: value = f(latitude,
longitude), stored in the order the GRIB scanning flags say) cover both traits without the
corpus, with each ``iScansNegatively`` / ``jScansPositively`` combination.
"""

from __future__ import annotations

import re
import uuid
import warnings
from pathlib import Path
from typing import Any

import eccodes
import numpy as np
import pytest
import xarray as xr

import icechunk_virtual as iv
from readers.codecs.grib import GRIB_CODEC
from readers.errors import UnsupportedFeatureError
from readers.registry import open_virtual

cfgrib = pytest.importorskip("cfgrib", reason="cfgrib (the test extra) is the GRIB oracle")

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "grib"
CORPUS_FILES = (
    sorted(p for p in CORPUS.glob("*") if p.name != "era5-levels-corrupted.grib")
    if CORPUS.is_dir()
    else []
)
_MATCH_KEYS = ("GRIB_paramId", "GRIB_typeOfLevel", "GRIB_stepType")


def _ours(path: Path) -> xr.Dataset:
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    iv.ingest(repo, [str(path)], progress=False)
    return xr.open_dataset(repo, engine="icechunk_virtual", decode_timedelta=True)  # as users do


def _theirs(path: Path) -> list[xr.Dataset]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cfgrib's own deprecation notices
        return cfgrib.open_datasets(  # type: ignore[no-any-return]
            str(path), backend_kwargs={"indexpath": "", "values_dtype": np.dtype("f8")}
        )


def _plain(values: Any) -> np.ndarray:
    """Labels comparable across libraries: times and durations as integer nanoseconds."""
    values = np.asarray(values)
    if values.dtype.kind == "M":
        return values.astype("datetime64[ns]").astype(np.int64)
    if values.dtype.kind == "m":
        return values.astype("timedelta64[ns]").astype(np.int64)
    return values


def _base(name: str) -> str:
    """Our name without the suffix that tells apart two coordinates of one name (``_1``)."""
    return re.sub(r"_\d+$", "", name)


class _Flat:
    """One of our variables as numpy: values, dims, coordinates; grid dims merged on request."""

    def __init__(self, array: xr.DataArray, *, merge_grid: bool) -> None:
        self.values = np.asarray(array.values)
        self.dims = list(array.dims)
        self.coords = {n: (list(c.dims), _plain(c.values)) for n, c in array.coords.items()}
        if merge_grid:  # cfgrib keeps some row/column grids as one ``values`` dimension
            y, x = self.dims[-2:]
            self.values = self.values.reshape(*self.values.shape[:-2], -1)
            self.dims[-2:] = ["values"]
            for name, (dims, values) in list(self.coords.items()):
                if dims == [y, x]:
                    self.coords[name] = (["values"], values.reshape(-1))
                elif y in dims or x in dims:
                    del self.coords[name]

    def squeeze(self, dim: str) -> None:
        """Drop a dimension of length 1 (cfgrib makes its coordinate a scalar)."""
        self.take(dim, [0])
        axis = self.dims.index(dim)
        self.values = self.values.reshape(self.values.shape[:axis] + self.values.shape[axis + 1 :])
        self.dims.remove(dim)
        for name, (dims, values) in self.coords.items():
            if dim in dims:
                self.coords[name] = (
                    [d for d in dims if d != dim],
                    values.reshape(
                        [n for d, n in zip(dims, values.shape, strict=True) if d != dim]
                    ),
                )

    def take(self, dim: str, positions: list[int]) -> None:
        axis = self.dims.index(dim)
        self.values = np.take(self.values, positions, axis=axis)
        for name, (dims, values) in self.coords.items():
            if dim in dims:
                self.coords[name] = (dims, np.take(values, positions, axis=dims.index(dim)))


def assert_equal_by_label(theirs: xr.DataArray, ours: xr.DataArray) -> None:
    """``ours`` holds ``theirs`` at each of its labels: values (NaN positions included) and
    every coordinate."""
    merge = "values" in theirs.dims and "values" not in ours.dims and ours.ndim >= 2
    flat = _Flat(ours, merge_grid=merge)
    renamed: dict[str, str] = {}
    for dim in theirs.dims:
        candidates = [d for d in flat.dims if _base(d) == dim and d not in renamed]
        assert candidates, f"{theirs.name}: no dimension {dim} among {flat.dims}"
        if dim in theirs.coords and theirs[dim].dims == (dim,):
            wanted = _plain(theirs[dim].values).tolist()
            for candidate in candidates:
                have = flat.coords.get(candidate, ([], np.array([])))[1].tolist()
                if sorted(have) == sorted(wanted):
                    flat.take(candidate, [have.index(label) for label in wanted])
                    renamed[candidate] = dim
                    break
            else:
                raise AssertionError(f"{theirs.name}: labels of {dim} differ")
        else:  # a positional dimension (values, y, x): the grid coordinates must agree
            renamed[candidates[0]] = dim
    for dim in [d for d in flat.dims if d not in renamed]:
        assert flat.values.shape[flat.dims.index(dim)] == 1, f"{ours.name}: extra dim {dim}"
        flat.squeeze(dim)
    order = [
        flat.dims.index(next(d for d, t in renamed.items() if t == dim)) for dim in theirs.dims
    ]
    np.testing.assert_array_equal(
        np.transpose(flat.values, order), theirs.values, err_msg=str(theirs.name)
    )
    for name, coordinate in theirs.coords.items():
        if name in theirs.dims and coordinate.dims == (name,):
            continue  # an index: matched above
        wanted = _plain(coordinate.values)
        found = []
        for ours_name, (dims, values) in flat.coords.items():
            if _base(ours_name) != name:
                continue
            as_theirs = [renamed.get(d, d) for d in dims]
            if sorted(as_theirs) == sorted(coordinate.dims):
                values = np.transpose(values, [as_theirs.index(d) for d in coordinate.dims])
                found.append(values.shape == wanted.shape and np.array_equal(values, wanted))
        assert any(found), f"{theirs.name}: coordinate {name} differs"


def _undo_alternate_rows(theirs: xr.DataArray, ni: int) -> xr.DataArray:
    """cfgrib reorders alternate rows only on the 2-D grids it builds (``get_values_in_order``);
    on a ``values`` dimension it returns storage order beside ecCodes' plain-row coordinates.
    Undo it as the GRIB specification defines the flag: every second row reversed."""
    values = theirs.values.copy()
    rows = values.reshape(*values.shape[:-1], -1, ni)
    rows[..., 1::2, :] = rows[..., 1::2, ::-1].copy()
    return theirs.copy(data=values)


def _first_message_keys(path: Path, *keys: str) -> dict[str, int]:
    """Integer keys of the file's first message (0 where undefined)."""
    with path.open("rb") as f:
        handle = eccodes.codes_grib_new_from_file(f)
        try:
            return {
                k: int(eccodes.codes_get(handle, k)) if eccodes.codes_is_defined(handle, k) else 0
                for k in keys
            }
        finally:
            eccodes.codes_release(handle)


def _missing_counts(path: Path) -> int:
    """ecCodes' own count of missing points over the file's messages."""
    total = 0
    with path.open("rb") as f:
        while (handle := eccodes.codes_grib_new_from_file(f)) is not None:
            if eccodes.codes_is_defined(handle, "numberOfMissing"):  # (not for spectral data)
                total += int(eccodes.codes_get(handle, "numberOfMissing"))
            eccodes.codes_release(handle)
    return total


def _check_file(path: Path) -> None:
    try:
        theirs = _theirs(path)
    except Exception as exc:  # "every file cfgrib opens": the rest is not ours to judge
        pytest.skip(f"cfgrib does not open {path.name}: {type(exc).__name__}")
    ours = _ours(path)
    virtual = open_virtual(str(path))
    scanning = _first_message_keys(path, "alternativeRowScanning", "Ni")
    for dataset in theirs:
        for name, variable in dataset.data_vars.items():
            if scanning["alternativeRowScanning"] and "values" in variable.dims:
                variable = _undo_alternate_rows(variable, scanning["Ni"])
            candidates = [
                v
                for v in ours.data_vars.values()
                if all(v.attrs.get(k) == variable.attrs.get(k) for k in _MATCH_KEYS)
            ]
            failures = []
            for candidate in candidates:
                try:
                    _compare(variable, candidate, virtual.arrays["/" + str(candidate.name)], path)
                    break
                except AssertionError as exc:
                    failures.append(f"{candidate.name}: {str(exc)[:400]}")
            else:
                raise AssertionError(f"{path.name}: cfgrib's {name}: {failures or 'no candidate'}")
    assert _nan_in_messages(path, ours) == _missing_counts(path), "missing, as ecCodes counts"


def _nan_in_messages(path: Path, ours: xr.Dataset) -> int:
    """NaNs we read inside the chunks that hold a message (hypercube holes left out)."""
    total = 0
    for name, array in open_virtual(str(path)).arrays.items():
        if array.codecs[0]["name"] == GRIB_CODEC:
            variable = ours[name.lstrip("/")]
            for position in _message_positions(array):
                total += int(np.isnan(variable[position].values).sum())  # (position: outer dims)
    return total


def _message_positions(array: Any) -> list[tuple[int, ...]]:
    """Where a virtual GRIB array's messages sit along the dimensions before the grid's."""
    outer = _outer_ndim(array.dimension_names)
    columns = array.refs.select([f"c{i}" for i in range(outer)]).to_pylist()
    return [tuple(row.values()) for row in columns]


def _outer_ndim(dims: Any) -> int:
    """How many dimensions index messages (the grid's come last, whole in every chunk)."""
    return sum(_base(str(d)) not in _GRID_DIMS for d in dims)


_GRID_DIMS = frozenset({"latitude", "longitude", "y", "x", "values"})


def _compare(theirs: xr.DataArray, ours: xr.DataArray, virtual: Any, path: Path) -> None:
    """By label: the whole hypercube at once, or message by message when it is mostly holes."""
    outer = _outer_ndim(ours.dims)
    if int(np.prod(ours.shape[:outer])) <= _DENSE_LIMIT:
        assert_equal_by_label(theirs, ours)
        return
    positions = _message_positions(virtual)
    theirs_labels = {
        d: _plain(theirs[d].values).tolist() for d in theirs.dims if d in theirs.coords
    }
    for position in positions:
        picked = {}
        for dim, index in zip(ours.dims[:outer], position, strict=True):
            label = _plain(ours[dim].values)[index].item()
            if _base(dim) in theirs.dims:
                picked[_base(dim)] = theirs_labels[_base(dim)].index(label)
            else:
                assert _plain(theirs[_base(dim)].values).item() == label
        assert_equal_by_label(
            theirs.isel(picked), ours.isel(dict(zip(ours.dims[:outer], position, strict=True)))
        )
    expected = _count_messages(path, {k: theirs.attrs[k] for k in _MATCH_KEYS})
    assert len(positions) == expected, "as many messages as ecCodes finds: no hole hides one"


def _count_messages(path: Path, attributes: dict[str, Any]) -> int:
    keys = {"GRIB_paramId": "paramId", "GRIB_typeOfLevel": "typeOfLevel",
            "GRIB_stepType": "stepType"}  # fmt: skip
    count = 0
    with path.open("rb") as f:
        while (handle := eccodes.codes_grib_new_from_file(f)) is not None:
            got = {a: eccodes.codes_get(handle, k, type(attributes[a])) for a, k in keys.items()}
            count += got == attributes
            eccodes.codes_release(handle)
    return count


_DENSE_LIMIT = 20_000
"""Message positions above which a hypercube is compared message by message."""


@pytest.mark.skipif(not CORPUS_FILES, reason="../shared/corpus/grib is not beside the checkout")
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_file_equals_cfgrib_by_label(path: Path) -> None:
    _check_file(path)


# ---- generated files: the traits without the corpus ---------------------------------------------
NI, NJ = 6, 4
LAT0, LON0 = 10.0, 20.0


def _field(lat: Any, lon: Any) -> Any:
    """The value every generated field holds at a point: its own coordinates, recoverable."""
    return 1000 * lat + lon


def _write_grib(
    path: Path,
    *,
    i_negative: int = 0,
    j_positive: int = 0,
    alternate: int = 0,
    j_consecutive: int = 0,
    packing: str = "grid_ieee",
    missing: tuple[int, ...] = (),
) -> np.ndarray:
    """A 6 x 4 one-degree GRIB 2 field stored as the scanning flags say (first principles: rows
    from the first latitude towards the last, points within a row from the first longitude, every
    second row reversed with alternative scanning), with ``missing`` storage positions flagged
    9999 without a bitmap. Returns the stored values."""
    lats = [LAT0 + j for j in range(NJ)][:: 1 if j_positive else -1]
    lons = [LON0 + i for i in range(NI)][:: -1 if i_negative else 1]
    handle = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib2")
    try:
        settings = {
            "Ni": NI, "Nj": NJ,
            "latitudeOfFirstGridPointInDegrees": lats[0],
            "latitudeOfLastGridPointInDegrees": lats[-1],
            "longitudeOfFirstGridPointInDegrees": lons[0],
            "longitudeOfLastGridPointInDegrees": lons[-1],
            "iDirectionIncrementInDegrees": 1.0, "jDirectionIncrementInDegrees": 1.0,
            "iScansNegatively": i_negative, "jScansPositively": j_positive,
            "alternativeRowScanning": alternate, "jPointsAreConsecutive": j_consecutive,
        }  # fmt: skip
        for key, value in settings.items():
            eccodes.codes_set(handle, key, value)
        stored = []
        for j, lat in enumerate(lats):
            row = lons[::-1] if alternate and j % 2 else lons
            stored += [_field(lat, lon) for lon in row]
        values = np.array(stored, dtype=np.float64)
        values[list(missing)] = 9999.0
        eccodes.codes_set(handle, "bitmapPresent", 0)
        eccodes.codes_set(handle, "packingType", packing)
        if packing != "grid_ieee":
            eccodes.codes_set(handle, "bitsPerValue", 24)  # integers up to 16.7 million: exact
        eccodes.codes_set(handle, "missingValue", 9999.0)
        eccodes.codes_set_values(handle, values)
        with path.open("wb") as f:
            eccodes.codes_write(handle, f)
    finally:
        eccodes.codes_release(handle)
    return values


def _only_variable(dataset: xr.Dataset) -> xr.DataArray:
    [name] = [n for n in dataset.data_vars if "GRIB_paramId" in dataset[n].attrs]
    return dataset[name]


@pytest.mark.parametrize("alternate", [0, 1], ids=["plain-rows", "alternate-rows"])
@pytest.mark.parametrize("i_negative", [0, 1], ids=["i+", "i-"])
@pytest.mark.parametrize("j_positive", [0, 1], ids=["j-", "j+"])
def test_every_scanning_mode_reads_each_point_at_its_label(
    tmp_path: Path, alternate: int, i_negative: int, j_positive: int
) -> None:
    path = tmp_path / "field.grib2"
    _write_grib(path, i_negative=i_negative, j_positive=j_positive, alternate=alternate)
    ours = _only_variable(_ours(path))
    assert sorted(ours.latitude.values) == [LAT0 + j for j in range(NJ)]
    assert sorted(ours.longitude.values) == [LON0 + i for i in range(NI)]
    expected = _field(ours.latitude.values[:, None], ours.longitude.values[None, :])
    np.testing.assert_array_equal(ours.transpose("latitude", "longitude").values, expected)
    if not i_negative:  # cfgrib labels longitudes ascending whatever iScansNegatively says, with
        # the values still in storage order: on i- files it disagrees with ecCodes itself
        assert_equal_by_label(_only_variable(_theirs(path)[0]), ours)


@pytest.mark.parametrize("packing", ["grid_complex", "grid_complex_spatial_differencing"])
@pytest.mark.parametrize("alternate", [0, 1], ids=["plain-rows", "alternate-rows"])
def test_missing_points_without_a_bitmap_are_nan(
    tmp_path: Path, packing: str, alternate: int
) -> None:
    path = tmp_path / "missing.grib2"
    flagged = (1, 5, 7, 20)
    stored = _write_grib(path, packing=packing, alternate=alternate, missing=flagged)
    assert _missing_counts(path) == len(flagged)  # ecCodes agrees the file says so
    assert _first_message_keys(path, "bitmapPresent") == {"bitmapPresent": 0}
    ours = _only_variable(_ours(path)).transpose("latitude", "longitude")
    lats = [LAT0 + j for j in range(NJ)][::-1]  # j-: storage rows run north to south
    lons = [LON0 + i for i in range(NI)]
    for position in flagged:
        j, i = divmod(position, NI)
        lon = lons[::-1][i] if alternate and j % 2 else lons[i]
        assert np.isnan(ours.sel(latitude=lats[j], longitude=lon).item())
    assert int(np.isnan(ours.values).sum()) == len(flagged)
    kept = ~np.isnan(ours.values)
    expected = _field(ours.latitude.values[:, None], ours.longitude.values[None, :])
    np.testing.assert_array_equal(ours.values[kept], expected[kept])
    assert not (ours.values == 9999.0).any() and (stored == 9999.0).sum() == len(flagged)
    assert_equal_by_label(_only_variable(_theirs(path)[0]), ours)


def test_alternate_rows_the_codec_cannot_undo_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "columns.grib2"
    try:
        _write_grib(path, alternate=1, j_consecutive=1)
    except eccodes.CodesInternalError as exc:
        pytest.skip(f"ecCodes cannot write consecutive-j points here: {exc}")
    with pytest.raises(UnsupportedFeatureError, match="alternative row scanning"):
        open_virtual(str(path))
