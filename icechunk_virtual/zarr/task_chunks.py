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


type Chunks = int | tuple[int, ...]
"""One dimension's chunks as xarray gives them: a length, or every chunk's length (rectilinear)."""


def grouped_chunks(
    shape: tuple[int, ...], chunks: tuple[Chunks, ...], itemsize: int, target_bytes: int
) -> tuple[Chunks, ...]:
    """Chunks made of whole stored ``chunks``, at most ``target_bytes`` decoded (but never less
    than one stored chunk), grown from the last dimension outwards. Along a rectilinear
    dimension, consecutive chunks are merged (sized by the longest).

    ``target_bytes <= 0`` means the stored chunks themselves.
    """
    group = list(chunks)
    if target_bytes <= 0 or not chunks:
        return tuple(group)
    lengths = [_lengths(n, c) for n, c in zip(shape, chunks, strict=True)]
    nbytes = math.prod(max(x, default=0) for x in lengths) * max(itemsize, 1)
    for axis in reversed(range(len(chunks))):
        along = lengths[axis]
        if len(along) <= 1:
            continue
        factor = min(len(along), max(1, target_bytes // max(nbytes, 1)))
        merged = tuple(sum(along[i : i + factor]) for i in range(0, len(along), factor))
        stored = chunks[axis]
        if isinstance(stored, int):
            group[axis] = min(stored * factor, shape[axis])
        else:
            group[axis] = merged if len(merged) > 1 else merged[0]
        nbytes = nbytes // max(along) * max(merged)
        if factor < len(along):
            break
    return tuple(group)


def _lengths(size: int, chunks: Chunks) -> list[int]:
    """Every chunk's length along one dimension."""
    if isinstance(chunks, int):
        return [chunks] * -(-size // chunks) if chunks else []
    return list(chunks)
