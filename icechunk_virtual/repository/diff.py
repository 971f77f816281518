"""Differences between two snapshots, computed from their node trees and manifests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from icechunk_virtual.chunk_refs.tables import (
    concat_refs,
    coords_of,
    empty_refs,
    extent_of,
    linear_index,
)
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.format.snapshot import NodeKind, NodeSnapshot

if TYPE_CHECKING:
    from icechunk_virtual.repository.objects import RepositoryObjects

__all__ = ["Diff", "diff_snapshots"]

_COMPARED = ("kind", "location", "offset", "length", "inline", "checksum")


@dataclass(frozen=True, slots=True)
class Diff:
    """What changed from one snapshot to another."""

    new_groups: frozenset[str] = field(default=frozenset())
    new_arrays: frozenset[str] = field(default=frozenset())
    deleted_groups: frozenset[str] = field(default=frozenset())
    deleted_arrays: frozenset[str] = field(default=frozenset())
    updated_groups: frozenset[str] = field(default=frozenset())
    """Groups whose metadata (attributes) changed."""
    updated_arrays: frozenset[str] = field(default=frozenset())
    """Arrays whose metadata changed."""
    updated_chunks: Mapping[str, npt.NDArray[np.int64]] = field(default_factory=dict)
    """Per array: the (n, ndim) coordinates of chunks added, changed or removed."""

    def is_empty(self) -> bool:
        return not any(
            (
                self.new_groups,
                self.new_arrays,
                self.deleted_groups,
                self.deleted_arrays,
                self.updated_groups,
                self.updated_arrays,
                self.updated_chunks,
            )
        )

    def chunk_set(self, path: str) -> set[tuple[int, ...]]:
        """The changed chunk coordinates of one array, as a set of tuples (for small diffs)."""
        coords = self.updated_chunks.get(path, np.zeros((0, 0), dtype=np.int64))
        return {tuple(int(v) for v in row) for row in coords}


async def _refs(repo: RepositoryObjects, node: NodeSnapshot) -> pa.Table:
    tables = [empty_refs(node.ndim)]
    for m in node.manifests:
        tables.append((await repo.load_manifest(m, node.ndim)).table)
    return concat_refs(tables)


async def _changed_chunks(
    repo: RepositoryObjects, old: NodeSnapshot | None, new: NodeSnapshot
) -> npt.NDArray[np.int64]:
    ndim = new.ndim
    if old is not None and old.manifests == new.manifests and old.ndim == ndim:
        return np.zeros((0, ndim), dtype=np.int64)
    before = await _refs(repo, old) if old is not None and old.ndim == ndim else empty_refs(ndim)
    after = await _refs(repo, new)
    a, b = coords_of(before, ndim), coords_of(after, ndim)
    extent = np.maximum(np.asarray(extent_of(a, ndim)), np.asarray(extent_of(b, ndim)))
    ia, ib = linear_index(a, extent), linear_index(b, extent)
    changed = np.union1d(np.setdiff1d(ia, ib), np.setdiff1d(ib, ia))
    common, pos_a, pos_b = np.intersect1d(ia, ib, return_indices=True)
    if len(common):
        differs = np.zeros(len(common), dtype=bool)
        left, right = before.take(pa.array(pos_a)), after.take(pa.array(pos_b))
        for name in _COMPARED:
            l_col = left.column(name).combine_chunks().cast(_plain(left.column(name).type))
            r_col = right.column(name).combine_chunks().cast(_plain(right.column(name).type))
            equal = pa.compute.equal(l_col, r_col).fill_null(False).to_numpy(zero_copy_only=False)
            both_null = l_col.is_null().to_numpy(zero_copy_only=False) & r_col.is_null().to_numpy(
                zero_copy_only=False
            )
            differs |= ~(equal | both_null)
        changed = np.union1d(changed, common[differs])
    dims = np.maximum(extent, 1)
    return (
        np.column_stack(np.unravel_index(changed, tuple(int(d) for d in dims)))
        .astype(np.int64)
        .reshape(-1, ndim)
    )


def _plain(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


async def diff_snapshots(
    repo: RepositoryObjects, from_id: SnapshotId | str, to_id: SnapshotId | str
) -> Diff:
    before = (await repo.load_snapshot(from_id)).nodes
    after = (await repo.load_snapshot(to_id)).nodes

    def of(kind: NodeKind, paths: set[str], nodes: Mapping[str, NodeSnapshot]) -> frozenset[str]:
        return frozenset(p for p in paths if nodes[p].kind is kind)

    added, removed = set(after) - set(before), set(before) - set(after)
    kept = set(before) & set(after)
    retyped = {p for p in kept if before[p].kind is not after[p].kind}
    updated = {p for p in kept - retyped if before[p].zarr_json != after[p].zarr_json}
    chunks: dict[str, npt.NDArray[np.int64]] = {}
    for path in sorted(p for p in set(after) if after[p].kind is NodeKind.ARRAY):
        old = before.get(path) if path not in retyped else None
        changed = await _changed_chunks(repo, old, after[path])
        if len(changed):
            chunks[path] = changed
    return Diff(
        new_groups=of(NodeKind.GROUP, added | retyped, after),
        new_arrays=of(NodeKind.ARRAY, added | retyped, after),
        deleted_groups=of(NodeKind.GROUP, removed | retyped, before),
        deleted_arrays=of(NodeKind.ARRAY, removed | retyped, before),
        updated_groups=of(NodeKind.GROUP, updated, after),
        updated_arrays=of(NodeKind.ARRAY, updated, after),
        updated_chunks=chunks,
    )
