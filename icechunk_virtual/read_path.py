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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from icechunk_virtual.coalesce import plan_reads
from icechunk_virtual.errors import (
    FormatError,
    ObjectNotFoundError,
    SourceNotFoundError,
    StaleSourceError,
    StorageError,
)
from icechunk_virtual.format.manifest_file import ChunkKind
from icechunk_virtual.manifest import ChunkRef
from icechunk_virtual.sources import (
    check_authorized,
    checksum_from_info,
    fetch_checksum,
    options_for,
    source_protocol,
)
from icechunk_virtual.storage import LocalStorage, Storage
from icechunk_virtual.storage._filesystems import filesystem_for

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
        """The bytes of one chunk if they can be had without the event loop, else ``None``.

        Inline chunks, native chunks on local disk and virtual chunks in local files (after the
        authorisation and freshness checks) are read in the calling thread: zarr decodes on many
        threads and a round trip through the IO loop per chunk would cost more than the read.
        """
        if ref.kind is ChunkKind.INLINE:
            return ref.inline or b""
        if ref.kind is ChunkKind.NATIVE and isinstance(self._storage, LocalStorage):
            return _pread(str(self._storage.root / "chunks" / str(ref.location)), ref, where)
        if ref.kind is ChunkKind.VIRTUAL and source_protocol(ref.location or "") == "file":
            url = ref.location or ""
            check_authorized([url], self.authorized, where=where)
            path = url[len("file://") :] if url.startswith("file://") else url
            if ref.checksum is not None and (url, ref.checksum) not in self._verified:
                try:
                    stat = os.stat(path)
                except FileNotFoundError as exc:
                    raise SourceNotFoundError(
                        f"{where}: virtual source {url} does not exist"
                    ) from exc
                # the same float fsspec's LocalFileSystem.info reports, so both paths agree
                found = checksum_from_info({"mtime": stat.st_mtime, "size": stat.st_size})
                self._accept(url, ref.checksum, found, where)
            return _pread(path, ref, where, url=url)
        return None

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
        except OSError as exc:
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


def _pread(path: str, ref: ChunkRef, where: str, *, url: str | None = None) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as exc:
        if url is None:
            raise ObjectNotFoundError(f"{where}: native chunk {path} is missing") from exc
        raise SourceNotFoundError(f"{where}: virtual source {url} does not exist") from exc
    try:
        data = os.pread(fd, ref.length, ref.offset)
    finally:
        os.close(fd)
    if len(data) != ref.length:
        native = None if url is not None else f"chunks/{ref.location}"
        raise _short_read(where, native, ref, len(data))
    return data


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
