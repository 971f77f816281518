"""How a session finds and reads chunks: pending changes first, then the manifests it stands on.

A chunk's ref comes from the session's uncommitted changes if they name it, else from the manifest
whose coordinate range holds it (a loaded table or row group, or the manifest to load). Many chunks
of one read are looked up together, one vectorised search per loaded manifest part, and their bytes
come through the session's read path: in the calling thread where they can (local files, inline
bytes, zarr's decode threads), else through the event loop in one coalesced batch.

:class:`ChunkReader` is composed into :class:`~icechunk_virtual.repository.session.AsyncSession`
(``session.chunks``): it sees the session only through :class:`SessionView` (nodes and the
manifests under each array) plus the session's change set, so it can be built and tested alone.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from icechunk_virtual.chunk_refs.tables import (
    ChunkRef,
    IndexedRefs,
    apply_changes,
    concat_refs,
    empty_refs,
    keep_last,
    row_ref,
)
from icechunk_virtual.format.manifest_file import ChunkKind
from icechunk_virtual.format.snapshot import ManifestRef, NodeKind
from icechunk_virtual.repository.nodes import NodeView, normalize_path

if TYPE_CHECKING:
    from icechunk_virtual.io.read_path import ReadPath
    from icechunk_virtual.repository.changeset import ChangeSet
    from icechunk_virtual.repository.objects import RepositoryObjects

__all__ = ["NOT_SYNC", "ChunkReader", "NotSync", "SessionView"]


class NotSync:
    """Marker: the chunk cannot be read without the event loop."""


NOT_SYNC = NotSync()


def where_of(path: str, coord: tuple[int, ...]) -> str:
    """How errors name a chunk."""
    return f"array '{normalize_path(path)}' chunk {coord}"


def manifest_for(manifests: Sequence[ManifestRef], coord: tuple[int, ...]) -> ManifestRef | None:
    """The manifest whose coordinate range holds ``coord`` (manifests are sorted, disjoint)."""
    i = bisect.bisect_right(manifests, coord, key=lambda m: m.first) - 1
    if i < 0 or coord > manifests[i].last:
        return None
    return manifests[i]


class SessionView(Protocol):
    """What chunk reads need to know of a session."""

    def node(self, path: str) -> NodeView | None:
        """The group or array at a normalised ``path`` as the session sees it."""
        ...

    def stored_manifests(self, path: str) -> tuple[ManifestRef, ...]:
        """The manifests holding the array's refs that are not in memory."""
        ...


class ChunkReader:
    """Chunk lookups and reads of one session (see the module docstring)."""

    def __init__(
        self,
        session: SessionView,
        changes: ChangeSet,
        objects: RepositoryObjects,
        read_path: ReadPath,
    ) -> None:
        self._session = session
        self._changes = changes
        self._objects = objects
        self._read_path = read_path

    # ---- one chunk ------------------------------------------------------------------------
    def _resolve(
        self, path: str, coord: tuple[int, ...], node: NodeView | None = None
    ) -> ChunkRef | ManifestRef | None:
        """The chunk's ref if it is known without I/O, else the manifest to load for it.

        ``None``: the chunk is not written (pending deletion, no manifest covers it, or no array).
        ``node``: the array at ``path`` if the caller has it already.
        """
        found = self._locate(path, coord, node)
        return found.lookup(coord) if isinstance(found, IndexedRefs) else found

    def _locate(
        self, path: str, coord: tuple[int, ...], node: NodeView | None
    ) -> ChunkRef | IndexedRefs | ManifestRef | None:
        """:meth:`_resolve`, but a loaded manifest part holding the chunk is returned as it is,
        for the caller to look up many chunks in it at once."""
        node = node or self._session.node(path)
        if node is None or node.kind is not NodeKind.ARRAY:
            return None
        pending = self._changes.chunks.get(path)
        if pending is not None:
            ref = pending.indexed().lookup(coord)
            if ref is not None:
                return None if ref.kind is ChunkKind.DELETED else ref
        manifest = manifest_for(self._session.stored_manifests(path), coord)
        if manifest is None:
            return None
        indexed = self._objects.cached_manifest(manifest, coord)
        return manifest if indexed is None else indexed

    async def chunk_ref(self, path: str, coord: tuple[int, ...]) -> ChunkRef | None:
        """The ref of one chunk, or ``None`` if the chunk is not written (reads as fill value)."""
        found = self._resolve(normalize_path(path), coord)
        if isinstance(found, ManifestRef):
            return (await self._objects.lookup_manifest(found, len(coord), coord)).lookup(coord)
        return found

    async def read_chunk(self, path: str, coord: tuple[int, ...]) -> bytes | None:
        """The stored bytes of one chunk, or ``None`` if it is not written."""
        ref = await self.chunk_ref(path, coord)
        if ref is None:
            return None
        where = where_of(path, coord)
        local = self._read_path.read_sync(ref, where=where)  # no thread hop for local bytes
        return local if local is not None else await self._read_path.read(ref, where=where)

    def read_chunk_sync(
        self, path: str, coord: tuple[int, ...], *, node: NodeView | None = None
    ) -> bytes | NotSync | None:
        """The chunk's bytes read in the calling thread, or ``NOT_SYNC`` if that needs the loop.

        Works when the chunk's manifest is loaded or on local disk or in memory, and its bytes are
        inline or in a local file; zarr's decode threads take this path.
        """
        return self.read_chunks_sync(path, [coord], node=node)[0]

    async def array_refs(self, path: str, ndim: int) -> pa.Table:
        """Every live ref of an array as the session sees it (committed, with its changes), one
        row per written chunk, sorted."""
        tables = [empty_refs(ndim)]
        for m in self._session.stored_manifests(path):
            tables.append((await self._objects.load_manifest(m, ndim)).table)
        refs = concat_refs(tables)
        pending = self._changes.chunks.get(path)
        return refs if pending is None else apply_changes(refs, pending.merged(), ndim)

    # ---- many chunks ----------------------------------------------------------------------
    async def read_chunks(self, path: str, coords: Sequence[tuple[int, ...]]) -> list[bytes | None]:
        """The stored bytes of many chunks of one array, fetched in coalesced batches."""
        path = normalize_path(path)
        found = self._chunk_refs_sync(path, coords, self._session.node(path), load=False)
        unloaded = [i for i, ref in enumerate(found) if isinstance(ref, NotSync)]
        loaded = await asyncio.gather(*(self.chunk_ref(path, coords[i]) for i in unloaded))
        refs: list[ChunkRef | NotSync | None] = list(found)
        for i, ref in zip(unloaded, loaded, strict=True):
            refs[i] = ref
        present = [(i, r) for i, r in enumerate(refs) if isinstance(r, ChunkRef)]
        data = await self._read_path.read_many(
            [r for _, r in present], where=[where_of(path, coords[i]) for i, _ in present]
        )
        out: list[bytes | None] = [None] * len(coords)
        for (i, _), d in zip(present, data, strict=True):
            out[i] = d
        return out

    def read_chunks_sync(
        self, path: str, coords: Sequence[tuple[int, ...]], *, node: NodeView | None = None
    ) -> list[bytes | NotSync | None]:
        """Many chunks of one array read in the calling thread (``NOT_SYNC`` for those that need
        the loop, ``None`` for chunks not written).

        ``node``: the array at ``path`` (normalised) as this session sees it, if the caller has
        it already.
        """
        if node is None:
            path = normalize_path(path)
            node = self._session.node(path)
        refs = self._chunk_refs_sync(path, coords, node, load=True)
        present = [i for i, ref in enumerate(refs) if isinstance(ref, ChunkRef)]
        data = self._read_path.read_many_sync(
            [refs[i] for i in present],  # type: ignore[misc]
            where=lambda j: where_of(path, coords[present[j]]),
        )
        out: list[bytes | NotSync | None] = [r if r is NOT_SYNC else None for r in refs]
        for i, d in zip(present, data, strict=True):
            out[i] = NOT_SYNC if d is None else d
        return out

    def _chunk_refs_sync(
        self, path: str, coords: Sequence[tuple[int, ...]], node: NodeView | None, *, load: bool
    ) -> list[ChunkRef | NotSync | None]:
        """The refs of many chunks, looked up per loaded manifest part in one vectorised search.

        A manifest part not in memory is read in the calling thread if ``load`` and the storage
        allows it; otherwise its chunks are ``NOT_SYNC``.
        """
        refs: list[ChunkRef | NotSync | None] = [None] * len(coords)
        by_part: dict[int, tuple[IndexedRefs, list[int]]] = {}
        for i, coord in enumerate(coords):
            found = self._locate(path, coord, node)
            if isinstance(found, ManifestRef):
                part = (
                    self._objects.lookup_manifest_sync(found, len(coord), coord) if load else None
                )
                if part is None:
                    refs[i] = NOT_SYNC
                    continue
                found = part
            if isinstance(found, IndexedRefs):
                by_part.setdefault(id(found), (found, []))[1].append(i)
            else:
                refs[i] = found
        for part, rows in by_part.values():
            for i, ref in zip(rows, part.lookup_many([coords[i] for i in rows]), strict=True):
                refs[i] = ref
        return refs

    async def inline_small(self, table: pa.Table, ndim: int, below: int, where: str) -> pa.Table:
        """Fetch the chunks shorter than ``below`` bytes and keep their bytes in the manifest."""
        small = pc.less(table.column("length"), pa.scalar(below, pa.uint64()))
        if not pc.any(small).as_py():
            return table
        tiny = table.filter(small)
        refs = [row_ref(tiny, i) for i in range(tiny.num_rows)]
        data = await self._read_path.read_many(refs, where=[where] * len(refs))
        n = tiny.num_rows
        for name, column in (
            ("kind", pa.array(np.full(n, ChunkKind.INLINE, np.int8))),
            ("inline", pa.array(data, pa.binary())),
        ):
            index = tiny.schema.get_field_index(name)
            tiny = tiny.set_column(index, tiny.schema.field(index), column)
        return keep_last(concat_refs([table.filter(pc.invert(small)), tiny]), ndim)
