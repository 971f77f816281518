"""Expiring old history and collecting the garbage it leaves.

Expiry shortens history: snapshots older than a cutoff drop out of every branch's ancestry, except
branch tips, tagged snapshots and each branch's newest ingest ledger. It rewrites only the parent link of each kept snapshot whose
parent is dropped, pointing it at the nearest kept ancestor (ultimately the repository's first
snapshot) and recording the parent it was committed on (writers catching up on a branch check
that); nodes and manifests are untouched, and each rewrite is one atomic replace, so readers see
the old or the new history and a crash mid-way leaves a consistent, partly shortened history.

Garbage collection deletes what nothing reachable from a branch or tag needs: snapshots, manifests,
native chunks, transaction logs, and the temporary files of interrupted writes. It never deletes an
object modified after its cutoff, which protects commits in flight (a writer creates its objects
before the branch ref that makes them reachable). Both are safe to run while other processes commit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from icechunk_virtual.errors import FormatError, InvalidInputError
from icechunk_virtual.format.manifest_file import manifest_key
from icechunk_virtual.format.snapshot import LEDGER_KEY, Snapshot, snapshot_key
from icechunk_virtual.format.transaction import transaction_key
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.maintenance.reachability import (
    Walk,
    bounded_map,
    list_roots,
    manifests_of,
    native_chunk_ids,
    walk,
)

if TYPE_CHECKING:
    from icechunk_virtual.repository.repository import AsyncRepository

__all__ = ["ExpireReport", "GCReport", "expire_snapshots", "garbage_collect"]

_DELETE_BATCH = 1000
_COLLECTED_KINDS = frozenset({"snapshots", "manifests", "chunks", "transactions", "leftovers"})


@dataclass(frozen=True, slots=True)
class ExpireReport:
    """What :func:`expire_snapshots` did."""

    expired_snapshots: int
    """Snapshots that left every branch's history (their objects remain until GC)."""
    rewritten_snapshots: int
    """Kept snapshots whose parent link now skips the expired ones."""
    deleted_branches: tuple[str, ...] = ()
    deleted_tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GCReport:
    """Objects :func:`garbage_collect` deleted, by kind."""

    snapshots: int = 0
    manifests: int = 0
    chunks: int = 0
    transactions: int = 0
    leftovers: int = 0
    """Temporary files of interrupted writes."""

    @property
    def total(self) -> int:
        return self.snapshots + self.manifests + self.chunks + self.transactions + self.leftovers


def _check_cutoff(older_than: datetime) -> None:
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
    _check_cutoff(older_than)
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
        repo.remember_snapshot(relinked)
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


async def _reachable_keys(repo: AsyncRepository, reached: Walk, *, with_chunks: bool) -> set[str]:
    """Storage keys of everything the walked snapshots need (native chunks only if asked: finding
    them reads every reachable manifest, which a repository of virtual refs can skip)."""
    keys = {snapshot_key(s) for s in reached.snapshots}
    keys |= {transaction_key(s) for s in reached.snapshots}
    manifests = manifests_of(reached.snapshots.values())
    keys |= {manifest_key(ref.id) for ref, _, _ in manifests.values()}

    async def chunk_ids(key: str) -> list[str]:
        raw = await repo.storage.get(key)
        ids: list[str] = native_chunk_ids(raw, where=f"{repo.storage.url}/{key}").to_pylist()
        return ids

    manifest_keys = [manifest_key(ref.id) for ref, _, _ in manifests.values()]
    for ids in await bounded_map(chunk_ids, manifest_keys if with_chunks else []):
        keys.update(f"chunks/{i}" for i in ids)
    return keys


def _kind(key: str) -> str:
    if key.rpartition("/")[2].startswith(".tmp-"):
        return "leftovers"
    return key.partition("/")[0]


async def garbage_collect(repo: AsyncRepository, older_than: datetime) -> GCReport:
    _check_cutoff(older_than)
    listed = await repo.storage.list_modified("")
    old = {
        key
        for key, modified in listed.items()
        if modified < older_than and _kind(key) in _COLLECTED_KINDS
    }
    if not old:
        return GCReport()

    reached = await walk(repo, (await list_roots(repo)).snapshot_ids())
    if reached.missing:
        snapshot_id, reason = next(iter(reached.missing.items()))
        raise FormatError(
            f"{repo.storage.url}: garbage collection stopped, snapshot {snapshot_id} that a ref "
            f"reaches cannot be loaded ({reason}); run fsck"
        )
    with_chunks = any(_kind(key) == "chunks" for key in old)
    needed = await _reachable_keys(repo, reached, with_chunks=with_chunks)
    # A branch created or moved while we walked may name a snapshot we did not reach: walk again
    # from the refs as they are now, so such a snapshot and what it needs are kept too.
    before = set(reached.snapshots)
    await walk(repo, (await list_roots(repo)).snapshot_ids(), into=reached)
    if set(reached.snapshots) != before:
        needed = await _reachable_keys(repo, reached, with_chunks=with_chunks)

    garbage = sorted(old - needed)
    counts: dict[str, int] = {}
    for key in garbage:
        counts[_kind(key)] = counts.get(_kind(key), 0) + 1
    for batch in _batches(garbage, _DELETE_BATCH):
        await repo.storage.delete(batch)
    repo.forget_snapshots(
        SnapshotId.parse(key.partition("/")[2]) for key in garbage if _kind(key) == "snapshots"
    )
    return GCReport(**counts)


def _batches(keys: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]
