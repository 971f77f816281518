"""A session's uncommitted changes: node metadata, deleted nodes and chunk refs per array.

Chunk changes are kept per array as an ordered list of Arrow tables. Writes that zarr makes one
chunk at a time (native chunks, deletions) are buffered in small Python lists and flushed into a table
before the next bulk batch arrives, so write order, and with it "last write wins", is preserved.
A session spills an array's refs to manifest files once too many are held (see
``AsyncSession.spill_rows``), so the memory a huge stream of refs needs stays bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from icechunk_virtual.chunk_refs.tables import (
    IndexedRefs,
    concat_refs,
    empty_refs,
    keep_last,
    native_refs,
)
from icechunk_virtual.format.manifest_file import ChunkKind
from icechunk_virtual.format.snapshot import ManifestRef

__all__ = ["ArrayChanges", "ChangeSet", "NodeChange", "is_under"]


def is_under(path: str, ancestor: str) -> bool:
    """Whether node ``path`` is ``ancestor`` or below it."""
    return path == ancestor or ancestor == "/" or path.startswith(ancestor + "/")


@dataclass(slots=True)
class NodeChange:
    """New or updated metadata of a node."""

    zarr_json: Mapping[str, Any]
    replaces: bool
    """The node was deleted earlier in this session and created again: its old chunks are gone."""
    text: str | None = None
    """The document as written (see ``NodeSnapshot.text``)."""


@dataclass(slots=True)
class ArrayChanges:
    """Pending chunk refs of one array, in write order.

    Every method holds ``lock`` (the change set's, re-entrant): readers of a session merge the
    pending refs (:meth:`merged` flushes the buffered writes) while other threads write.
    """

    ndim: int
    lock: threading.RLock = field(default_factory=threading.RLock)
    batches: list[pa.Table] = field(default_factory=list)
    _coords: list[tuple[int, ...]] = field(default_factory=list)
    _kinds: list[int] = field(default_factory=list)
    _locations: list[str | None] = field(default_factory=list)
    _lengths: list[int] = field(default_factory=list)
    _inlines: list[bytes | None] = field(default_factory=list)
    _merged: pa.Table | None = None
    _indexed: IndexedRefs | None = None
    manifests: tuple[ManifestRef, ...] | None = None
    """The array's whole manifest list once refs were spilled to storage (None until then):
    the base's manifests with every spilled batch applied. The batches hold what came after."""

    def pending_rows(self) -> int:
        """Refs held in memory (before de-duplication)."""
        with self.lock:
            return int(sum(b.num_rows for b in self.batches)) + len(self._coords)

    def take_for_spill(self) -> pa.Table:
        """:meth:`merged`, and forget it: the caller writes it to storage."""
        with self.lock:
            table = self.merged()
            self.batches = []
            self._merged = self._indexed = None
            return table

    def add_chunk(
        self,
        coord: tuple[int, ...],
        kind: ChunkKind,
        location: str | None = None,
        length: int = 0,
        inline: bytes | None = None,
    ) -> None:
        with self.lock:
            self._coords.append(coord)
            self._kinds.append(kind)
            self._locations.append(location)
            self._lengths.append(length)
            self._inlines.append(inline)
            self._merged = self._indexed = None

    def add_batch(self, table: pa.Table) -> None:
        with self.lock:
            self._flush()
            self.batches.append(table)
            self._merged = self._indexed = None

    def _flush(self) -> None:  # the caller holds the lock
        if self._coords:
            self.batches.append(
                native_refs(
                    self.ndim,
                    self._coords,
                    self._kinds,
                    self._locations,
                    self._lengths,
                    self._inlines,
                )
            )
            self._coords, self._kinds, self._locations = [], [], []
            self._lengths, self._inlines = [], []

    def merged(self) -> pa.Table:
        """All pending refs, one per coordinate (the last written), sorted; tombstones included."""
        with self.lock:
            if self._merged is None:
                self._flush()
                if not self.batches:
                    return empty_refs(self.ndim)
                table = self.batches[0] if len(self.batches) == 1 else concat_refs(self.batches)
                self._merged = keep_last(table, self.ndim)
                self.batches = [self._merged]
            return self._merged

    def indexed(self) -> IndexedRefs:
        """:meth:`merged` ready for single-chunk lookups (built on first use only)."""
        with self.lock:
            if self._indexed is None:
                self._indexed = IndexedRefs.build(self.merged(), self.ndim)
            return self._indexed


class ChangeSet:
    """Everything a session changed since its base snapshot. Safe to use from several threads."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.nodes: dict[str, NodeChange] = {}
        self.deleted: set[str] = set()
        self.chunks: dict[str, ArrayChanges] = {}

    def is_empty(self) -> bool:
        return not (self.nodes or self.deleted or self.chunks)

    def set_node(self, path: str, zarr_json: Mapping[str, Any], text: str | None = None) -> None:
        with self.lock:
            replaces = path in self.deleted or (path in self.nodes and self.nodes[path].replaces)
            self.deleted.discard(path)
            self.nodes[path] = NodeChange(zarr_json, replaces, text)

    def delete_subtree(self, path: str, existing_in_base: Iterator[str]) -> None:
        """Delete ``path`` and its descendants (``existing_in_base`` lists those in the base)."""
        with self.lock:
            for p in [p for p in self.nodes if is_under(p, path)]:
                del self.nodes[p]
            for p in [p for p in self.chunks if is_under(p, path)]:
                del self.chunks[p]
            self.deleted.update(existing_in_base)

    def array(self, path: str, ndim: int) -> ArrayChanges:
        with self.lock:
            changes = self.chunks.get(path)
            if changes is None:
                changes = self.chunks[path] = ArrayChanges(ndim, self.lock)
            return changes

    def clear(self) -> None:
        with self.lock:
            self.nodes.clear()
            self.deleted.clear()
            self.chunks.clear()
