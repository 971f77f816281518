"""Combine scanned files along one dimension (``ingest(..., concat_dim="time")``).

Files are ordered by the values of their ``concat_dim`` coordinate (decoded when it is a CF time,
so files with different ``units`` still order correctly), never by URL. Before anything is
combined every file is checked against the first: the same arrays, dtypes, codecs, fill values,
chunk shapes off the concatenation axis, CF packing and time attributes, and equal values for the
other coordinates; the first difference raises ``IncompatibleSourcesError`` naming both files.

Arrays along ``concat_dim`` get each file's chunk refs shifted to the file's place; when files
differ in length the chunk grid becomes rectilinear. The ``concat_dim`` coordinate itself is
written into the repository, its values re-encoded in the first file's units. Arrays without
``concat_dim`` are taken from the first file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from icechunk_virtual.errors import IncompatibleSourcesError
from readers.types import VirtualArray, VirtualDataset, refs_table

__all__ = [
    "COORDINATE_CHUNK",
    "MUST_AGREE",
    "LoadValues",
    "combine",
    "comparable_values",
    "concat_axis",
    "coordinate_values",
]

LoadValues = Callable[[VirtualDataset, VirtualArray], np.ndarray]
"""Reads an array's values from its file (coordinates only: they are small)."""

COORDINATE_CHUNK = 65_536
"""Values per chunk of the ``concat_dim`` coordinate, which is stored natively: an append
rewrites only its last chunk, however long the archive."""
_ZSTD: dict[str, Any] = {"name": "zstd", "configuration": {"level": 3, "checksum": False}}

MUST_AGREE = ("scale_factor", "add_offset", "units", "calendar", "_FillValue", "missing_value")


def combine(
    datasets: Sequence[VirtualDataset], concat_dim: str, load: LoadValues
) -> VirtualDataset:
    """One dataset holding ``datasets`` laid end to end along ``concat_dim``."""
    coordinate = "/" + concat_dim
    for dataset in datasets:
        if coordinate not in dataset.arrays:
            raise IncompatibleSourcesError(
                f"{dataset.url}: no coordinate '{concat_dim}' to order and combine the files by"
            )
    keys = [
        comparable_values(load(d, d.arrays[coordinate]), d.arrays[coordinate]) for d in datasets
    ]
    order = sorted(range(len(datasets)), key=lambda i: _first(keys[i]))
    ordered = [datasets[i] for i in order]
    _check_no_overlap([keys[i] for i in order], ordered, concat_dim)
    first = ordered[0]
    for other in ordered[1:]:
        _check_compatible(first, other, concat_dim, load)
    arrays: dict[str, VirtualArray] = {}
    for path, array in first.arrays.items():
        if path == coordinate:
            arrays[path] = _coordinate(ordered, coordinate, load, [keys[i] for i in order])
        elif concat_dim in array.dimension_names:
            arrays[path] = _concatenate([d.arrays[path] for d in ordered], ordered, concat_dim)
        else:
            arrays[path] = _with_url(array, first.url)
    return VirtualDataset(first.url, first.groups, arrays)


def comparable_values(values: np.ndarray, array: VirtualArray) -> np.ndarray:
    """Coordinate values that compare across files: CF times decoded."""
    units = array.attributes.get("units")
    if isinstance(units, str) and " since " in units:
        calendar = array.attributes.get("calendar", "standard")
        fast = _decode_plain_times(values, units, calendar)
        if fast is not None:
            return fast
        from xarray.coding.times import decode_cf_datetime

        return np.asarray(decode_cf_datetime(values, units, calendar))
    return np.asarray(values)


_PLAIN_UNITS = re.compile(
    r"^\s*(days|hours|minutes|seconds)\s+since\s+"
    r"(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}(?::\d{2})?))?\s*$"
)
_UNIT_NS = {"days": 86_400 * 10**9, "hours": 3_600 * 10**9, "minutes": 60 * 10**9,
            "seconds": 10**9}  # fmt: skip
_GREGORIAN = ("standard", "gregorian", "proleptic_gregorian")


def _decode_plain_times(values: np.ndarray, units: str, calendar: str) -> np.ndarray | None:
    """Whole numbers of days/hours/minutes/seconds since a Gregorian date after 1582, decoded
    with numpy (the common case, and exactly what xarray gives); ``None`` for anything else."""
    match = _PLAIN_UNITS.match(units)
    if match is None or str(calendar).lower() not in _GREGORIAN or values.dtype.kind not in "iuf":
        return None
    unit, date, clock = match.groups()
    if date < "1582-10-15" or not np.all(np.isfinite(values)):
        return None
    whole = np.asarray(values).astype(np.int64)
    if not np.array_equal(whole, values) or np.abs(whole).max(initial=0) > 2**62 // _UNIT_NS[unit]:
        return None
    origin = np.datetime64(f"{date}T{clock or '00:00'}", "ns")
    return origin + (whole * _UNIT_NS[unit]).astype("timedelta64[ns]")


def _first(values: np.ndarray) -> Any:
    return values.reshape(-1)[0] if values.size else np.inf


def _check_no_overlap(
    keys: list[np.ndarray], ordered: list[VirtualDataset], concat_dim: str
) -> None:
    for (a, da), (b, db) in zip(zip(keys, ordered, strict=True),
                                zip(keys[1:], ordered[1:], strict=True), strict=False):  # fmt: skip
        if a.size and b.size and not a.reshape(-1)[-1] < b.reshape(-1)[0]:
            raise IncompatibleSourcesError(
                f"{da.url} and {db.url} overlap along '{concat_dim}' "
                f"({a.reshape(-1)[-1]} is not before {b.reshape(-1)[0]})"
            )


def _check_compatible(
    first: VirtualDataset, other: VirtualDataset, concat_dim: str, load: LoadValues
) -> None:
    def differ(what: str, path: str, mine: Any, theirs: Any) -> IncompatibleSourcesError:
        return IncompatibleSourcesError(
            f"{first.url} and {other.url} differ in {what} of '{path}': {mine!r} vs {theirs!r}"
        )

    if set(first.arrays) != set(other.arrays):
        path = sorted(set(first.arrays) ^ set(other.arrays))[0]
        raise differ("the variables they hold", path, path in first.arrays, path in other.arrays)
    for path, mine in first.arrays.items():
        theirs = other.arrays[path]
        axis = concat_axis(mine, concat_dim)
        if len(mine.shape) != len(theirs.shape):  # first: the checks below index both shapes
            raise differ("number of dimensions", path, len(mine.shape), len(theirs.shape))
        checks = [
            ("dimensions", mine.dimension_names, theirs.dimension_names),
            ("dtype", str(mine.dtype), str(theirs.dtype)),
            ("codecs", list(mine.codecs), list(theirs.codecs)),
            ("fill value", _same_fill(mine.fill_value), _same_fill(theirs.fill_value)),
        ]
        if path != "/" + concat_dim:
            checks += [(f"attribute '{k}'", _same_fill(mine.attributes.get(k)),
                        _same_fill(theirs.attributes.get(k))) for k in MUST_AGREE]  # fmt: skip
        off_axis = [i for i in range(len(mine.shape)) if i != axis]
        where = "" if axis is None else " off the concatenation axis"
        checks += [
            (f"shape{where}", [mine.shape[i] for i in off_axis],
             [theirs.shape[i] for i in off_axis]),
            (f"chunk shape{where}", [mine.chunk_shape[i] for i in off_axis],
             [theirs.chunk_shape[i] for i in off_axis]),
        ]  # fmt: skip
        for what, a, b in checks:
            if a != b:
                raise differ(what, path, a, b)
        is_coordinate = mine.dimension_names == (path.rsplit("/", 1)[-1],)
        if is_coordinate and axis is None:
            a, b = load(first, mine), load(other, theirs)
            if a.shape != b.shape or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
                raise differ("the values", path, "...", "...")


def _same_fill(value: Any) -> Any:
    """A value that compares equal to itself even when it is NaN."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, list):
        return [_same_fill(v) for v in value]
    return value


def concat_axis(array: VirtualArray, concat_dim: str) -> int | None:
    """The position of ``concat_dim`` among the array's dimensions (``None``: not along it)."""
    names = array.dimension_names
    return names.index(concat_dim) if concat_dim in names else None


def _coordinate(
    ordered: list[VirtualDataset], coordinate: str, load: LoadValues, decoded: list[np.ndarray]
) -> VirtualArray:
    """The concatenation coordinate, written into the repository in the first file's units."""
    first = ordered[0].arrays[coordinate]
    parts = [load(d, d.arrays[coordinate]) for d in ordered]
    units = first.attributes.get("units")
    same_units = all(d.arrays[coordinate].attributes.get("units") == units for d in ordered)
    if isinstance(units, str) and " since " in units and not same_units:
        from xarray.coding.times import encode_cf_datetime

        dates = np.concatenate(decoded)
        calendar = first.attributes.get("calendar", "standard")
        numbers, _, _ = encode_cf_datetime(dates, units, calendar)
        values = np.asarray(numbers)
        if values.dtype.kind == "f" and first.dtype.kind in "iu" and (values % 1 == 0).all():
            values = values.astype(first.dtype)
    else:
        values = np.concatenate(parts)
    values = np.array(values, dtype=values.dtype.newbyteorder("<"), order="C")
    return VirtualArray(
        path=coordinate,
        shape=values.shape,
        dtype=values.dtype,
        chunk_shape=(COORDINATE_CHUNK,),
        codecs=({"name": "bytes", "configuration": {"endian": "little"}}, _ZSTD),
        fill_value=first.fill_value if values.dtype == first.dtype else None,
        attributes=first.attributes,
        dimension_names=first.dimension_names,
        refs=_stored_chunks(values),
    )


def coordinate_values(array: VirtualArray) -> np.ndarray:
    """The values of a ``concat_dim`` coordinate :func:`combine` made (its inline chunks)."""
    from numcodecs import Zstd

    chunks = [Zstd().decode(c) for c in array.refs.column("inline").to_pylist()]
    values = np.frombuffer(b"".join(chunks), dtype=array.dtype)
    return values[: array.shape[0]]


def _stored_chunks(values: np.ndarray) -> pa.Table:
    """``values`` as the inline chunks of a 1-D array of :data:`COORDINATE_CHUNK`-long chunks
    (the last one padded, as Zarr stores edge chunks), each compressed like ``_ZSTD``."""
    from numcodecs import Zstd

    count = max(1, -(-len(values) // COORDINATE_CHUNK))
    padded = np.zeros(count * COORDINATE_CHUNK, dtype=values.dtype)
    padded[: len(values)] = values
    codec = Zstd(level=_ZSTD["configuration"]["level"])
    chunks = [codec.encode(c.tobytes()) for c in np.split(padded, count)]
    return refs_table(np.arange(count)[:, None], [0] * count, [len(c) for c in chunks],
                      inline=chunks)  # fmt: skip


def _concatenate(
    arrays: list[VirtualArray], ordered: list[VirtualDataset], concat_dim: str
) -> VirtualArray:
    first = arrays[0]
    axis = concat_axis(first, concat_dim)
    assert axis is not None
    sizes: list[int] = []  # chunk lengths along the axis, file after file
    partial: list[str] = []  # files whose last chunk along the axis is partly beyond their end
    tables = []
    for array, dataset in zip(arrays, ordered, strict=True):
        length, chunk = array.shape[axis], array.chunk_shape[axis]
        table = array.refs
        shifted = pc.add(table.column(f"c{axis}"), pa.scalar(len(sizes), pa.int32()))
        table = table.set_column(table.schema.get_field_index(f"c{axis}"), f"c{axis}", shifted)
        tables.append(_url_column(table, dataset.url))
        sizes += [chunk] * math.ceil(length / chunk)
        if length % chunk:
            partial.append(dataset.url)
    shape = list(first.shape)
    shape[axis] = sum(a.shape[axis] for a in arrays)
    chunk_shape = list(first.chunk_shape)
    chunk_sizes = None
    if len(set(sizes)) <= 1 and set(partial) <= {ordered[-1].url}:
        chunk_shape[axis] = sizes[0] if sizes else chunk_shape[axis]  # a regular grid
    elif partial:
        # A file's stored chunks hold whole chunks; only the array's last may overhang its end.
        raise IncompatibleSourcesError(
            f"{partial[0]}: '{first.path}' has a partial chunk along '{concat_dim}', so the "
            "files cannot be laid end to end"
        )
    else:  # files of different lengths, each in whole chunks: a rectilinear grid
        chunk_sizes = tuple(tuple(sizes) if i == axis else (first.chunk_shape[i],)
                            for i in range(len(shape)))  # fmt: skip
    return replace(
        first,
        shape=tuple(shape),
        chunk_shape=tuple(chunk_shape),
        chunk_sizes=chunk_sizes,
        refs=pa.concat_tables(tables, promote_options="default"),
    )


def _url_column(table: pa.Table, url: str) -> pa.Table:
    if "url" in table.column_names:
        return table
    return table.append_column("url", pa.array([url] * table.num_rows, pa.string()))


def _with_url(array: VirtualArray, url: str) -> VirtualArray:
    return replace(array, refs=_url_column(array.refs, url))
