"""Publishing a commit: write its objects, then win the branch's next version or catch up.

Each attempt builds the snapshot on the current base (:mod:`.commit`), writes the transaction log
and the snapshot, and creates ``refs/branch.<name>/<version + 1>`` with put-if-absent. Losing
that race means replaying the rival versions (:mod:`.rebase`) and trying again on the new tip;
the snapshot keeps its id across attempts, so a version naming it means an earlier attempt
landed. A ref write whose outcome the storage could not tell is reported to the caller
(``unknown``) and raised as :class:`CommitOutcomeUnknownError`: the session checks it before its
next commit. The protocol and its invariants are in ``docs/architecture.md``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from icechunk_virtual.errors import (
    CommitOutcomeUnknownError,
    Conflict,
    ConflictError,
    StorageError,
)
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.format.refs import BranchVersion
from icechunk_virtual.format.snapshot import Snapshot, snapshot_key
from icechunk_virtual.format.transaction import transaction_key
from icechunk_virtual.repository.changeset import ChangeSet
from icechunk_virtual.repository.commit import build_snapshot
from icechunk_virtual.repository.rebase import catch_up

if TYPE_CHECKING:
    from icechunk_virtual.repository.objects import RepositoryObjects

__all__ = ["publish"]

_MAX_COMMIT_ATTEMPTS = 1000


async def publish(
    objects: RepositoryObjects,
    branch: str,
    changes: ChangeSet,
    base: Snapshot,
    version: int,
    *,
    snapshot_id: SnapshotId,
    message: str,
    metadata: Mapping[str, Any],
    unknown: Callable[[Snapshot, int], None],
) -> tuple[Snapshot, int]:
    """Commit ``changes`` on ``branch`` (the caller stood on ``base`` at ``version``); the new
    snapshot and the branch version that names it.

    Raises
    ------
    ConflictError
        A rival commit overlaps the changes, or the branch was reset or deleted.
    CommitOutcomeUnknownError
        The ref write's outcome is unknown; ``unknown(snapshot, version)`` was called first.
    """
    storage = objects.storage
    for attempt in range(_MAX_COMMIT_ATTEMPTS):
        snapshot, log = await build_snapshot(
            snapshot_id=snapshot_id,
            base=base,
            changes=changes,
            message=message,
            metadata=metadata,
            storage=storage,
            split_rows=objects.config.manifest_split_rows,
            load_manifest=objects.load_manifest,
        )
        await storage.put(transaction_key(snapshot_id), log.to_bytes())
        await storage.put(snapshot_key(snapshot_id), snapshot.to_bytes())
        objects.remember_snapshot(snapshot)
        ref = BranchVersion(version + 1, snapshot_id)
        try:
            created = await objects.create_branch_version(branch, ref)
        except StorageError as exc:
            unknown(snapshot, version + 1)
            raise CommitOutcomeUnknownError(
                f"branch '{branch}': snapshot {snapshot_id} may have landed (creating version "
                f"{version + 1} failed and its outcome is unknown: {exc}); call commit() again, "
                "which checks first, and never redo these changes elsewhere"
            ) from exc
        if created:
            return snapshot, version + 1
        landed, base, version = await catch_up(
            objects, branch, changes, base, version, log, snapshot_id
        )
        if landed:  # our ref was created after all (the response was lost)
            return snapshot, version
        await asyncio.sleep(random.uniform(0, 0.002 * min(attempt + 1, 50)))
    raise ConflictError(branch, str(base.id), [Conflict("/", "too many concurrent commits")])
