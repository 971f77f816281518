"""Re-ingesting changed files of a combined dataset in place, reading only them.

A source that changed (``on_changed="reingest"``) but still covers the same stretch of
``concat_dim`` — the same coordinate values, exactly — is scanned alone, checked against what is
stored like an append (:func:`~.append.check_against_stored`), and its refs replace the old ones
where they are: every chunk the old file filled is forgotten first (tombstones), then the new
file's refs are set at the same chunk positions, so a chunk the new file leaves unwritten reads
as the fill value, never as the old bytes. Arrays off the axis whose refs point into the file
(the other coordinates, taken from the first file) are re-pointed the same way.

Anything else — a changed extent, a grid the file does not fill in whole chunks — is not done
in place: the caller rebuilds the dataset from every source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import zarr

from icechunk_virtual._sync import sync
from icechunk_virtual.chunk_refs.tables import coords_of
from icechunk_virtual.ingestion.append import (
    check_against_stored,
    gap_grid,
    in_stored_units,
    moved_along,
)
from icechunk_virtual.ingestion.combine import LoadValues, comparable_values, concat_axis
from icechunk_virtual.ingestion.locations import join, location
from icechunk_virtual.ingestion.write import PendingRefs, write_chunks
from icechunk_virtual.zarr.store import IcechunkVirtualStore
from readers.types import VirtualArray, VirtualDataset

__all__ = ["replace_in_place"]


def replace_in_place(
    store: IcechunkVirtualStore,
    group: str,
    datasets: Sequence[VirtualDataset],
    concat_dim: str,
    load: LoadValues,
    sources: Mapping[str, str | None],
) -> PendingRefs | None:
    """Replace each changed file's refs where they are; the refs still to set, or ``None`` if
    one of them cannot be replaced in place (nothing is written then)."""
    plans = []
    for dataset in datasets:
        checked = check_against_stored(store, group, dataset, dataset, concat_dim, load)
        at = _position(store, group, dataset, concat_dim, load)
        if checked is None or at is None:
            return None
        stored, proposed = checked
        old = {p: _refs_into(store, join(group, p), location(dataset.url))
               for p in dataset.arrays if p != "/" + concat_dim}  # fmt: skip
        starts = {}
        for path, array in dataset.arrays.items():
            axis = concat_axis(array, concat_dim)
            if path != "/" + concat_dim and axis is not None:
                grid = gap_grid(stored[path], proposed[path], axis, at)
                if grid is None or not _same_chunks(old[path], array, axis, grid):
                    return None
                starts[path] = (axis, grid[2])
        plans.append((dataset, starts, old))
    pending: PendingRefs = []
    for dataset, starts, old in plans:
        pending += _replace(store, group, dataset, starts, old, sources)
    return pending


def _same_chunks(
    old: pa.Table, array: VirtualArray, axis: int, grid: tuple[list[int], list[Any], int]
) -> bool:
    """Whether the old file's chunks (``old``: its refs) along ``axis`` are exactly those the
    new one fills (its extent unchanged: not only its first values)."""
    count = array.shape[axis] // grid[1][axis]
    if old.num_rows == 0:
        return False
    along = old.column(f"c{axis}")
    return (pc.min(along).as_py(), pc.max(along).as_py()) == (grid[2], grid[2] + count - 1)


def _refs_into(store: IcechunkVirtualStore, path: str, url: str) -> pa.Table:
    """The refs of the array at ``path`` into the file at ``url``."""
    node = store.session.node("/" + path)
    assert node is not None  # checked against the stored arrays
    refs = sync(store.session.chunks.array_refs(node.path, node.ndim))
    return refs.filter(pc.equal(refs.column("location").cast(pa.string()), url))


def _position(
    store: IcechunkVirtualStore,
    group: str,
    dataset: VirtualDataset,
    concat_dim: str,
    load: LoadValues,
) -> int | None:
    """Where the file's ``concat_dim`` values are among the stored ones (all of them, equal),
    or ``None`` if its extent changed."""
    new = dataset.arrays["/" + concat_dim]
    stored = zarr.open_array(store, path=join(group, concat_dim), mode="r")
    keys = comparable_values(np.asarray(stored[...]), in_stored_units(new, stored))
    theirs = comparable_values(load(dataset, new), new)
    if not theirs.size:
        return None
    at = int(np.searchsorted(keys, theirs[0]))
    here = keys[at : at + theirs.size]
    return at if here.shape == theirs.shape and bool(np.all(here == theirs)) else None


def _replace(
    store: IcechunkVirtualStore,
    group: str,
    dataset: VirtualDataset,
    starts: Mapping[str, tuple[int, int]],
    old: Mapping[str, pa.Table],
    sources: Mapping[str, str | None],
) -> PendingRefs:
    """Forget the old file's chunks (``old``: its refs, by array), and the new file's refs at
    their place."""
    session = store.session
    url = location(dataset.url)
    pending: PendingRefs = []
    for path, mine in old.items():
        if path not in starts and mine.num_rows == 0:
            continue  # off the axis and not from this file (another file's coordinate)
        target, array = join(group, path), dataset.arrays[path]
        for coord in coords_of(mine, len(array.shape)):
            session.delete_chunk("/" + target, tuple(int(c) for c in coord))
        if path in starts:
            axis, start = starts[path]
            array = moved_along(array, axis, start)
        refs = write_chunks(store, array, target, url, sources)
        if refs is not None:
            pending.append(refs)
    return pending
