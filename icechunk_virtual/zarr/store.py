"""A zarr v3 :class:`~zarr.abc.store.Store` over a session.

Keys are zarr's: ``<node path>/zarr.json`` for metadata and ``<array path>/<chunk key>`` for chunks,
decoded with the array's chunk key encoding. Metadata comes from the session's node tree; chunk
bytes come through the repository's read path. Writes go into the session's change set. The store
also offers zarr's synchronous surface (``get_sync``/``set_sync``/``delete_sync``) so zarr can read
and decode chunks from many threads.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from zarr.abc.store import (
    ByteRequest,
    Store,
)
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.core.chunk_key_encodings import parse_chunk_key_encoding

from icechunk_virtual._sync import sync
from icechunk_virtual.errors import InvalidInputError, ReadOnlyError
from icechunk_virtual.format.snapshot import NodeKind
from icechunk_virtual.repository.changeset import is_under
from icechunk_virtual.repository.chunk_reads import NotSync
from icechunk_virtual.repository.nodes import NodeView, is_reserved
from icechunk_virtual.zarr.keys import META, ChunkKeys, metadata_path, node_path, slice_bytes

if TYPE_CHECKING:
    from icechunk_virtual.repository.session import AsyncSession

__all__ = ["IcechunkVirtualStore"]

_ChunkGroup = tuple[NodeView, list[int], list[tuple[int, ...]]]
"""An array's node, and the positions and chunk coordinates of the keys that name its chunks."""


def _parse_metadata(key: str, raw: bytes) -> dict[str, Any]:
    """A ``zarr.json`` document, or a typed error naming the key."""
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError(f"'{key}' is not a JSON document: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidInputError(f"'{key}' is not a JSON object (Zarr v3 node metadata)")
    return document


class IcechunkVirtualStore(Store):
    """The zarr store of a session; get it as ``session.store``."""

    supports_writes = True
    supports_deletes = True
    supports_listing = True

    def __init__(self, session: AsyncSession, *, read_only: bool | None = None) -> None:
        if read_only is False and session.read_only:
            raise ReadOnlyError(
                f"a store over a read-only session (snapshot {session.snapshot_id}) cannot be "
                "writable; use repo.writable_session(branch).store to write"
            )
        super().__init__(read_only=session.read_only if read_only is None else read_only)
        self._session = session
        self._keys = ChunkKeys(session)

    @property
    def session(self) -> AsyncSession:
        return self._session

    def _identity(self) -> tuple[object, ...]:
        """Stores over one session are equal; so are stores over read-only sessions of one
        snapshot of one repository (a pickled store and the store it came from)."""
        session = self._session
        if session.read_only:
            return (session.repository_url, str(session.snapshot_id), self.read_only)
        return (id(session), self.read_only)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IcechunkVirtualStore) and other._identity() == self._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        return f"IcechunkVirtualStore(snapshot={self._session.snapshot_id}, read_only={self.read_only})"

    def with_read_only(self, read_only: bool = False) -> IcechunkVirtualStore:
        # docstring inherited
        return IcechunkVirtualStore(self._session, read_only=read_only)

    @property
    def supports_consolidated_metadata(self) -> bool:
        # Metadata is already one snapshot document; consolidating it again would only go stale.
        return False

    def _check_writable(self) -> None:
        if self.read_only:
            raise ReadOnlyError(  # zarr's words first: callers match on them
                "store was opened in read-only mode and does not support writing "
                f"(snapshot {self._session.snapshot_id}); use repo.writable_session(branch).store"
                " to write"
            )

    # ---- reads ------------------------------------------------------------------------------
    async def _get_bytes(self, key: str) -> bytes | None:
        path = metadata_path(key)
        if path is not None:
            node = self._session.node(path)
            return node.document() if node else None
        resolved = self._keys.resolve_chunk(key)
        if resolved is None:
            return None
        node, coord = resolved
        # Local and inline chunks whose manifest is loaded are read right here: a pread of a
        # cached file costs less than the task switches of the general path.
        data = self._session.chunks.read_chunk_sync(node.path, coord)
        if not isinstance(data, NotSync):
            return data
        return await self._session.chunks.read_chunk(node.path, coord)

    async def get(
        self,
        key: str,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        # docstring inherited
        return self._buffer(await self._get_bytes(key), prototype, byte_range)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        # docstring inherited
        return await self._read_batch(
            [(key, prototype, byte_range) for key, byte_range in key_ranges]
        )

    async def _get_many(
        self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
    ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        # docstring inherited
        batch = list(requests)
        for (key, _, _), buf in zip(batch, await self._read_batch(batch), strict=True):
            yield key, buf

    async def _read_batch(
        self, requests: Sequence[tuple[str, BufferPrototype, ByteRequest | None]]
    ) -> list[Buffer | None]:
        """Results in request order (one key may be asked for with several byte ranges).

        Chunks are grouped per array and read in one coalesced batch each.
        """
        out: list[Buffer | None] = [None] * len(requests)
        others, by_array = self._chunks_by_array([key for key, _, _ in requests])
        for i in others:
            out[i] = await self.get(*requests[i])
        for path, (_, positions, coords) in by_array.items():
            datas = await self._session.chunks.read_chunks(path, coords)
            for i, data in zip(positions, datas, strict=True):
                _, prototype, byte_range = requests[i]
                out[i] = self._buffer(data, prototype, byte_range)
        return out

    def _chunks_by_array(self, keys: Sequence[str]) -> tuple[list[int], dict[str, _ChunkGroup]]:
        """The positions of keys that name no chunk, and per array the node and the positions
        and coordinates of the keys that name its chunks."""
        others: list[int] = []
        by_array: dict[str, _ChunkGroup] = {}
        for i, key in enumerate(keys):
            resolved = self._keys.resolve_chunk(key) if metadata_path(key) is None else None
            if resolved is None:
                others.append(i)
                continue
            node, coord = resolved
            _, positions, coords = by_array.setdefault(node.path, (node, [], []))
            positions.append(i)
            coords.append(coord)
        return others, by_array

    async def exists(self, key: str) -> bool:
        # docstring inherited
        path = metadata_path(key)
        if path is not None:
            return self._session.node(path) is not None
        resolved = self._keys.resolve_chunk(key)
        if resolved is None:
            return False
        return await self._session.chunks.chunk_ref(resolved[0].path, resolved[1]) is not None

    async def getsize(self, key: str) -> int:
        # docstring inherited
        path = metadata_path(key)
        if path is None and (resolved := self._keys.resolve_chunk(key)) is not None:
            ref = await self._session.chunks.chunk_ref(resolved[0].path, resolved[1])
            if ref is not None:
                return ref.length
            raise FileNotFoundError(key)
        return await super().getsize(key)

    # ---- writes -----------------------------------------------------------------------------
    async def set(self, key: str, value: Buffer) -> None:
        # docstring inherited
        self._check_writable()
        if not isinstance(value, Buffer):  # as zarr's stores do
            raise TypeError(
                f"IcechunkVirtualStore.set(): `value` must be a Buffer instance. Got an instance "
                f"of {type(value)} instead."
            )
        path = metadata_path(key)
        if path is not None:
            raw = value.to_bytes()
            self._session.set_node_metadata(path, _parse_metadata(key, raw), text=raw.decode())
            return
        resolved = self._keys.resolve_chunk(key)
        if resolved is None:
            raise InvalidInputError(
                f"'{key}' is neither Zarr v3 node metadata nor a chunk of an array in this "
                "session (Zarr v2 keys are not supported)"
            )
        node, coord = resolved
        await self._session.write_chunk(node.path, coord, value.to_bytes())

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        # docstring inherited
        self._check_writable()  # even when the key exists, as zarr's stores do
        if not await self.exists(key):
            await self.set(key, value)

    async def delete(self, key: str) -> None:
        # docstring inherited
        self._check_writable()
        path = metadata_path(key)
        if path is not None:
            if self._session.node(path) is not None:
                self._session.delete_node(path)
            return
        resolved = self._keys.resolve_chunk(key)
        if resolved is not None:
            self._session.delete_chunk(resolved[0].path, resolved[1])

    async def delete_dir(self, prefix: str) -> None:
        # docstring inherited
        self._check_writable()
        path = node_path(prefix)
        for existing in self._session.node_paths():
            if is_under(existing, path):
                self._session.delete_node(path)
                return
        resolved_array = self._array_owning(prefix)
        if resolved_array is not None:
            for coord in await self._session.chunk_coords(resolved_array.path):
                self._session.delete_chunk(resolved_array.path, tuple(int(c) for c in coord))

    def _array_owning(self, prefix: str) -> NodeView | None:
        parts = prefix.strip("/").split("/")
        for cut in range(len(parts) - 1, -1, -1):  # cut 0: the root, which may be an array
            node = self._session.node("/".join(parts[:cut]))
            if node is not None:
                return node if node.kind is NodeKind.ARRAY else None
        return None

    # ---- listing ----------------------------------------------------------------------------
    async def _chunk_keys(self, node: NodeView) -> list[str]:
        encoding = parse_chunk_key_encoding(
            node.zarr_json.get("chunk_key_encoding", {"name": "default"})
        )
        base = node.path.strip("/")
        prefix = f"{base}/" if base else ""
        coords = await self._session.chunk_coords(node.path)
        return [prefix + encoding.encode_chunk_key(tuple(int(c) for c in row)) for row in coords]

    async def list(self) -> AsyncIterator[str]:
        # docstring inherited
        async for key in self.list_prefix(""):
            yield key

    def _listed_paths(self, within: str) -> builtins.list[str]:
        """Node paths a listing shows: the reserved tree only when listing inside it."""
        paths = self._session.node_paths()
        return paths if is_reserved(within) else [p for p in paths if not is_reserved(p)]

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        # docstring inherited
        for path in self._listed_paths("/" + prefix.strip("/")):
            meta_key = META if path == "/" else f"{path.strip('/')}/{META}"
            if meta_key.startswith(prefix):
                yield meta_key
            node = self._session.node(path)
            if node is not None and node.kind is NodeKind.ARRAY:
                base = path.strip("/") + "/" if path != "/" else ""
                if base.startswith(prefix) or prefix.startswith(base):
                    for key in await self._chunk_keys(node):
                        if key.startswith(prefix):
                            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        # docstring inherited
        parent = node_path(prefix)
        node = self._session.node(parent)
        if node is None:
            return
        yield META
        if node.kind is NodeKind.ARRAY:
            seen: set[str] = set()
            base = parent.strip("/") + "/" if parent != "/" else ""
            for key in await self._chunk_keys(node):
                first = key[len(base) :].split("/")[0]
                if first not in seen:
                    seen.add(first)
                    yield first
            return
        depth = 0 if parent == "/" else parent.count("/")
        for path in self._listed_paths(parent):
            if path != parent and is_under(path, parent) and path.count("/") == depth + 1:
                yield path.rsplit("/", 1)[1]

    # ---- synchronous surface ----------------------------------------------------------------
    def get_sync(
        self,
        key: str,
        *,
        prototype: BufferPrototype | None = None,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        # docstring inherited
        if metadata_path(key) is None and (resolved := self._keys.resolve_chunk(key)) is not None:
            data = self._session.chunks.read_chunk_sync(
                resolved[0].path, resolved[1], node=resolved[0]
            )
            if not isinstance(data, NotSync):
                return self._buffer(data, prototype, byte_range)
        return sync(self.get(key, prototype, byte_range))

    def get_many_sync(
        self, keys: Sequence[str], *, prototype: BufferPrototype | None = None
    ) -> builtins.list[Buffer | None]:
        """Many keys at once (whole values, in order), for a codec pipeline's share of a read.

        The chunks of each array are looked up together and read in the calling thread where
        they can be (local files, inline); the rest go through the loop in one coalesced batch.
        """
        out: builtins.list[Buffer | None] = [None] * len(keys)
        others, by_array = self._chunks_by_array(keys)
        for i in others:
            out[i] = self.get_sync(keys[i], prototype=prototype)
        for path, (node, positions, coords) in by_array.items():
            datas = self._session.chunks.read_chunks_sync(path, coords, node=node)
            later = [j for j, d in enumerate(datas) if isinstance(d, NotSync)]
            if later:
                fetched = sync(self._session.chunks.read_chunks(path, [coords[j] for j in later]))
                for j, d in zip(later, fetched, strict=True):
                    datas[j] = d
            for i, data in zip(positions, datas, strict=True):
                out[i] = self._buffer(data, prototype, None)  # type: ignore[arg-type]
        return out

    @staticmethod
    def _buffer(
        data: bytes | None, prototype: BufferPrototype | None, byte_range: ByteRequest | None
    ) -> Buffer | None:
        if data is None:
            return None
        return (prototype or default_buffer_prototype()).buffer.from_bytes(
            slice_bytes(data, byte_range)
        )

    def set_sync(self, key: str, value: Buffer) -> None:
        # docstring inherited
        sync(self.set(key, value))

    def delete_sync(self, key: str) -> None:
        # docstring inherited
        sync(self.delete(key))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with its session: a read-only one is reopened where it arrives (dask workers,
        other processes); a writable one raises :class:`NotPicklableError`."""
        return (IcechunkVirtualStore, (self._session,))
