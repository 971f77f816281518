"""Garbage collection: deleting what no branch or tag reaches.

Snapshots, manifests, native chunks, transaction logs, and the temporary files of interrupted
writes that nothing reachable from a branch or tag needs are deleted. An object modified after
the cutoff never is, which protects commits in flight (a writer creates its objects before the
branch ref that makes them reachable). Old branch versions go too, by the rule in
:func:`~icechunk_virtual.repository.branch_log.collect_versions` (the tip and every version
newer than the cutoff stay). Safe to run while other processes commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from icechunk_virtual.errors import FormatError
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.format.manifest_file import manifest_key
from icechunk_virtual.format.refs import parse_branch_version_key
from icechunk_virtual.format.snapshot import snapshot_key
from icechunk_virtual.format.transaction import transaction_key
from icechunk_virtual.maintenance.expire import check_cutoff
from icechunk_virtual.maintenance.reachability import (
    Walk,
    bounded_map,
    list_roots,
    manifests_of,
    native_chunk_ids,
    walk,
)
from icechunk_virtual.repository import branch_log

if TYPE_CHECKING:
    from icechunk_virtual.repository.repository import AsyncRepository

__all__ = ["GCReport", "garbage_collect"]

_DELETE_BATCH = 1000
_COLLECTED_KINDS = frozenset({"snapshots", "manifests", "chunks", "transactions", "leftovers"})


@dataclass(frozen=True, slots=True)
class GCReport:
    """Objects :func:`garbage_collect` deleted, by kind."""

    snapshots: int = 0
    manifests: int = 0
    chunks: int = 0
    transactions: int = 0
    leftovers: int = 0
    """Temporary files of interrupted writes."""
    branch_versions: int = 0
    """Old versions of branches (never a tip)."""

    @property
    def total(self) -> int:
        return (
            self.snapshots
            + self.manifests
            + self.chunks
            + self.transactions
            + self.leftovers
            + self.branch_versions
        )


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
    """Delete snapshots, manifests, native chunks and transaction logs no branch or tag reaches.

    Objects modified after ``older_than`` are never deleted, so commits in flight are safe:
    choose a cutoff older than your longest-running writer (an hour is plenty for most).
    Returns the number of objects deleted, by kind.
    """
    check_cutoff(older_than)
    listed = await repo.storage.list_modified("")
    branch_versions = await _collect_branch_versions(repo, listed, older_than)
    old = {
        key
        for key, modified in listed.items()
        if modified < older_than and _kind(key) in _COLLECTED_KINDS
    }
    if not old:
        return GCReport(branch_versions=branch_versions)

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
    repo.objects.forget_snapshots(
        SnapshotId.parse(key.partition("/")[2]) for key in garbage if _kind(key) == "snapshots"
    )
    return GCReport(**counts, branch_versions=branch_versions)


async def _collect_branch_versions(
    repo: AsyncRepository, listed: dict[str, datetime], older_than: datetime
) -> int:
    """Delete every branch's old versions; how many."""
    by_branch: dict[str, dict[int, datetime]] = {}
    for key, modified in listed.items():
        if (parsed := parse_branch_version_key(key)) is not None:
            by_branch.setdefault(parsed[0], {})[parsed[1]] = modified
    deleted = 0
    for name, versions in sorted(by_branch.items()):
        deleted += len(await branch_log.collect_versions(repo.storage, name, versions, older_than))
    return deleted


def _batches(keys: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]
