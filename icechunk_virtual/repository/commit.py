"""Turning a session's change set into a new snapshot: manifests, snapshot, transaction log.

Only arrays with chunk changes get new manifests, and within such an array only the manifests whose
coordinate range received changes are rewritten; the others keep their ids. Everything written here is
immutable and unreferenced until the branch ref names the snapshot, so a crash leaves only garbage.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from icechunk_virtual.chunk_refs.tables import (
    IndexedRefs,
    apply_changes,
    coords_of,
    empty_refs,
    extent_of,
    linear_index,
    split,
)
from icechunk_virtual.errors import InvalidInputError
from icechunk_virtual.format.ids import ManifestId, SnapshotId
from icechunk_virtual.format.manifest_file import manifest_key, write_manifest
from icechunk_virtual.format.snapshot import (
    ManifestRef,
    NodeKind,
    NodeSnapshot,
    Snapshot,
    SnapshotInfo,
)
from icechunk_virtual.format.transaction import TransactionLog
from icechunk_virtual.repository.changeset import ChangeSet
from icechunk_virtual.storage import Storage

__all__ = ["build_snapshot", "node_kind", "rewrite_manifests", "summarize"]

_MAX_MANIFEST_WRITES = 4
_ARRAYS_AT_ONCE = 8
"""Arrays whose manifests a commit rewrites at once (each holds its manifests in memory)."""

type LoadManifest = Callable[[ManifestRef, int], Awaitable[IndexedRefs]]


def node_kind(path: str, zarr_json: Mapping[str, Any]) -> NodeKind:
    """The node type a ``zarr.json`` document declares."""
    node_type = zarr_json.get("node_type")
    if zarr_json.get("zarr_format") != 3 or node_type not in ("group", "array"):
        raise InvalidInputError(
            f"'{path}/zarr.json' is not Zarr v3 group or array metadata "
            f"(zarr_format={zarr_json.get('zarr_format')!r}, node_type={node_type!r})"
        )
    return NodeKind(node_type)


def summarize(changes: ChangeSet, base: Snapshot) -> TransactionLog:
    """What committing ``changes`` on top of ``base`` would change."""
    with changes.lock:
        new, updated = set(), set()
        for path, change in changes.nodes.items():
            old = base.nodes.get(path)
            if old is None:
                new.add(path)
            elif change.replaces:
                new.add(path)
                updated.add(path)
            elif old.zarr_json != change.zarr_json:
                updated.add(path)
        deleted = {p for p in changes.deleted if p in base.nodes}
        chunks = {
            path: coords_of(a.merged(), a.ndim, np.int32) for path, a in changes.chunks.items()
        }
        bulk = frozenset(p for p, a in changes.chunks.items() if a.manifests is not None)
    return TransactionLog(frozenset(new), frozenset(deleted), frozenset(updated), chunks, bulk)


async def build_snapshot(
    *,
    snapshot_id: SnapshotId,
    base: Snapshot,
    changes: ChangeSet,
    message: str,
    metadata: Mapping[str, Any],
    storage: Storage,
    split_rows: int,
    load_manifest: LoadManifest,
) -> tuple[Snapshot, TransactionLog]:
    """The snapshot that applies ``changes`` to ``base``, with its manifests written to storage."""
    log = summarize(changes, base)
    nodes = dict(base.nodes)
    with changes.lock:
        for path in changes.deleted:
            nodes.pop(path, None)
        for path, change in changes.nodes.items():
            kind = node_kind(path, change.zarr_json)
            old = base.nodes.get(path)
            keep = old is not None and not change.replaces and kind is NodeKind.ARRAY
            manifests = old.manifests if keep and old is not None else ()
            nodes[path] = NodeSnapshot(path, kind, change.zarr_json, manifests, change.text)
        pending = {path: (a.ndim, a.merged(), a.manifests) for path, a in changes.chunks.items()}
    limit = asyncio.Semaphore(_ARRAYS_AT_ONCE)

    async def rewrite(path: str, ndim: int, delta: pa.Table, spilled: Any) -> None:
        node = nodes.get(path)
        if node is None or node.kind is not NodeKind.ARRAY:
            return
        async with limit:
            manifests = await rewrite_manifests(
                node.manifests if spilled is None else spilled,
                ndim,
                delta,
                storage=storage,
                split_rows=split_rows,
                load=load_manifest,
            )
        nodes[path] = dataclasses.replace(node, manifests=manifests)

    await asyncio.gather(*(rewrite(p, *change) for p, change in pending.items()))
    info = SnapshotInfo(
        id=snapshot_id,
        parent_id=base.id,
        written_at=datetime.now(UTC),
        message=message,
        metadata=dict(metadata),
    )
    return Snapshot(info, nodes), log


async def rewrite_manifests(
    manifests: Sequence[ManifestRef],
    ndim: int,
    delta: pa.Table,
    *,
    storage: Storage,
    split_rows: int,
    load: LoadManifest,
) -> tuple[ManifestRef, ...]:
    """The manifest list of an array after applying ``delta`` (sorted refs, tombstones included)
    to ``manifests``: only the manifests whose coordinate range receives changes are rewritten."""
    old = list(manifests)
    if delta.num_rows == 0:
        return tuple(old)
    delta_coords = coords_of(delta, ndim)
    if not old:
        return tuple(
            await _write_pieces(
                apply_changes(empty_refs(ndim), delta, ndim), ndim, storage, split_rows
            )
        )
    # Send each change to the manifest whose range [first_i, first_{i+1}) holds it.
    extent = np.maximum.reduce(
        [np.asarray(m.extent, dtype=np.int64) for m in old]
        + [np.asarray(extent_of(delta_coords, ndim), dtype=np.int64)]
    )
    firsts = linear_index(
        np.asarray([m.first for m in old], dtype=np.int64).reshape(len(old), ndim), extent
    )
    slot = np.maximum(
        np.searchsorted(firsts, linear_index(delta_coords, extent), side="right") - 1, 0
    )
    # The delta is sorted, so each manifest's changes are one contiguous run of rows: visit only
    # the manifests that receive some (a stream appending to an array touches the last one).
    touched, starts = np.unique(slot, return_index=True)
    ends = np.append(starts[1:], len(slot))
    result: list[ManifestRef] = list(old)
    for i, start, end in reversed(list(zip(touched, starts, ends, strict=True))):
        table = (await load(old[i], ndim)).table
        merged = apply_changes(table, delta.slice(int(start), int(end - start)), ndim)
        result[i : i + 1] = await _write_pieces(merged, ndim, storage, split_rows)
    return tuple(result)


async def _write_pieces(
    table: pa.Table, ndim: int, storage: Storage, split_rows: int
) -> list[ManifestRef]:
    # Bounded: each piece in flight holds its encoded Parquet bytes.
    limit = asyncio.Semaphore(_MAX_MANIFEST_WRITES)

    async def write(piece: pa.Table) -> ManifestRef:
        manifest_id = ManifestId.generate()
        async with limit:
            data = await asyncio.to_thread(write_manifest, piece)
            await storage.put(manifest_key(manifest_id), data)
        coords = coords_of(piece, ndim)
        return ManifestRef(
            id=manifest_id,
            rows=piece.num_rows,
            first=tuple(int(v) for v in coords[0]),
            last=tuple(int(v) for v in coords[-1]),
            extent=extent_of(coords, ndim),
        )

    return list(await asyncio.gather(*(write(p) for p in split(table, split_rows))))
