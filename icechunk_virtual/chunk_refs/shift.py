"""Moving chunk refs along one axis: room for chunks inserted in the middle of an array.

A late file of a daily archive belongs between two committed ones; its chunks go into a gap
opened by moving every later chunk along the concatenation axis. Only refs move (virtual refs
keep pointing at the same bytes, native refs at the same chunk objects): vectorised over the
array's refs, with no file read and no chunk copied.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from icechunk_virtual.chunk_refs.tables import (
    coords_of,
    empty_refs,
    extent_of,
    linear_index,
    native_refs,
)
from icechunk_virtual.format.manifest_file import ChunkKind

__all__ = ["shifted_refs"]


def shifted_refs(refs: pa.Table, ndim: int, axis: int, start: int, by: int) -> pa.Table:
    """The changes that move every chunk of ``refs`` at index ``start`` or later along ``axis``
    by ``by`` (> 0): each such row at its new coordinate, and a tombstone at every coordinate
    it leaves that no moved row takes (so a chunk the inserted data does not write reads as the
    fill value, never as the chunk that was there).

    ``refs``: an array's live refs, one row per coordinate (tombstones are ignored).
    """
    if by <= 0:
        raise ValueError(f"chunks are shifted forward, not by {by}")
    live = pc.not_equal(refs.column("kind"), pa.scalar(ChunkKind.DELETED, pa.int8()))
    column = refs.column(f"c{axis}")
    tail = refs.filter(pc.and_(live, pc.greater_equal(column, pa.scalar(start, column.type))))
    if tail.num_rows == 0:
        return empty_refs(ndim)
    at = tail.schema.get_field_index(f"c{axis}")
    moved_column = pc.add(tail.column(at), pa.scalar(by, tail.schema.field(at).type))
    moved = tail.set_column(at, tail.schema.field(at), moved_column)
    before, after = coords_of(tail, ndim), coords_of(moved, ndim)
    extent = extent_of(after, ndim)
    vacated = before[~np.isin(linear_index(before, extent), linear_index(after, extent))]
    n = len(vacated)
    tombstones = native_refs(ndim, [tuple(c) for c in vacated], [ChunkKind.DELETED] * n,
                             [None] * n, [0] * n, [None] * n)  # fmt: skip
    return pa.concat_tables([moved, tombstones.cast(moved.schema)]).unify_dictionaries()
