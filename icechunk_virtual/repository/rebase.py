"""Catching a session up with its branch: rebase past each rival commit or raise a conflict.

The commit protocol (see ``docs/architecture.md``) in one paragraph: a writer first writes every
object its snapshot needs (native chunks, manifests, transaction log, snapshot; all immutable,
new ids), then creates the branch's next version with put-if-absent. A winner has therefore
written everything before the ref that makes it reachable; a loser may assume nothing of the
branch but what the versions after its base say, and replays them here, one at a time, oldest
first: a version naming its own snapshot means its earlier attempt landed (a lost response); a
version whose snapshot was not committed on the loser's base means the branch was reset; any
other is a rival whose transaction log is compared with the loser's changes.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from icechunk_virtual.errors import Conflict, ConflictError, RefNotFoundError
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.format.snapshot import Snapshot
from icechunk_virtual.format.transaction import TransactionLog
from icechunk_virtual.repository.changeset import ChangeSet
from icechunk_virtual.repository.conflicts import find_conflicts

if TYPE_CHECKING:
    from icechunk_virtual.repository.objects import RepositoryObjects

__all__ = ["catch_up"]


async def catch_up(
    objects: RepositoryObjects,
    branch: str,
    changes: ChangeSet,
    base: Snapshot,
    version: int,
    log: TransactionLog,
    ours: SnapshotId | None,
) -> tuple[bool, Snapshot, int]:
    """Replay the branch versions after ``version``: rebase past each or raise ConflictError.

    Returns whether one of them is ``ours`` (a commit whose response was lost), and the new
    base and version.
    """
    for winner in await objects.branch_versions_after(branch, version):
        if winner.snapshot_id is None:
            raise RefNotFoundError(f"branch '{branch}' was deleted while this session was open")
        if winner.snapshot_id == ours:
            return True, base, winner.version
        theirs = await objects.load_snapshot(winner.snapshot_id)
        if theirs.info.committed_parent_id != base.id:  # (expiry may relink parent_id)
            raise ConflictError(
                branch,
                str(theirs.id),
                [Conflict("/", f"branch reset (from {base.id} to {theirs.id})")],
            )
        if not log.is_empty():
            their_log = await objects.load_transaction(theirs.id)
            conflicts = find_conflicts(
                log, their_log, same_metadata=partial(_same_metadata, changes, theirs)
            )
            if conflicts:
                raise ConflictError(branch, str(theirs.id), conflicts)
        base, version = theirs, winner.version
    return False, base, version


def _same_metadata(changes: ChangeSet, theirs: Snapshot, path: str) -> bool:
    """Whether our change to ``path`` and their snapshot give it the same ``zarr.json``."""
    change = changes.nodes.get(path)
    node = theirs.nodes.get(path)
    return change is not None and node is not None and change.zarr_json == node.zarr_json
