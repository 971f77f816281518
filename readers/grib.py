"""GRIB reader (editions 1 and 2): one chunk per message, messages assembled into hypercubes.

Scanning finds each message from its header (``GRIB``, edition, total length, ``7777`` at the end)
and reads its keys with ecCodes without decoding values. Messages with the same parameter, level
type, step type and grid form one variable whose dimensions are the keys that vary among them:
``number`` (ensemble member), ``time`` (reference time), ``step``, and the level (named after its
type, e.g. ``isobaricInhPa``); keys that do not vary become scalar coordinates. Combinations no
message covers read as NaN. A message whose coordinates another already holds starts a second
variable (``<name>_dup1``...), so every message ends up in some variable.

Grids: regular latitude/longitude and Gaussian grids get 1-D ``latitude`` / ``longitude``;
other grids with rows and columns (Lambert, polar stereographic, Mercator, alternate row scanning)
get ``y`` / ``x`` with 2-D coordinates; the rest (reduced Gaussian, spherical harmonics) a
``values`` dimension. Coordinates are computed at scan time with ecCodes' geo-iterator and kept in
the repository; attributes follow cfgrib's names (``GRIB_shortName``, ``units``...). Chunks decode
with the ``icechunk_virtual.grib`` codec, which returns values in the coordinates' order (it undoes
alternative row scanning) with every missing point as NaN (:mod:`readers.codecs.grib`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np

from readers.codecs import GRIB_CODEC
from readers.errors import CorruptFileError, ReaderError, UnsupportedFeatureError
from readers.grib_messages import message_spans
from readers.paths import local_path
from readers.types import VirtualArray, VirtualDataset, refs_table

__all__ = ["GribReader"]

_DIMENSION_KEYS = ("number", "time", "step", "level")
_EPOCH = np.datetime64("1970-01-01T00:00:00", "s")


class GribReader:
    """Reads GRIB 1 and GRIB 2 files."""

    name = "grib"

    def sniff(self, header: bytes) -> bool:
        """A GRIB 1 or 2 message starts in the first bytes, maybe after others (a WMO bulletin
        header, a record length), as ecCodes finds it."""
        if header[:4] == b"GRIB":  # (any edition: the scan names an unsupported one)
            return True
        position = header.find(b"GRIB")
        while position != -1 and position + 7 < len(header):
            if header[position + 7] in (1, 2):
                return True
            position = header.find(b"GRIB", position + 1)
        return False

    def scan(self, url: str, *, storage_options: Mapping[str, Any] | None = None) -> VirtualDataset:
        try:
            local = local_path(url)
            if local is not None:
                with open(local, "rb") as f:
                    data = f.read()
            else:
                with fsspec.open(url, "rb", **dict(storage_options or {})) as f:
                    data = f.read()
        except FileNotFoundError as exc:
            raise ReaderError(url, "the file does not exist") from exc
        seen = _Seen()
        messages = [_read_message(url, data, i, o, n, seen)
                    for i, (o, n) in enumerate(message_spans(url, data))]  # fmt: skip
        return _Assembly(url, messages).run()


@dataclass(frozen=True, slots=True)
class _Grid:
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    coordinates: dict[str, tuple[tuple[str, ...], np.ndarray]]
    """Coordinate name -> (its grid dims, values)."""


@dataclass(slots=True)
class _Message:
    offset: int
    length: int
    keys: dict[str, Any]
    grid: _Grid
    index: tuple[Any, ...] = field(default=())


@dataclass(slots=True)
class _Seen:
    """What one file's messages share, worked out once: grids' coordinates, parameters' names."""

    grids: dict[str, _Grid] = field(default_factory=dict)
    parameters: dict[int, dict[str, str]] = field(default_factory=dict)


def _read_message(
    url: str, data: bytes, index: int, offset: int, length: int, seen: _Seen
) -> _Message:
    import eccodes

    try:
        handle = eccodes.codes_new_from_message(data[offset : offset + length])
    except Exception as exc:  # ecCodes raises its own error tree
        raise CorruptFileError(url, offset, f"GRIB message {index}: {exc}") from exc
    try:
        get = _getter(handle)
        eccodes.codes_set(handle, "stepUnits", "m")
        param = get("paramId", int, 0)
        if param not in seen.parameters:  # names are table lookups, slow in ecCodes
            seen.parameters[param] = {
                k: get(k, str, "unknown") for k in ("name", "units", "cfName")
            }
        keys = {
            "shortName": get("shortName", str, "unknown"),
            "paramId": param,
            **seen.parameters[param],
            "typeOfLevel": get("typeOfLevel", str, "unknown"),
            "stepType": get("stepType", str, "instant"),
            "gridType": get("gridType", str, "unknown"),
            "edition": get("edition", int, 0),
            "md5GridSection": get("md5GridSection", str, ""),
            "number": get("number", int, 0),
            "level": get("level", float, 0.0),
            "step": get("endStep", int, 0),
            "time": _reference_time(get),
        }
        grid_key = keys["md5GridSection"] + keys["gridType"]
        if not keys["md5GridSection"] or grid_key not in seen.grids:
            seen.grids[grid_key] = _grid(handle, get, keys["gridType"])
            _check_scanning(url, keys, get, seen.grids[grid_key])
        grid = seen.grids[grid_key]
    except (eccodes.CodesInternalError, ValueError) as exc:
        raise CorruptFileError(url, offset, f"GRIB message {index}: {exc}") from exc
    finally:
        eccodes.codes_release(handle)
    return _Message(offset, length, keys, grid)


def _getter(handle: Any) -> Any:
    import eccodes

    def get(key: str, kind: type, default: Any) -> Any:
        try:
            if not eccodes.codes_is_defined(handle, key) or eccodes.codes_is_missing(handle, key):
                return default
            return eccodes.codes_get(handle, key, ktype=kind)
        except eccodes.KeyValueNotFoundError:
            return default

    return get


def _reference_time(get: Any) -> int:
    """The reference time as seconds since 1970-01-01."""
    date, clock = int(get("dataDate", int, 19700101)), int(get("dataTime", int, 0))
    day = np.datetime64(f"{date // 10000:04d}-{date // 100 % 100:02d}-{date % 100:02d}", "s")
    return int((day - _EPOCH).astype(np.int64)) + clock // 100 * 3600 + clock % 100 * 60


def _grid(handle: Any, get: Any, grid_type: str) -> _Grid:
    import eccodes

    size = int(eccodes.codes_get_size(handle, "values"))
    ni, nj = get("Ni", int, 0), get("Nj", int, 0)
    try:
        lats = np.asarray(eccodes.codes_get_array(handle, "latitudes"), dtype=np.float64)
        lons = np.asarray(eccodes.codes_get_array(handle, "longitudes"), dtype=np.float64)
    except eccodes.CodesInternalError:  # spherical harmonics and other grids without points
        return _Grid(("values",), (size,), {})
    if lats.size != size:
        return _Grid(("values",), (size,), {})
    if ni > 0 and nj > 0 and ni * nj == size and not get("jPointsAreConsecutive", int, 0):
        lats2, lons2 = lats.reshape(nj, ni), lons.reshape(nj, ni)
        separable = (lats2 == lats2[:, :1]).all() and (lons2 == lons2[:1, :]).all()
        if separable and grid_type in ("regular_ll", "regular_gg"):
            return _Grid(
                ("latitude", "longitude"),
                (nj, ni),
                {
                    "latitude": (("latitude",), lats2[:, 0]),
                    "longitude": (("longitude",), lons2[0, :]),
                },
            )
        return _Grid(("y", "x"), (nj, ni),
                     {"latitude": (("y", "x"), lats2), "longitude": (("y", "x"), lons2)})  # fmt: skip
    return _Grid(("values",), (size,),
                 {"latitude": (("values",), lats), "longitude": (("values",), lons)})  # fmt: skip


def _check_scanning(url: str, keys: dict[str, Any], get: Any, grid: _Grid) -> None:
    """Refuse alternative row scanning where the codec could not undo it: it reverses every
    second row of ``Ni`` points, so the field must be rows of ``Ni`` consecutive points."""
    if not get("alternativeRowScanning", int, 0):
        return
    rows = grid.dims != ("values",) and not get("jPointsAreConsecutive", int, 0)
    if not rows or grid.shape[-1] != get("Ni", int, 0):
        raise UnsupportedFeatureError(
            url,
            keys["shortName"],
            f"alternative row scanning on a {keys['gridType']} grid that is not rows of Ni "
            "consecutive points",
        )


_COORDINATE_ATTRIBUTES: dict[str, dict[str, Any]] = {
    "number": {"long_name": "ensemble member numerical id", "standard_name": "realization"},
    "time": {"long_name": "initial time of forecast", "standard_name": "forecast_reference_time",
             "units": "seconds since 1970-01-01T00:00:00", "calendar": "proleptic_gregorian"},
    "step": {"long_name": "time since forecast_reference_time",
             "standard_name": "forecast_period", "units": "minutes"},
    "valid_time": {"long_name": "time", "standard_name": "time",
                   "units": "seconds since 1970-01-01T00:00:00", "calendar": "proleptic_gregorian"},
    "latitude": {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude"},
    "longitude": {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"},
}  # fmt: skip


class _Assembly:
    """Groups messages into variables and names their coordinates without clashes."""

    def __init__(self, url: str, messages: list[_Message]) -> None:
        self.url = url
        self.messages = messages
        self.arrays: dict[str, VirtualArray] = {}
        self.coordinate_values: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
        self.dimension_lengths: dict[str, int] = {}

    def run(self) -> VirtualDataset:
        groups: dict[tuple[Any, ...], list[list[_Message]]] = {}
        for message in self.messages:
            k = message.keys
            key = (k["shortName"], k["paramId"], k["typeOfLevel"], k["stepType"],
                   k["md5GridSection"], message.grid.shape)  # fmt: skip
            message.index = tuple(k[d] for d in _DIMENSION_KEYS)
            generations = groups.setdefault(key, [])
            for generation in generations:  # the first generation without these coordinates
                if all(m.index != message.index for m in generation):
                    generation.append(message)
                    break
            else:
                generations.append([message])
        names: set[str] = set()
        first_of: dict[str, tuple[str, str]] = {}
        for (short_name, param, level_type, step_type, *_), generations in groups.items():
            base = short_name if short_name != "unknown" else f"param{param}"
            first = first_of.setdefault(base, (level_type, step_type))
            # a later variable of the same parameter is named by what sets it apart
            differing = [v for v, f in zip((level_type, step_type), first, strict=True) if v != f]
            name = "_".join([base, *differing]) if differing else base
            if name in names:
                name = "_".join([base, *differing, "grid"])
            suffix = 1
            while name in names:
                name, suffix = f"{base}_{suffix}", suffix + 1
            for g, generation in enumerate(generations):
                variable = name if g == 0 else f"{name}_dup{g}"
                names.add(variable)
                self._variable(variable, generation)
        return VirtualDataset(self.url, {"/": {"GRIB_edition": sorted(
            {m.keys["edition"] for m in self.messages})}}, self.arrays)  # fmt: skip

    def _variable(self, name: str, messages: list[_Message]) -> None:
        first = messages[0]
        level_type = first.keys["typeOfLevel"]
        dims: list[str] = []
        positions: list[np.ndarray] = []
        scalars: list[str] = []
        axes: dict[str, tuple[str, np.ndarray]] = {}
        for i, key in enumerate(_DIMENSION_KEYS):
            values = np.array([m.index[i] for m in messages])
            distinct = np.unique(values)
            base = level_type if key == "level" else key
            attributes = _COORDINATE_ATTRIBUTES.get(key, {"long_name": level_type})
            if len(distinct) > 1:
                dim = self._coordinate(base, (base,), distinct, attributes)
                dims.append(dim)
                positions.append(np.searchsorted(distinct, values))
                axes[key] = (dim, distinct)
            else:
                scalars.append(self._coordinate(base, (), distinct.reshape(()), attributes))
                axes[key] = ("", distinct.reshape(()))
        scalars.append(self._valid_time(axes))
        grid_dims = []
        renamed = {}
        for dim, length in zip(first.grid.dims, first.grid.shape, strict=True):
            renamed[dim] = self._dimension(dim, length, first.grid)
            grid_dims.append(renamed[dim])
        for coordinate, (cdims, values) in first.grid.coordinates.items():
            target = tuple(renamed[d] for d in cdims)
            scalars.append(self._coordinate(coordinate, target, values,
                                            _COORDINATE_ATTRIBUTES[coordinate]))  # fmt: skip
        shape = tuple(self.dimension_lengths[d] for d in dims) + first.grid.shape
        grid_zeros = np.zeros((len(messages), len(first.grid.shape)), dtype=np.int64)
        coords = np.column_stack([*positions, grid_zeros]) if positions else grid_zeros
        k = first.keys
        attributes = {
            "GRIB_paramId": k["paramId"], "GRIB_shortName": k["shortName"],
            "GRIB_name": k["name"], "GRIB_units": k["units"], "GRIB_typeOfLevel": level_type,
            "GRIB_stepType": k["stepType"], "GRIB_gridType": k["gridType"],
            "long_name": k["name"], "units": k["units"],
            "coordinates": " ".join(sorted(set(scalars) - set(dims))),
        }  # fmt: skip
        if k["cfName"] != "unknown":
            attributes["standard_name"] = k["cfName"]
        if 0 in first.grid.shape:  # a grid of no points (ecCodes reads it: no values): no chunks
            coords, messages = coords[:0], []
        self.arrays["/" + name] = VirtualArray(
            path="/" + name,
            shape=shape,
            dtype=np.dtype("<f8"),
            chunk_shape=(1,) * len(dims) + tuple(max(n, 1) for n in first.grid.shape),
            codecs=({"name": GRIB_CODEC, "configuration": {}},),
            fill_value=float("nan"),
            attributes=attributes,
            dimension_names=(*dims, *grid_dims),
            refs=refs_table(coords, [m.offset for m in messages], [m.length for m in messages]),
        )

    def _valid_time(self, axes: dict[str, tuple[str, np.ndarray]]) -> str:
        (time_dim, times), (step_dim, steps) = axes["time"], axes["step"]
        dims = tuple(d for d in (time_dim, step_dim) if d)
        values = times.reshape(times.shape + (1,) * steps.ndim) + steps * 60
        return self._coordinate("valid_time", dims, values, _COORDINATE_ATTRIBUTES["valid_time"])

    def _dimension(self, base: str, length: int, grid: _Grid) -> str:
        """A grid dimension's name: ``base``, or ``base_<n>`` when another grid uses ``base``
        with other coordinates."""
        name, suffix = base, 1
        while name in self.dimension_lengths:
            if self.dimension_lengths[name] == length and self._same_grid(name, base, grid):
                return name
            name, suffix = f"{base}_{suffix}", suffix + 1
        self.dimension_lengths[name] = length
        return name

    def _same_grid(self, name: str, base: str, grid: _Grid) -> bool:
        own = grid.coordinates.get(base)
        known = self.coordinate_values.get(name)
        if own is None or known is None:  # no coordinate of its own: compare the grid's
            return all(
                self.coordinate_values.get(c) is not None
                and np.array_equal(self.coordinate_values[c][1], v)
                for c, (_, v) in grid.coordinates.items()
            )
        return np.array_equal(known[1], own[1])

    def _coordinate(
        self, base: str, dims: tuple[str, ...], values: np.ndarray, attributes: dict[str, Any]
    ) -> str:
        """Store a coordinate once; a different one of the same name gets a suffix. A 1-D
        coordinate named after its own dimension is that dimension's index."""
        name, suffix = base, 1
        while name in self.coordinate_values:
            known_dims, known = self.coordinate_values[name]
            same = known.shape == values.shape and np.array_equal(known, values)
            if same and (len(dims) != 1 or dims[0] != base or known_dims == (name,)):
                return name
            name, suffix = f"{base}_{suffix}", suffix + 1
        if len(dims) == 1 and dims[0] == base:
            dims = (name,)
            self.dimension_lengths[name] = len(values)
        self.coordinate_values[name] = (dims, values)
        self.arrays["/" + name] = _native_array(name, dims, values, attributes)
        return name


def _native_array(
    name: str, dims: tuple[str, ...], values: np.ndarray, attributes: dict[str, Any]
) -> VirtualArray:
    """A coordinate computed at scan time, kept in the repository (one chunk)."""
    values = np.array(values, dtype=values.dtype.newbyteorder("<"), order="C")  # keeps 0-d
    shape = tuple(int(s) for s in values.shape)
    data = values.tobytes()
    return VirtualArray(
        path="/" + name,
        shape=shape,
        dtype=values.dtype,
        chunk_shape=tuple(max(s, 1) for s in shape),
        codecs=({"name": "bytes", "configuration": {"endian": "little"}},),
        fill_value=0,
        attributes=attributes,
        dimension_names=dims,
        refs=refs_table(np.zeros((1, len(shape)), dtype=np.int64), [0], [len(data)], inline=[data]),
    )
