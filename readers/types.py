"""Interchange types between readers and the repository: what a scanned file holds.

A reader turns one file into a :class:`VirtualDataset`: groups with attributes, and arrays with
their Zarr v3 description (shape, dtype, chunk shape, codec chain as Zarr v3 JSON, fill value,
attributes, dimension names) and their chunk refs as one Arrow table per array.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["Reader", "VirtualArray", "VirtualDataset", "refs_table"]


def refs_table(
    coords: npt.ArrayLike,
    offsets: npt.ArrayLike,
    lengths: npt.ArrayLike,
    *,
    inline: Sequence[bytes | None] | None = None,
) -> pa.Table:
    """Chunk refs of one array: columns ``c0..c{n-1}``, ``offset``, ``length``, and optionally
    ``inline``: bytes to store in the repository instead of referencing the file (null rows are
    references)."""
    n = len(np.asarray(offsets))
    coords = np.asarray(coords)
    coords = coords.reshape(n, coords.shape[-1] if coords.ndim == 2 else -1)
    ndim = coords.shape[1]
    arrays: list[Any] = [pa.array(column) for column in coords.T.astype(np.int32)]  # numpy casts
    arrays += [pa.array(np.asarray(offsets, dtype=np.uint64)),
               pa.array(np.asarray(lengths, dtype=np.uint64))]  # fmt: skip
    names = [f"c{i}" for i in range(ndim)] + ["offset", "length"]
    if inline is not None:
        arrays.append(pa.array(inline, pa.binary()))
        names.append("inline")
    return pa.Table.from_arrays(arrays, names=names)


@dataclass(frozen=True, slots=True)
class VirtualArray:
    """One array of a scanned file, described as a Zarr v3 array plus chunk refs."""

    path: str
    """Absolute path in the file, e.g. ``/t2m`` or ``/group/var``."""
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    """The values' dtype with the file's byte order."""
    chunk_shape: tuple[int, ...]
    codecs: tuple[Mapping[str, Any], ...]
    """The Zarr v3 codec chain (bytes codec first) that turns a stored chunk into values."""
    fill_value: Any
    attributes: Mapping[str, Any]
    dimension_names: tuple[str, ...]
    refs: pa.Table
    """One row per stored chunk (see :func:`refs_table`); chunks without a row read as fill.
    An optional ``url`` column names each chunk's file (reference sets, combined files)."""
    chunk_sizes: tuple[tuple[int, ...], ...] | None = None
    """Per-dimension chunk lengths when they vary (a rectilinear grid); else ``chunk_shape``."""


@dataclass(frozen=True, slots=True)
class VirtualDataset:
    """Everything a reader found in one file."""

    url: str
    groups: Mapping[str, Mapping[str, Any]]
    """Group path (``/`` for the root) to its attributes."""
    arrays: Mapping[str, VirtualArray] = field(default_factory=dict)


class Reader(Protocol):
    """A file format's reader; see ``readers.registry``."""

    name: str

    def sniff(self, header: bytes) -> bool:
        """Whether the first bytes of a file are this format's."""

    def scan(self, url: str, *, storage_options: Mapping[str, Any] | None = None) -> VirtualDataset:
        """Chunk refs and metadata of every array in the file."""
