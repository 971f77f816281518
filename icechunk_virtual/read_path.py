"""THE read path: chunk refs to bytes, for native, inline and virtual chunks alike.

Native chunks are objects of the repository's own storage; virtual chunks are byte ranges of any
fsspec URL; inline chunks are bytes in the manifest. Filesystems for virtual sources are shared
per (protocol, options, event loop) through :func:`filesystem_for`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from icechunk_virtual.errors import SourceNotFoundError, StorageError
from icechunk_virtual.format.manifest_file import ChunkKind
from icechunk_virtual.manifest import ChunkRef
from icechunk_virtual.storage import Storage
from icechunk_virtual.storage._filesystems import filesystem_for

__all__ = ["ReadPath"]


class ReadPath:
    """Reads chunk bytes for one repository.

    Parameters
    ----------
    storage
        The repository's storage (native chunks).
    source_options
        fsspec options per URL prefix for virtual sources, given by the caller at open.
    """

    def __init__(
        self, storage: Storage, *, source_options: dict[str, dict[str, Any]] | None = None
    ) -> None:
        self._storage = storage
        self._source_options = dict(source_options or {})

    async def read(self, ref: ChunkRef, *, where: str) -> bytes:
        """The bytes of one chunk; ``where`` names it in error messages."""
        if ref.kind is ChunkKind.INLINE:
            return ref.inline or b""
        if ref.kind is ChunkKind.NATIVE:
            return await self._storage.get_range(f"chunks/{ref.location}", ref.offset, ref.length)
        if ref.kind is ChunkKind.VIRTUAL:
            return await self._read_virtual(ref, where=where)
        raise StorageError(f"{where}: chunk ref of unknown kind {ref.kind!r}")

    def _options_for(self, url: str) -> tuple[str, dict[str, Any]]:
        best = max((p for p in self._source_options if url.startswith(p)), key=len, default="")
        return best, self._source_options.get(best, {})

    def _filesystem(self, url: str) -> Any:
        protocol = url.partition("://")[0] if "://" in url else "file"
        return filesystem_for(protocol, self._options_for(url)[1])

    async def _read_virtual(self, ref: ChunkRef, *, where: str) -> bytes:
        url = ref.location or ""
        fs = self._filesystem(url)
        path = fs._strip_protocol(url)
        end = ref.offset + ref.length
        try:
            if getattr(fs, "async_impl", False):
                data: bytes = await fs._cat_file(path, start=ref.offset, end=end)
            else:
                data = await asyncio.to_thread(fs.cat_file, path, start=ref.offset, end=end)
        except FileNotFoundError as exc:
            raise SourceNotFoundError(f"{where}: virtual source {url} does not exist") from exc
        except OSError as exc:
            raise StorageError(
                f"{where}: reading {url} bytes {ref.offset}-{end} failed: {exc}"
            ) from exc
        if len(data) != ref.length:
            raise StorageError(
                f"{where}: {url} has {len(data)} bytes at {ref.offset}, the ref says {ref.length} "
                "(the file is shorter than when it was referenced)"
            )
        return data
