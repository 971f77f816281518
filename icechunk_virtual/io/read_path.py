"""THE read path: chunk refs to bytes, for native, inline and virtual chunks alike.

Native chunks are objects of the repository's storage; virtual chunks are byte ranges of any fsspec
URL; inline chunks are bytes in the manifest. Batched reads group requests by file, merge ranges
closer than ``max_gap_bytes`` and fetch the merged ranges concurrently (at most ``max_concurrency``
in flight). Before any I/O a virtual source must be under an authorised prefix; the first read of a
source whose ref carries a checksum compares it with the source's current one, so a changed file
raises :class:`StaleSourceError` instead of returning wrong bytes.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from icechunk_virtual.chunk_refs.tables import ChunkRef
from icechunk_virtual.errors import (
    FormatError,
    ObjectNotFoundError,
    SourceNotFoundError,
    StaleSourceError,
    StorageError,
)
from icechunk_virtual.format.manifest_file import ChunkKind
from icechunk_virtual.io.coalesce import plan_reads
from icechunk_virtual.io.sources import (
    check_authorized,
    checksum_from_info,
    fetch_checksum,
    options_for,
    source_protocol,
)
from icechunk_virtual.storage import LocalStorage, Storage
from icechunk_virtual.storage._filesystems import filesystem_for
from icechunk_virtual.storage._fsspec import backend_failures

__all__ = ["ReadOptions", "ReadPath"]


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """Knobs of batched reads (named as zarr's ``Store.get_ranges``)."""

    max_gap_bytes: int = 256 << 10
    """Ranges of one file at most this far apart are fetched as one request."""
    max_coalesced_bytes: int = 16 << 20
    """A merged request grows no larger than this (unless one range alone is)."""
    max_concurrency: int = 32
    """Merged requests in flight at once."""


class ReadPath:
    """Reads chunk bytes for one session.

    Parameters
    ----------
    storage
        The repository's storage (native chunks).
    authorized
        URL prefixes virtual chunks may be read from.
    source_options
        fsspec options per URL prefix for virtual sources (the longest matching prefix wins).
    """

    def __init__(
        self,
        storage: Storage,
        *,
        authorized: Sequence[str],
        source_options: Mapping[str, Mapping[str, Any]] | None = None,
        options: ReadOptions | None = None,
    ) -> None:
        self._storage = storage
        self.authorized = tuple(authorized)
        self._source_options = dict(source_options or {})
        self.options = options or ReadOptions()
        self._verified: set[tuple[str, str]] = set()
        self._verify_lock = threading.Lock()

    # ---- single reads -----------------------------------------------------------------------
    async def read(self, ref: ChunkRef, *, where: str) -> bytes:
        """The bytes of one chunk; ``where`` names it in error messages."""
        return (await self.read_many([ref], where=[where]))[0]

    def read_sync(self, ref: ChunkRef, *, where: str) -> bytes | None:
        """The bytes of one chunk if they can be had without the event loop, else ``None``."""
        return self.read_many_sync([ref], where=lambda _: where)[0]

    def read_many_sync(
        self, refs: Sequence[ChunkRef], *, where: Callable[[int], str]
    ) -> list[bytes | None]:
        """The bytes of many chunks read in the calling thread; ``None`` for those that need the
        event loop (``where(i)`` names chunk ``i`` in errors).

        Inline chunks, native chunks on local disk and virtual chunks in local files (after the
        authorisation and freshness checks, once per source) are read here with ``pread``, each
        file opened once: zarr decodes on many threads and a round trip through the IO loop per
        chunk would cost more than the read.
        """
        out: list[bytes | None] = [None] * len(refs)
        files = _OpenFiles()
        checked: set[tuple[str, str | None]] = set()  # (url, checksum) seen in this batch
        local_native = isinstance(self._storage, LocalStorage)
        try:
            for i, ref in enumerate(refs):
                if ref.kind is ChunkKind.INLINE:
                    out[i] = ref.inline or b""
                elif ref.kind is ChunkKind.NATIVE and local_native:
                    path = str(self._storage.root / "chunks" / str(ref.location))  # type: ignore[attr-defined]
                    out[i] = files.pread(path, ref, where, i)
                elif (
                    ref.kind is ChunkKind.VIRTUAL and source_protocol(ref.location or "") == "file"
                ):
                    url = ref.location or ""
                    path = url[len("file://") :] if url.startswith("file://") else url
                    if (url, ref.checksum) not in checked:
                        check_authorized([url], self.authorized, where=where(i))
                        self._verify_local(url, path, ref.checksum, where(i))
                        checked.add((url, ref.checksum))
                    out[i] = files.pread(path, ref, where, i, url=url)
        finally:
            files.close()
        return out

    def _verify_local(self, url: str, path: str, checksum: str | None, where: str) -> None:
        if checksum is None or (url, checksum) in self._verified:
            return
        try:
            stat = os.stat(path)
        except FileNotFoundError as exc:
            raise SourceNotFoundError(f"{where}: virtual source {url} does not exist") from exc
        # the same float fsspec's LocalFileSystem.info reports, so both paths agree
        found = checksum_from_info({"mtime": stat.st_mtime, "size": stat.st_size})
        self._accept(url, checksum, found, where)

    # ---- batched reads ----------------------------------------------------------------------
    async def read_many(self, refs: Sequence[ChunkRef], *, where: Sequence[str]) -> list[bytes]:
        """The bytes of many chunks, fetched with coalesced, concurrent requests."""
        virtual = [i for i, r in enumerate(refs) if r.kind is ChunkKind.VIRTUAL]
        first_use: dict[str, str] = {}  # each source checked once, named by its first chunk
        for i in virtual:
            first_use.setdefault(refs[i].location or "", where[i])
        for url, first_where in first_use.items():
            check_authorized([url], self.authorized, where=first_where)
        await self._verify_sources([refs[i] for i in virtual], [where[i] for i in virtual])
        out: list[bytes | None] = [None] * len(refs)
        by_file: dict[tuple[str, str], list[int]] = {}
        for i, ref in enumerate(refs):
            if ref.kind is ChunkKind.INLINE:
                out[i] = ref.inline or b""
            elif ref.kind is ChunkKind.NATIVE:
                by_file.setdefault(("native", f"chunks/{ref.location}"), []).append(i)
            elif ref.kind is ChunkKind.VIRTUAL:
                by_file.setdefault(("virtual", ref.location or ""), []).append(i)
            else:
                raise StorageError(f"{where[i]}: chunk ref of unknown kind {ref.kind!r}")
        limit = asyncio.Semaphore(self.options.max_concurrency)
        await asyncio.gather(
            *(
                self._read_file(
                    kind, name, [refs[i] for i in idx], [where[i] for i in idx], idx, out, limit
                )
                for (kind, name), idx in by_file.items()
            )
        )
        return [b if b is not None else b"" for b in out]

    async def _read_file(
        self,
        kind: str,
        name: str,
        refs: Sequence[ChunkRef],
        where: Sequence[str],
        positions: Sequence[int],
        out: list[bytes | None],
        limit: asyncio.Semaphore,
    ) -> None:
        offsets = np.fromiter((r.offset for r in refs), dtype=np.int64, count=len(refs))
        lengths = np.fromiter((r.length for r in refs), dtype=np.int64, count=len(refs))
        plan = plan_reads(
            offsets,
            lengths,
            max_gap_bytes=self.options.max_gap_bytes,
            max_coalesced_bytes=self.options.max_coalesced_bytes,
        )

        async def fetch(start: int, end: int) -> bytes:
            async with limit:
                if kind == "native":
                    return await self._storage.get_range(name, start, end - start)
                return await self._fetch_virtual(name, start, end, where[0])

        merged = await asyncio.gather(
            *(fetch(int(s), int(e)) for s, e in zip(plan.starts, plan.ends, strict=True))
        )
        for j, ref in enumerate(refs):
            buf = merged[plan.group[j]]
            start = int(plan.offset_in_group[j])
            data = buf[start : start + ref.length]
            if len(data) != ref.length:
                raise _short_read(where[j], name if kind == "native" else None, ref, len(data))
            out[positions[j]] = data

    async def _fetch_virtual(self, url: str, start: int, end: int, where: str) -> bytes:
        fs = filesystem_for(source_protocol(url), options_for(url, self._source_options))
        path = fs._strip_protocol(url)
        try:
            if getattr(fs, "async_impl", False):
                data: bytes = await fs._cat_file(path, start=start, end=end)
            else:
                data = await asyncio.to_thread(fs.cat_file, path, start=start, end=end)
        except FileNotFoundError as exc:
            raise SourceNotFoundError(f"{where}: virtual source {url} does not exist") from exc
        except backend_failures() as exc:
            raise StorageError(f"{where}: reading {url} bytes {start}-{end} failed: {exc}") from exc
        return data

    # ---- sources ----------------------------------------------------------------------------
    async def _verify_sources(self, refs: Sequence[ChunkRef], where: Sequence[str]) -> None:
        pending: dict[tuple[str, str], str] = {}
        for ref, w in zip(refs, where, strict=True):
            if ref.checksum is not None and ref.location is not None:
                key = (ref.location, ref.checksum)
                if key not in self._verified:
                    pending.setdefault(key, w)
        if not pending:
            return
        found = await asyncio.gather(
            *(
                fetch_checksum(url, options_for(url, self._source_options), where=w)
                for (url, _), w in pending.items()
            )
        )
        for ((url, recorded), w), current in zip(pending.items(), found, strict=True):
            self._accept(url, recorded, current, w)

    def _accept(self, url: str, recorded: str, current: str | None, where: str) -> None:
        if current != recorded:
            raise StaleSourceError(
                f"{where}: {url} changed since it was referenced: checksum {recorded!r} recorded, "
                f"{current!r} found; re-ingest the source"
            )
        with self._verify_lock:
            self._verified.add((url, recorded))


class _OpenFiles:
    """Local files opened once for a batch of ``pread``s."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def pread(
        self,
        path: str,
        ref: ChunkRef,
        where: Callable[[int], str],
        i: int,
        *,
        url: str | None = None,
    ) -> bytes:
        fd = self._fds.get(path)
        if fd is None:
            try:
                fd = self._fds[path] = os.open(path, os.O_RDONLY)
            except FileNotFoundError as exc:
                if url is None:
                    raise ObjectNotFoundError(
                        f"{where(i)}: native chunk {path} is missing"
                    ) from exc
                raise SourceNotFoundError(
                    f"{where(i)}: virtual source {url} does not exist"
                ) from exc
        data = os.pread(fd, ref.length, ref.offset)
        if len(data) != ref.length:
            native = None if url is not None else f"chunks/{ref.location}"
            raise _short_read(where(i), native, ref, len(data))
        return data

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _short_read(
    where: str, native_key: str | None, ref: ChunkRef, found: int
) -> FormatError | StaleSourceError:
    """The error for a chunk shorter than its ref: a damaged repository object (native), or a
    source that changed since it was referenced (virtual)."""
    if native_key is not None:
        return FormatError(
            f"{where}: native chunk {native_key} has {found} bytes, the manifest says "
            f"{ref.length}: the repository object is damaged"
        )
    return StaleSourceError(
        f"{where}: {ref.location} has {found} bytes at {ref.offset}, the ref says {ref.length}: "
        "the source is shorter than when it was referenced"
    )
