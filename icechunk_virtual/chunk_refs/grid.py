"""Chunk grids: how many chunks an array has along each dimension, and which coordinates a
manifest can hold."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from icechunk_virtual.errors import InvalidInputError

__all__ = ["MAX_COORD", "check_chunk", "check_coords", "chunk_grid_shape"]


def chunk_grid_shape(zarr_json: Mapping[str, Any]) -> tuple[int, ...] | None:
    """Number of chunks along each dimension, or ``None`` for a grid the core does not know.

    Regular grids, and rectilinear ones as zarr-python writes them: per dimension either one
    chunk length or a list of lengths, where ``[length, repeat]`` stands for ``repeat`` of them.
    """
    grid = zarr_json.get("chunk_grid", {})
    shape = zarr_json.get("shape", ())
    configuration = grid.get("configuration", {})
    if grid.get("name") == "regular":
        chunks = configuration.get("chunk_shape", ())
        return tuple(math.ceil(s / c) if c else 0 for s, c in zip(shape, chunks, strict=True))
    if grid.get("name") == "rectilinear" and "chunk_shapes" in configuration:
        return tuple(
            _chunks_along(s, c) for s, c in zip(shape, configuration["chunk_shapes"], strict=True)
        )
    return None


def _chunks_along(size: int, lengths: int | list[Any]) -> int:
    if isinstance(lengths, int):
        return math.ceil(size / lengths) if lengths else 0
    return sum(int(e[1]) if isinstance(e, list) else 1 for e in lengths)


MAX_COORD = 2**31 - 1
"""The largest chunk coordinate a manifest holds (coordinates are int32 columns)."""


def check_coords(coords: npt.NDArray[np.int64], grid: Sequence[int] | None, where: str) -> None:
    """Refuse coordinates outside the chunk grid (``None``: a grid the core does not know) or
    beyond :data:`MAX_COORD`, naming the first bad row."""
    if not len(coords):
        return
    outside = (coords < 0).any(axis=1)
    if grid is not None:
        outside |= (coords >= np.asarray(grid, dtype=np.int64)).any(axis=1)
    if outside.any():
        bad = int(np.flatnonzero(outside)[0])
        raise InvalidInputError(
            f"{where}: ref {bad} has chunk coordinate {tuple(int(v) for v in coords[bad])} outside the chunk grid "
            f"{tuple(grid) if grid is not None else ''}"
        )
    too_big = np.flatnonzero((coords > MAX_COORD).any(axis=1))
    if len(too_big):
        bad = int(too_big[0])
        raise InvalidInputError(
            f"{where}: ref {bad} has chunk coordinate {tuple(int(v) for v in coords[bad])}; manifests hold "
            f"coordinates up to {MAX_COORD} (2**31 - 1) along each dimension"
        )


def check_chunk(coord: tuple[int, ...], ndim: int, grid: Sequence[int] | None, where: str) -> None:
    """:func:`check_coords` for one chunk, whose coordinate must also have ``ndim`` entries."""
    if len(coord) != ndim:
        raise InvalidInputError(f"{where} has {ndim} dimensions, chunk {coord} has {len(coord)}")
    check_coords(np.asarray([coord], dtype=np.int64).reshape(1, ndim), grid, where)
