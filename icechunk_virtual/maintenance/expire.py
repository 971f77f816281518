"""Expiring old history.

Snapshots older than a cutoff drop out of every branch's ancestry, except branch tips, tagged
snapshots and each branch's newest ingest ledger. Expiry rewrites only the parent link of each
kept snapshot whose parent is dropped, pointing it at the nearest kept ancestor (ultimately the
repository's first snapshot) and recording the parent it was committed on (writers catching up on
a branch check that); nodes and manifests are untouched, and each rewrite is one atomic replace,
so readers see the old or the new history and a crash mid-way leaves a consistent, partly
shortened history. Safe to run while other processes commit; :mod:`.gc` deletes what it leaves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from icechunk_virtual.errors import InvalidInputError
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.format.snapshot import LEDGER_KEY, Snapshot, snapshot_key
from icechunk_virtual.maintenance.reachability import list_roots, walk

if TYPE_CHECKING:
    from icechunk_virtual.repository.repository import AsyncRepository

__all__ = ["ExpireReport", "check_cutoff", "expire_snapshots"]


@dataclass(frozen=True, slots=True)
class ExpireReport:
    """What :func:`expire_snapshots` did."""

    expired_snapshots: int
    """Snapshots that left every branch's history (their objects remain until GC)."""
    rewritten_snapshots: int
    """Kept snapshots whose parent link now skips the expired ones."""
    deleted_branches: tuple[str, ...] = ()
    deleted_tags: tuple[str, ...] = ()


def check_cutoff(older_than: datetime) -> None:
    """Refuse a cutoff that is not a timezone-aware datetime."""
    if not isinstance(older_than, datetime) or older_than.tzinfo is None:
        raise InvalidInputError(
            f"older_than={older_than!r} must be a datetime with a timezone (e.g. datetime.UTC)"
        )


async def expire_snapshots(
    repo: AsyncRepository,
    older_than: datetime,
    *,
    delete_expired_branches: bool = False,
    delete_expired_tags: bool = False,
) -> ExpireReport:
    """Drop snapshots older than ``older_than`` from every branch's history.

    Branch tips, tagged snapshots and the first snapshot stay; a kept snapshot whose parent
    expires is relinked to its nearest kept ancestor. Expired snapshots stay in storage until
    :func:`garbage_collect`. Safe while other processes commit.

    Parameters
    ----------
    repo
        The repository.
    older_than
        Cutoff, a timezone-aware datetime.
    delete_expired_branches
        Also delete branches (other than ``main``) whose tip is older than the cutoff.
    delete_expired_tags
        Also delete tags naming a snapshot older than the cutoff.
    """
    check_cutoff(older_than)
    roots = await list_roots(repo)
    everything = (await walk(repo, roots.snapshot_ids())).snapshots

    def expired(snapshot_id: SnapshotId) -> bool:
        tip = everything.get(snapshot_id)
        return tip is not None and tip.info.written_at < older_than

    deleted_branches = tuple(
        name
        for name, tip in sorted(roots.branches.items())
        if delete_expired_branches and name != "main" and expired(tip)
    )
    deleted_tags = tuple(
        name
        for name, target in sorted(roots.tags.items())
        if delete_expired_tags and expired(target)
    )
    for name in deleted_branches:
        await repo.delete_branch(name)
        del roots.branches[name]
    for name in deleted_tags:
        await repo.delete_tag(name)
        del roots.tags[name]

    snapshots = _ancestries(everything, roots.snapshot_ids())  # the deleted refs' are gone
    kept = roots.snapshot_ids() | {
        s.id
        for s in snapshots.values()
        if s.info.written_at >= older_than or s.info.parent_id is None
    }
    kept |= _newest_ledgers(snapshots, roots.branches.values())

    def nearest_kept_ancestor(snapshot: Snapshot) -> SnapshotId | None:
        parent = snapshot.info.parent_id
        while parent is not None and parent not in kept and parent in snapshots:
            parent = snapshots[parent].info.parent_id
        return parent

    rewritten = 0
    for snapshot_id in kept:
        snapshot = snapshots.get(snapshot_id)
        if snapshot is None or snapshot.info.parent_id in kept or snapshot.info.parent_id is None:
            continue
        info = dataclasses.replace(
            snapshot.info,
            parent_id=nearest_kept_ancestor(snapshot),
            original_parent_id=snapshot.info.committed_parent_id,
        )
        relinked = Snapshot(info, snapshot.nodes)
        await repo.storage.put(snapshot_key(snapshot_id), relinked.to_bytes())
        repo.objects.remember_snapshot(relinked)
        rewritten += 1
    return ExpireReport(
        expired_snapshots=len(set(snapshots) - kept),
        rewritten_snapshots=rewritten,
        deleted_branches=deleted_branches,
        deleted_tags=deleted_tags,
    )


def _ancestries(
    snapshots: Mapping[SnapshotId, Snapshot], start: Iterable[SnapshotId]
) -> dict[SnapshotId, Snapshot]:
    """The snapshots of ``snapshots`` reachable from ``start`` by parent links (no I/O)."""
    found: dict[SnapshotId, Snapshot] = {}
    frontier = [s for s in start if s in snapshots]
    while frontier:
        current = frontier.pop()
        if current in found:
            continue
        found[current] = snapshots[current]
        parent = snapshots[current].info.parent_id
        if parent is not None and parent in snapshots:
            frontier.append(parent)
    return found


def _newest_ledgers(
    snapshots: Mapping[SnapshotId, Snapshot], tips: Iterable[SnapshotId]
) -> set[SnapshotId]:
    """Per branch, the newest snapshot holding an ingest ledger: dropping it would make the next
    scheduled ingest treat every source as new."""
    found = set()
    for tip in tips:
        current: SnapshotId | None = tip
        while current is not None and current in snapshots:
            if LEDGER_KEY in snapshots[current].info.metadata:
                found.add(current)
                break
            current = snapshots[current].info.parent_id
    return found
