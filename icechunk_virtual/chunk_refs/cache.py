"""Loading manifests for reads: whole files for scans, single row groups for point lookups.

A random chunk read right after opening a repository should cost one small decode, not a whole
manifest's: manifest files are written in row groups with each group's first coordinate in the
file's metadata, so :meth:`ManifestCache.lookup_part` decodes only the group holding the chunk.
Decoded tables are kept in one least-recently-used cache bounded by rows; the raw bytes of recently
used files in another bounded by bytes (a second group of the same file costs no second GET).
Concurrent loads of the same object share one fetch.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from icechunk_virtual.chunk_refs.tables import IndexedRefs
from icechunk_virtual.format.manifest_file import (
    manifest_key,
    open_manifest,
    read_manifest,
    read_row_group,
    row_group_firsts,
)
from icechunk_virtual.format.snapshot import ManifestRef
from icechunk_virtual.storage import Storage

__all__ = ["ManifestCache"]

_RAW_CACHE_BYTES = 64 << 20


class _Lru[V]:
    """Least-recently-used entries under a total weight, safe from several threads."""

    def __init__(self, budget: int, weigh: Callable[[V], int]) -> None:
        self._entries: OrderedDict[str, V] = OrderedDict()
        self._weight = 0
        self._budget = budget
        self._weigh = weigh
        self._lock = threading.Lock()

    def get(self, key: str) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: str, value: V) -> None:
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = value
            self._weight += self._weigh(value)
            while self._weight > self._budget and len(self._entries) > 1:
                _, evicted = self._entries.popitem(last=False)
                self._weight -= self._weigh(evicted)


@dataclass(frozen=True, slots=True)
class _Raw:
    data: bytes
    parquet: pq.ParquetFile
    firsts: list[tuple[int, ...]]
    lock: threading.Lock = field(default_factory=threading.Lock)
    """The reader is shared by the event loops of zarr and of the sync API: one read at a time."""

    def group_of(self, coord: tuple[int, ...]) -> int:
        return max(bisect.bisect_right(self.firsts, coord) - 1, 0)


def _group_key(manifest: ManifestRef, group: int) -> str:
    """The table cache's key of one decoded row group (a whole manifest's is its id)."""
    return f"{manifest.id}#{group}"


class ManifestCache:
    """Decoded manifests (whole or by row group) and raw manifest bytes of one repository."""

    def __init__(self, storage: Storage, max_rows: int) -> None:
        self._storage = storage
        self._tables: _Lru[IndexedRefs] = _Lru(max_rows, lambda t: max(t.table.num_rows, 1))
        self._raw: _Lru[_Raw] = _Lru(_RAW_CACHE_BYTES, lambda r: len(r.data))
        self._inflight: dict[tuple[int, str], asyncio.Future[Any]] = {}

    def cached(self, manifest: ManifestRef, coord: tuple[int, ...]) -> IndexedRefs | None:
        """The decoded table holding ``coord`` if it is in memory (no I/O)."""
        key = str(manifest.id)
        whole = self._tables.get(key)
        if whole is not None:
            return whole
        raw = self._raw.get(key)
        return None if raw is None else self._tables.get(_group_key(manifest, raw.group_of(coord)))

    async def load(self, manifest: ManifestRef, ndim: int) -> IndexedRefs:
        """The whole manifest."""
        key = str(manifest.id)

        async def decode() -> IndexedRefs:
            raw = await self._raw_bytes(manifest, ndim)
            table = await asyncio.to_thread(
                read_manifest, raw.data, ndim=ndim, where=self._where(manifest)
            )
            return IndexedRefs.build(table, ndim)

        return await self._once(key, self._tables, decode)

    async def lookup_part(
        self, manifest: ManifestRef, ndim: int, coord: tuple[int, ...]
    ) -> IndexedRefs:
        """The decoded row group of the manifest that holds ``coord`` (or the whole manifest if
        it is loaded already)."""
        whole = self._tables.get(str(manifest.id))
        if whole is not None:
            return whole
        raw = await self._raw_bytes(manifest, ndim)
        group = raw.group_of(coord)

        async def decode() -> IndexedRefs:
            return self._decode_group(manifest, ndim, raw, group)

        return await self._once(_group_key(manifest, group), self._tables, decode)

    def lookup_part_sync(
        self, manifest: ManifestRef, ndim: int, coord: tuple[int, ...]
    ) -> IndexedRefs | None:
        """:meth:`lookup_part` in the calling thread, or ``None`` if the storage needs its event
        loop (local disk and memory do not: a cold lookup then costs no hop to the IO thread)."""
        key = str(manifest.id)
        whole = self._tables.get(key)
        if whole is not None:
            return whole
        raw = self._raw.get(key)
        if raw is None:
            data = self._storage.get_sync(manifest_key(manifest.id))
            if data is None:
                return None
            raw = self._parse_raw(manifest, ndim, data)
            self._raw.put(key, raw)
        group = raw.group_of(coord)
        part = self._tables.get(_group_key(manifest, group))
        if part is None:
            part = self._decode_group(manifest, ndim, raw, group)
            self._tables.put(_group_key(manifest, group), part)
        return part

    def _decode_group(self, manifest: ManifestRef, ndim: int, raw: _Raw, group: int) -> IndexedRefs:
        with raw.lock:
            table = read_row_group(raw.parquet, group, ndim=ndim, where=self._where(manifest))
        return IndexedRefs.build(table, ndim)

    def _parse_raw(self, manifest: ManifestRef, ndim: int, data: bytes) -> _Raw:
        where = self._where(manifest)
        parquet = open_manifest(data, where=where)
        return _Raw(data, parquet, row_group_firsts(parquet, ndim=ndim, where=where))

    async def _raw_bytes(self, manifest: ManifestRef, ndim: int) -> _Raw:
        async def fetch() -> _Raw:
            data = await self._storage.get(manifest_key(manifest.id))
            return self._parse_raw(manifest, ndim, data)

        return await self._once(str(manifest.id), self._raw, fetch)

    async def _once[V](self, key: str, cache: _Lru[V], make: Callable[[], Awaitable[V]]) -> V:
        """``cache[key]``, made by one call of ``make`` however many tasks ask at once."""
        found = cache.get(key)
        if found is not None:
            return found
        loop = asyncio.get_running_loop()
        slot = (id(loop), f"{id(cache)}:{key}")
        pending = self._inflight.get(slot)
        if pending is not None:
            result: V = await pending
            return result
        future: asyncio.Future[V] = loop.create_future()
        self._inflight[slot] = future
        try:
            value = await make()
        except BaseException as exc:
            if isinstance(exc, Exception):
                future.set_exception(exc)
                future.exception()  # retrieved: waiters get it, nobody else needs to
            else:
                future.cancel()
            raise
        finally:
            self._inflight.pop(slot, None)
        cache.put(key, value)
        future.set_result(value)
        return value

    def _where(self, manifest: ManifestRef) -> str:
        return f"{self._storage.url}/{manifest_key(manifest.id)}"
