"""Splitting one contiguous block of values into chunks of whole rows.

Contiguous HDF5 datasets and NetCDF3 fixed-size variables are one block of bytes, row after row. A
block larger than twice ``SLAB_BYTES`` is referenced as slabs of about ``SLAB_BYTES`` along the
first axis, so a reader fetches only the rows it needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from readers.types import refs_table

__all__ = ["SLAB_BYTES", "block_refs", "rows_per_slab"]

SLAB_BYTES = 8 << 20


def rows_per_slab(rows: int, row_bytes: int) -> int:
    """How many rows one slab holds: all of them for small blocks; else about ``SLAB_BYTES``,
    preferring a count that divides ``rows`` (within half of it) so no slab is partial."""
    if rows * row_bytes <= 2 * SLAB_BYTES:
        return max(rows, 1)
    target = max(SLAB_BYTES // max(row_bytes, 1), 1)
    candidates = np.arange(target // 2 + 1, target + 1)
    divisors = candidates[rows % candidates == 0]
    return int(divisors[-1]) if len(divisors) else target


def block_refs(
    begin: int,
    shape: tuple[int, ...],
    itemsize: int,
    last_slab: Callable[[int, tuple[int, ...]], bytes],
) -> tuple[tuple[int, ...], pa.Table]:
    """Chunk shape and refs of a block of ``shape`` values at byte ``begin``: one chunk, or
    slabs of whole rows. When the rows do not divide evenly, ``last_slab(first_row,
    chunk_shape)`` gives the last slab's bytes padded to a whole chunk (a chunk must be whole),
    which are kept in the repository."""
    ndim = len(shape)
    whole = tuple(max(s, 1) for s in shape)
    row_bytes = math.prod(shape[1:]) * itemsize
    rows = rows_per_slab(shape[0], row_bytes) if shape else 1
    if not shape or rows >= shape[0]:
        nbytes = math.prod(shape) * itemsize
        return whole, refs_table(np.zeros((1, ndim), dtype=np.int64), [begin], [nbytes])
    count = shape[0] // rows
    coords = np.zeros((count, ndim), dtype=np.int64)
    coords[:, 0] = np.arange(count)
    offsets = begin + coords[:, 0] * rows * row_bytes
    lengths = np.full(count, rows * row_bytes)
    chunk_shape = (rows, *whole[1:])
    if shape[0] % rows == 0:
        return chunk_shape, refs_table(coords, offsets, lengths)
    last = last_slab(count * rows, chunk_shape)
    inline: list[bytes | None] = [None] * count + [last]
    coords = np.vstack([coords, np.eye(1, ndim, dtype=np.int64) * count])
    return chunk_shape, refs_table(coords, [*offsets, 0], [*lengths, len(last)], inline=inline)
