"""The chunks the xarray engine prefers: whole stored chunks, grouped into tasks of a useful size.

xarray takes a backend's ``preferred_chunks`` for ``chunks={}`` and aligns ``chunks="auto"`` to
them. With the stored chunks themselves (xarray's default for Zarr), a dask graph over an archive
has one task per stored chunk — often a few hundred kilobytes each — and the scheduler's per-task
cost, not the reading, sets the speed. So the engine advertises *groups* of stored chunks, as
zarr advertises shards: each group is a whole number of stored chunks along every dimension, so no
stored chunk is split between two tasks, and a task reads its chunks through the batched pipeline
in one call. A group grows from the last (fastest-varying) dimension outwards — whole rows, then
whole planes — until it would exceed the target size, so a group is contiguous in the output.
"""

from __future__ import annotations

import math

__all__ = ["DEFAULT_TASK_BYTES", "grouped_chunks"]

DEFAULT_TASK_BYTES = 64 * 2**20
"""Decoded bytes a preferred chunk aims for: large enough that the scheduler's per-task cost is
noise, small enough that two cores get several tasks of a one-variable read."""


def grouped_chunks(
    shape: tuple[int, ...], chunks: tuple[int, ...], itemsize: int, target_bytes: int
) -> tuple[int, ...]:
    """Chunk sizes made of whole stored ``chunks``, at most ``target_bytes`` decoded (but never
    less than one stored chunk), grown from the last dimension outwards.

    ``target_bytes <= 0`` means the stored chunks themselves.
    """
    group = list(chunks)
    if target_bytes <= 0 or not chunks:
        return tuple(group)
    nbytes = math.prod(chunks) * max(itemsize, 1)
    for axis in reversed(range(len(chunks))):
        count = -(-shape[axis] // chunks[axis]) if chunks[axis] else 0
        if count <= 1:
            continue
        factor = min(count, max(1, target_bytes // nbytes))
        group[axis] = min(chunks[axis] * factor, shape[axis])
        nbytes *= factor
        if factor < count:
            break
    return tuple(group)
