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


def _replaced(log: TransactionLog) -> set[str]:
    """Nodes deleted and created again in one commit (their old chunks are gone)."""
    return set(log.new_nodes & log.updated_metadata)


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
    return [
        *_metadata_conflicts(ours, theirs, same_metadata),
        *_deletion_conflicts(ours, theirs),
        *_chunk_conflicts(ours, theirs),
    ]


def _metadata_conflicts(
    ours: TransactionLog, theirs: TransactionLog, same_metadata: Callable[[str], bool]
) -> list[Conflict]:
    """Metadata both sides wrote, and metadata one side wrote under the other's chunks.

    A commit writes the metadata of the nodes it created and of those it updated. A node both
    sides wrote conflicts unless both left it the same (e.g. every writer of a new repository
    creating the root group); comparing creations with creations only would let a session that
    created a node overwrite a rival's later update of it (a lost update).
    """
    conflicts: list[Conflict] = []
    ours_meta = ours.new_nodes | ours.updated_metadata
    theirs_meta = theirs.new_nodes | theirs.updated_metadata
    for path in sorted(ours_meta & theirs_meta):
        if (path in ours.chunks and path in theirs.updated_metadata) or not same_metadata(path):
            both_new = path in ours.new_nodes and path in theirs.new_nodes
            reason = "new node (both created it)" if both_new else "metadata (both sides wrote it)"
            conflicts.append(Conflict(path, reason))
    for path in sorted((set(ours.chunks) - ours_meta) & theirs.updated_metadata):
        # our chunks were written for the array's metadata before their update
        conflicts.append(Conflict(path, "metadata (the other side updated it)"))
    for path in sorted(ours_meta & (set(theirs.chunks) - theirs_meta)):
        if not same_metadata(path):
            conflicts.append(Conflict(path, "metadata (the other side wrote its chunks)"))
    return conflicts


def _deletion_conflicts(ours: TransactionLog, theirs: TransactionLog) -> list[Conflict]:
    """A node one side deleted (or deleted and re-created) and the other touched."""
    conflicts: list[Conflict] = []
    for path in sorted(_replaced(ours) & set(theirs.chunks)):
        # we deleted and re-created the array: committing would drop the chunks they wrote
        conflicts.append(Conflict(path, "chunks (we replaced the array they wrote to)"))
    for path in sorted(_replaced(theirs) & set(ours.chunks) - _replaced(ours)):
        conflicts.append(Conflict(path, "chunks (the other side replaced the array)"))
    for deleted in sorted(theirs.deleted_nodes):
        for path in sorted(_touched(ours)):
            if is_under(path, deleted):
                conflicts.append(Conflict(path, "deleted node (the other side deleted it)"))
    for deleted in sorted(ours.deleted_nodes):
        for path in sorted(_touched(theirs) - theirs.deleted_nodes):
            if is_under(path, deleted):
                conflicts.append(Conflict(path, "deleted node (the other side changed it)"))
    return conflicts


def _chunk_conflicts(ours: TransactionLog, theirs: TransactionLog) -> list[Conflict]:
    """Chunks both sides wrote (any chunk of an array one side streamed in bulk)."""
    conflicts: list[Conflict] = []
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
