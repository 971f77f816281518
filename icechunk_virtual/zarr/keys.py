"""zarr keys of a session's store: which node and chunk a key names.

``<node path>/zarr.json`` is a node's metadata; ``<array path>/<chunk key>`` one of its chunks,
decoded with the array's chunk key encoding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.chunk_key_encodings import ChunkKeyEncoding, parse_chunk_key_encoding

from icechunk_virtual.errors import InvalidInputError
from icechunk_virtual.format.snapshot import NodeKind
from icechunk_virtual.repository.nodes import NodeView

if TYPE_CHECKING:
    from icechunk_virtual.repository.session import AsyncSession

__all__ = ["META", "ChunkKeys", "metadata_path", "node_path", "slice_bytes"]

META = "zarr.json"
_UNKNOWN: Any = object()
_NOT_AN_ARRAY: Any = object()
_ArrayAt = tuple[NodeView, ChunkKeyEncoding]


def metadata_path(key: str) -> str | None:
    """The node path whose metadata ``key`` names, or ``None`` for any other key."""
    if key == META:
        return "/"
    if key.endswith("/" + META):
        return node_path(key[: -len(META) - 1])
    return None


def node_path(key_prefix: str) -> str:
    return "/" + key_prefix.strip("/")


def slice_bytes(data: bytes, byte_range: ByteRequest | None) -> bytes:
    """The part of ``data`` a zarr byte request asks for."""
    match byte_range:
        case None:
            return data
        case RangeByteRequest(start=start, end=end):
            return data[start:end]
        case OffsetByteRequest(offset=offset):
            return data[offset:]
        case SuffixByteRequest(suffix=suffix):
            return data[-suffix:] if suffix else b""
    raise InvalidInputError(f"Unexpected byte_range, got {byte_range!r}")  # zarr's words


class ChunkKeys:
    """Chunk keys of one session's store, resolved to arrays and chunk coordinates."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._prefixes: dict[str, _ArrayAt | None] = {}

    def resolve_chunk(self, key: str) -> tuple[NodeView, tuple[int, ...]] | None:
        """The array and chunk coordinates a chunk key names, or ``None``.

        On a read-only session the node tree never changes, so each key prefix is looked up once
        (zarr asks for every chunk of a read by key, from many threads).
        """
        parts = key.split("/")
        # Shortest prefix first: arrays are leaves, so the first array on the way down owns the
        # key, and only the key's ancestors (never one prefix per chunk row) enter the cache.
        for cut in range(len(parts)):  # cut 0: an array at the root of the store
            found = self.array_at("/".join(parts[:cut]))
            if found is None or found is _NOT_AN_ARRAY:
                continue
            node, encoding = found
            try:
                coord = encoding.decode_chunk_key("/".join(parts[cut:]))
            except (ValueError, NotImplementedError):
                return None
            return (node, coord) if len(coord) == node.ndim else None
        return None

    def array_at(self, prefix: str) -> _ArrayAt | None:
        """The array (and its key encoding) at a key prefix, ``_NOT_AN_ARRAY`` for a group, or
        ``None`` for no node."""
        cached: _ArrayAt | None = self._prefixes.get(prefix, _UNKNOWN)
        if cached is not _UNKNOWN:
            return cached
        node = self._session.node(prefix)
        found: _ArrayAt | None
        if node is None:
            found = None
        elif node.kind is not NodeKind.ARRAY:
            found = _NOT_AN_ARRAY
        else:
            encoding = node.zarr_json.get("chunk_key_encoding", {"name": "default"})
            found = (node, parse_chunk_key_encoding(encoding))
        if self._session.read_only:
            self._prefixes[prefix] = found
        return found
