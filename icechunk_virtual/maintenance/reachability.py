"""What a repository still needs: the refs, and the snapshots, manifests and chunks they reach.

Expiry, garbage collection and fsck all start from the same roots (every branch's tip and every
live tag) and walk parent links; this module does that walk once, with bounded concurrency for the
manifest reads.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from icechunk_virtual.errors import FormatError
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.format.manifest_file import ChunkKind
from icechunk_virtual.format.snapshot import ManifestRef, Snapshot

if TYPE_CHECKING:
    from icechunk_virtual.repository.repository import AsyncRepository

__all__ = [
    "Roots",
    "Walk",
    "bounded_map",
    "list_roots",
    "manifests_of",
    "native_chunk_ids",
    "walk",
]

_CONCURRENCY = 16


async def bounded_map[X, T](func: Callable[[X], Awaitable[T]], items: Iterable[X]) -> list[T]:
    """``func`` over ``items`` concurrently, at most a few at a time, results in order."""
    limit = asyncio.Semaphore(_CONCURRENCY)

    async def one(item: X) -> T:
        async with limit:
            return await func(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


@dataclass(frozen=True, slots=True)
class Roots:
    """The snapshots the refs name right now."""

    branches: dict[str, SnapshotId]
    tags: dict[str, SnapshotId]

    def snapshot_ids(self) -> set[SnapshotId]:
        return set(self.branches.values()) | set(self.tags.values())


async def list_roots(repo: AsyncRepository) -> Roots:
    branches = await repo.list_branches()
    tags = await repo.list_tags()
    branch_tips = await asyncio.gather(*(repo.lookup_branch(b) for b in branches))
    tag_targets = await asyncio.gather(*(repo.lookup_tag(t) for t in tags))
    return Roots(
        dict(zip(branches, branch_tips, strict=True)), dict(zip(tags, tag_targets, strict=True))
    )


@dataclass(slots=True)
class Walk:
    """Snapshots reached from some roots by following parent links."""

    snapshots: dict[SnapshotId, Snapshot] = field(default_factory=dict)
    missing: dict[SnapshotId, str] = field(default_factory=dict)
    """Snapshots named by a root or a parent link that could not be loaded, with the reason."""


async def walk(
    repo: AsyncRepository, start: Iterable[SnapshotId], *, into: Walk | None = None
) -> Walk:
    """Every snapshot reachable from ``start``; unloadable ones are recorded, not raised."""
    found = into if into is not None else Walk()
    frontier = {s for s in start if s not in found.snapshots and s not in found.missing}
    while frontier:
        ids = sorted(frontier, key=str)
        loaded = await asyncio.gather(*(repo.load_snapshot(s) for s in ids), return_exceptions=True)
        frontier = set()
        for snapshot_id, result in zip(ids, loaded, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                found.missing[snapshot_id] = str(result)
                continue
            found.snapshots[snapshot_id] = result
            parent = result.info.parent_id
            if parent is not None and parent not in found.snapshots and parent not in found.missing:
                frontier.add(parent)
    return found


def manifests_of(snapshots: Iterable[Snapshot]) -> dict[str, tuple[ManifestRef, int, str]]:
    """Each distinct manifest by id: its ref, the array's ndim, and the first array naming it."""
    out: dict[str, tuple[ManifestRef, int, str]] = {}
    for snapshot in snapshots:
        for path, node in snapshot.nodes.items():
            for manifest in node.manifests:
                out.setdefault(str(manifest.id), (manifest, node.ndim, path))
    return out


def native_chunk_ids(manifest_bytes: bytes, *, where: str) -> pa.Array:
    """The distinct native chunk ids a manifest file names (reads two columns only)."""
    try:
        table = pq.read_table(io.BytesIO(manifest_bytes), columns=["kind", "location"])
    except (pa.ArrowException, OSError) as exc:
        raise FormatError(f"{where}: manifest does not parse as Parquet: {exc}") from exc
    native = table.filter(pc.equal(table["kind"], ChunkKind.NATIVE.value))
    locations = native["location"].combine_chunks()
    if isinstance(locations, pa.DictionaryArray):
        locations = locations.dictionary_decode()
    return pc.unique(locations.drop_null())
