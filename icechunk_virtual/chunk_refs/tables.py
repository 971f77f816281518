"""Chunk-ref tables in Arrow: build, merge, split and look up, all vectorised.

A chunk-ref table has the schema of :func:`icechunk_virtual.format.manifest_file.manifest_schema`
and is sorted by coordinate (row-major, i.e. lexicographic). Coordinates compare through a linear
index over a grid at least as large as every coordinate involved, which turns sorting, merging and
lookup into numpy operations on one int64 array.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from icechunk_virtual.chunk_refs.grid import check_coords
from icechunk_virtual.chunk_refs.user_refs import user_array, user_column, user_coords
from icechunk_virtual.errors import InvalidInputError
from icechunk_virtual.format.manifest_file import ChunkKind, coord_names, manifest_schema

__all__ = [
    "ChunkRef",
    "IndexedRefs",
    "apply_changes",
    "concat_refs",
    "coords_of",
    "empty_refs",
    "extent_of",
    "keep_last",
    "linear_index",
    "native_refs",
    "row_ref",
    "split",
    "virtual_refs",
]

type Int64s = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """Where one chunk's bytes are. For single lookups and messages; bulk refs are Arrow tables."""

    kind: ChunkKind
    location: str | None
    """URL (virtual) or chunk id (native)."""
    offset: int
    length: int
    inline: bytes | None = None
    checksum: str | None = None


def empty_refs(ndim: int) -> pa.Table:
    return manifest_schema(ndim).empty_table()


def coords_of(table: pa.Table, ndim: int, dtype: type[np.integer[Any]] = np.int64) -> Int64s:
    """The (n, ndim) coordinates of a chunk-ref table (int64 unless ``dtype`` says otherwise)."""
    out = np.empty((table.num_rows, ndim), dtype=dtype)
    for i, name in enumerate(coord_names(ndim)):
        out[:, i] = table.column(name).to_numpy()
    return out


def extent_of(coords: Int64s, ndim: int) -> tuple[int, ...]:
    """Per-dimension maximum coordinate + 1."""
    if len(coords) == 0:
        return (0,) * ndim
    return tuple(int(coords[:, i].max()) + 1 for i in range(ndim))  # per column: no strided reduce


def linear_index(coords: Int64s, extent: Sequence[int] | npt.NDArray[np.int64]) -> Int64s:
    """Row-major position of each coordinate in a grid of ``extent`` (order-preserving).

    Grids of 2**62 cells or more, and coordinates outside the grid, are an ``InvalidInputError``.
    """
    if coords.shape[1] == 0:
        return np.zeros(len(coords), dtype=np.int64)
    dims = np.maximum(np.asarray(extent, dtype=np.int64), 1)
    if float(np.prod(dims.astype(np.float64))) >= 2.0**62:
        raise InvalidInputError(f"chunk grid {tuple(extent)} is too large to index")
    if (coords < 0).any() or (coords >= dims).any():
        raise InvalidInputError(f"chunk coordinates outside the grid {tuple(extent)}")
    flat: Int64s = coords[:, 0].astype(np.int64, copy=True)
    for i in range(1, coords.shape[1]):  # Horner: ((c0 * d1) + c1) * d2 + c2 ...
        flat *= dims[i]
        flat += coords[:, i]
    return flat


def _dictionary(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        return values.cast(pa.dictionary(pa.int32(), pa.string()))
    return pc.dictionary_encode(values.cast(pa.string())).cast(
        pa.dictionary(pa.int32(), pa.string())
    )


def _assemble(
    ndim: int,
    coords: Int64s,
    kind: pa.Array,
    location: pa.Array,
    offset: pa.Array,
    length: pa.Array,
    inline: pa.Array,
    checksum: pa.Array,
) -> pa.Table:
    columns = [pa.array(coords[:, i], type=pa.int32()) for i in range(ndim)]
    columns += [kind, location, offset, length, inline, checksum]
    return pa.Table.from_arrays(columns, schema=manifest_schema(ndim))


def _coord(row: Int64s) -> tuple[int, ...]:
    return tuple(int(v) for v in row)


def virtual_refs(
    refs: Mapping[str, Any] | pa.Table, *, ndim: int, grid: Sequence[int] | None, where: str
) -> pa.Table:
    """A sorted chunk-ref table of virtual refs from a user's table or dict of columns.

    Checks every row at once and names the first bad one: coordinates inside the chunk grid,
    positive lengths, non-null locations.
    """
    try:
        location = _dictionary(user_array(refs, "location", pa.string()))
        offset = user_array(refs, "offset", pa.uint64())
        length = user_array(refs, "length", pa.uint64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as exc:  # (negative)
        raise InvalidInputError(
            f"{where}: refs need 'location' (str), 'offset' and 'length' (non-negative ints): {exc}"
        ) from exc
    coords = user_coords(refs, ndim, where, rows=len(offset))
    n = len(coords)
    for name, column in (("location", location), ("offset", offset), ("length", length)):
        if len(column) != n:
            raise InvalidInputError(f"{where}: column '{name}' has {len(column)} rows, coords {n}")
        if column.null_count:
            bad = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise InvalidInputError(
                f"{where}: ref {bad} (coord {_coord(coords[bad])}) has no {name}"
            )
    zero = np.flatnonzero(length.to_numpy() == 0)
    if len(zero):
        raise InvalidInputError(
            f"{where}: ref {zero[0]} (coord {_coord(coords[zero[0]])}) has length 0"
        )
    check_coords(coords, grid, where)
    try:
        checksum = (
            _dictionary(user_array(refs, "checksum", pa.string()))
            if user_column(refs, "checksum") is not None
            else pa.nulls(n, pa.dictionary(pa.int32(), pa.string()))
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise InvalidInputError(f"{where}: refs' 'checksum' must be strings: {exc}") from exc
    kind = pa.array(np.full(n, ChunkKind.VIRTUAL, dtype=np.int8))
    table = _assemble(
        ndim, coords, kind, location, offset, length, pa.nulls(n, pa.binary()), checksum
    )
    return keep_last(table, ndim)


def native_refs(
    ndim: int,
    coords: Sequence[tuple[int, ...]],
    kinds: Sequence[int],
    locations: Sequence[str | None],
    lengths: Sequence[int],
    inlines: Sequence[bytes | None],
) -> pa.Table:
    """A chunk-ref table from a session's buffered per-chunk writes (native, inline, tombstones)."""
    n = len(coords)
    coord_array = np.asarray(coords, dtype=np.int64).reshape(n, ndim)
    return _assemble(
        ndim,
        coord_array,
        pa.array(kinds, type=pa.int8()),
        _dictionary(pa.array(locations, type=pa.string())),
        pa.array(np.zeros(n, dtype=np.uint64)),
        pa.array(lengths, type=pa.uint64()),
        pa.array(inlines, type=pa.binary()),
        pa.nulls(n, pa.dictionary(pa.int32(), pa.string())),
    )


def concat_refs(tables: Sequence[pa.Table]) -> pa.Table:
    """One chunk-ref table of several (dictionaries unified)."""
    return pa.concat_tables(tables).unify_dictionaries().combine_chunks()


def keep_last(table: pa.Table, ndim: int) -> pa.Table:
    """Sort by coordinate, keeping only the last row written for each coordinate (``table``
    itself if it is sorted and unique already)."""
    if table.num_rows == 0:
        return table
    coords = coords_of(table, ndim)
    index = linear_index(coords, extent_of(coords, ndim))
    del coords
    if bool(np.all(index[1:] > index[:-1])):
        return table  # already sorted and unique: the common case of a reader's refs, no copy
    # A stable sort keeps write order among equal coordinates; the last of each run wins.
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = sorted_index[1:] != sorted_index[:-1]
    return table.take(pa.array(order[last]))


def apply_changes(base: pa.Table, changes: pa.Table, ndim: int) -> pa.Table:
    """``base`` with ``changes`` applied (both sorted, ``changes`` one row per coordinate).

    Rows of ``changes`` replace base rows of the same coordinate; tombstones remove them. No
    copy when there is nothing to merge: ``base`` itself if ``changes`` is empty, ``changes``
    itself if ``base`` is and ``changes`` has no tombstones.
    """
    if changes.num_rows == 0:
        return base
    live = changes.column("kind").to_numpy() != ChunkKind.DELETED
    if base.num_rows == 0:
        return changes if bool(live.all()) else changes.filter(pa.array(live))
    if bool(live.all()) and _row(base, -1, ndim) < _row(changes, 0, ndim):
        return concat_refs([base, changes])  # all after the base (an append): nothing to merge
    base_coords, change_coords = coords_of(base, ndim), coords_of(changes, ndim)
    extent = np.maximum(
        np.asarray(extent_of(base_coords, ndim), dtype=np.int64),
        np.asarray(extent_of(change_coords, ndim), dtype=np.int64),
    )
    base_index = linear_index(base_coords, extent)
    change_index = linear_index(change_coords, extent)
    kept_base = base.filter(pa.array(~np.isin(base_index, change_index)))
    merged = concat_refs([kept_base, changes.filter(pa.array(live))])
    merged_index = np.concatenate(
        [base_index[~np.isin(base_index, change_index)], change_index[live]]
    )
    return merged.take(pa.array(np.argsort(merged_index, kind="stable")))


def _row(table: pa.Table, row: int, ndim: int) -> tuple[int, ...]:
    """One row's coordinate (sorted tables are in its lexicographic order)."""
    row = row % table.num_rows
    return tuple(table.column(name)[row].as_py() for name in coord_names(ndim))


def split(table: pa.Table, max_rows: int) -> list[pa.Table]:
    """Consecutive slices of at most ``max_rows`` rows (coordinate ranges stay disjoint)."""
    return [table.slice(start, max_rows) for start in range(0, table.num_rows, max_rows)]


@dataclass(frozen=True, slots=True, eq=False)
class _Columns:
    """A chunk-ref table's columns as numpy arrays, for per-chunk lookups without Arrow calls."""

    kind: npt.NDArray[np.int8]
    offset: npt.NDArray[np.uint64]
    length: npt.NDArray[np.uint64]
    location_codes: npt.NDArray[np.int32]
    locations: list[str | None]
    checksum_codes: npt.NDArray[np.int32]
    checksums: list[str | None]

    @classmethod
    def of(cls, table: pa.Table) -> _Columns:
        location = _dictionary(table.column("location"))
        checksum = _dictionary(table.column("checksum"))
        return cls(
            kind=table.column("kind").to_numpy(),
            offset=table.column("offset").to_numpy(),
            length=table.column("length").to_numpy(),
            location_codes=location.indices.fill_null(-1).to_numpy(),
            locations=location.dictionary.to_pylist(),
            checksum_codes=checksum.indices.fill_null(-1).to_numpy(),
            checksums=checksum.dictionary.to_pylist(),
        )


@dataclass(slots=True, eq=False)
class IndexedRefs:
    """A sorted chunk-ref table with its linear index, for repeated single-chunk lookups."""

    table: pa.Table
    ndim: int
    extent: tuple[int, ...]
    index: Int64s
    _columns: _Columns | None = None
    _lookups: int = 0

    @classmethod
    def build(cls, table: pa.Table, ndim: int) -> IndexedRefs:
        coords = coords_of(table, ndim)
        extent = extent_of(coords, ndim)
        return cls(table, ndim, extent, linear_index(coords, extent))

    def lookup(self, coord: tuple[int, ...]) -> ChunkRef | None:
        """The ref at ``coord``, or ``None`` if the table has none there."""
        if len(coord) != self.ndim:
            return None
        key = 0
        for c, e in zip(coord, self.extent, strict=True):
            if c < 0 or c >= e:
                return None
            key = key * e + c
        row = int(np.searchsorted(self.index, key))
        if row >= len(self.index) or self.index[row] != key:
            return None
        if self._columns is None:
            # A random read looks up one chunk of a freshly loaded table: read that row alone.
            # Tables looked up again get numpy columns (a benign race: two threads may build).
            self._lookups += 1
            if self._lookups == 1:
                return row_ref(self.table, row)
        return self._ref_at(row)

    def lookup_many(self, coords: Sequence[tuple[int, ...]]) -> list[ChunkRef | None]:
        """The refs at many coordinates (``None`` where the table has none): one vectorised
        search, for the chunks of one read."""
        if len(self.index) == 0 or any(len(c) != self.ndim for c in coords):
            return [None] * len(coords)
        grid = np.asarray(coords, dtype=np.int64).reshape(len(coords), self.ndim)
        extent = np.asarray(self.extent, dtype=np.int64)
        inside = ((grid >= 0) & (grid < extent)).all(axis=1)
        keys = linear_index(np.where(inside[:, None], grid, 0), extent)
        rows = np.minimum(np.searchsorted(self.index, keys), len(self.index) - 1)
        found = inside & (self.index[rows] == keys)
        return [
            self._ref_at(row) if hit else None
            for row, hit in zip(rows.tolist(), found.tolist(), strict=True)
        ]

    def _ref_at(self, row: int) -> ChunkRef:
        if self._columns is None:
            self._columns = _Columns.of(self.table)
        cols = self._columns
        kind = ChunkKind(int(cols.kind[row]))
        location_code = int(cols.location_codes[row])
        checksum_code = int(cols.checksum_codes[row])
        return ChunkRef(
            kind=kind,
            location=cols.locations[location_code] if location_code >= 0 else None,
            offset=int(cols.offset[row]),
            length=int(cols.length[row]),
            inline=self.table.column("inline")[row].as_py() if kind is ChunkKind.INLINE else None,
            checksum=cols.checksums[checksum_code] if checksum_code >= 0 else None,
        )


def row_ref(table: pa.Table, row: int) -> ChunkRef:
    """The ref in one row of a chunk-ref table."""
    (record,) = table.slice(row, 1).to_pylist()
    return ChunkRef(
        kind=ChunkKind(record["kind"]),
        location=record["location"],
        offset=int(record["offset"]),
        length=int(record["length"]),
        inline=record["inline"],
        checksum=record["checksum"],
    )
