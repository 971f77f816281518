"""Conflict detection between a session's changes and a rival commit's transaction log.

Two commits conflict when they touched the same thing: the same chunk of an array, the metadata of
the same node, a node one deleted and the other changed, or the same new path. Anything else (other
arrays, other chunks of one array) is rebased automatically.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from icechunk_virtual.chunk_refs.tables import extent_of, linear_index
from icechunk_virtual.errors import Conflict
from icechunk_virtual.format.transaction import Coords, TransactionLog
from icechunk_virtual.repository.changeset import is_under

__all__ = ["find_conflicts"]

_MAX_REPORTED_CHUNKS = 1000


def _touched(log: TransactionLog) -> set[str]:
    return set(log.new_nodes) | set(log.deleted_nodes) | set(log.updated_metadata) | set(log.chunks)


def find_conflicts(
    ours: TransactionLog,
    theirs: TransactionLog,
    *,
    same_metadata: Callable[[str], bool] = lambda path: False,
) -> list[Conflict]:
    """The overlaps between two commits' changes; empty if ``ours`` can be rebased on ``theirs``.

    ``same_metadata(path)`` says whether both sides wrote identical metadata for a node: creating
    or updating a node identically on both sides (e.g. every writer of a new repository creating
    the root group) is not a conflict.
    """
    conflicts: list[Conflict] = []
    their_touched = _touched(theirs)
    for path in sorted(ours.new_nodes & theirs.new_nodes):
        if not same_metadata(path):
            conflicts.append(Conflict(path, "new node (both created it)"))
    for path in sorted((ours.updated_metadata | set(ours.chunks)) & (theirs.updated_metadata)):
        if path in ours.chunks or not same_metadata(path):
            conflicts.append(Conflict(path, "metadata (the other side updated it)"))
    for path in sorted(ours.updated_metadata & (set(theirs.chunks) - theirs.updated_metadata)):
        conflicts.append(Conflict(path, "metadata (the other side wrote its chunks)"))
    for deleted in sorted(theirs.deleted_nodes):
        for path in sorted(_touched(ours)):
            if is_under(path, deleted):
                conflicts.append(Conflict(path, "deleted node (the other side deleted it)"))
    for deleted in sorted(ours.deleted_nodes):
        for path in sorted(their_touched - theirs.deleted_nodes):
            if is_under(path, deleted):
                conflicts.append(Conflict(path, "deleted node (the other side changed it)"))
    for path in sorted(set(ours.chunks) & set(theirs.chunks)):
        if path in ours.bulk or path in theirs.bulk:
            conflicts.append(Conflict(path, "chunks (one side streamed too many to compare)"))
            continue
        both = _common_coords(ours.chunks[path], theirs.chunks[path])
        if len(both):
            conflicts.append(
                Conflict(path, "chunks", tuple(tuple(int(v) for v in c) for c in both))
            )
    return conflicts


def _common_coords(a: Coords, b: Coords) -> Coords:
    if a.shape[1] != b.shape[1]:
        return a[:_MAX_REPORTED_CHUNKS]
    ndim = a.shape[1]
    ours: npt.NDArray[np.int64] = a.astype(np.int64)
    theirs: npt.NDArray[np.int64] = b.astype(np.int64)
    extent = np.maximum(
        np.asarray(extent_of(ours, ndim), dtype=np.int64),
        np.asarray(extent_of(theirs, ndim), dtype=np.int64),
    )
    common = np.isin(linear_index(ours, extent), linear_index(theirs, extent))
    return ours[common][:_MAX_REPORTED_CHUNKS]
