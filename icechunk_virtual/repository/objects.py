"""A repository's stored objects, read through caches: snapshots, transaction logs, manifests and
branch versions.

Sessions, diffs and maintenance need these and nothing else of the repository, so they depend on
this class rather than on :class:`~icechunk_virtual.repository.repository.AsyncRepository` (which
composes it): the repository creates sessions, sessions never reach back for it. Icechunk's core
calls the same component its asset manager.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from icechunk_virtual.chunk_refs.cache import ManifestCache
from icechunk_virtual.chunk_refs.tables import IndexedRefs
from icechunk_virtual.errors import ObjectNotFoundError, RefNotFoundError, SnapshotNotFoundError
from icechunk_virtual.format.config import RepositoryConfig
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.format.refs import BranchVersion, validate_ref_name
from icechunk_virtual.format.snapshot import ManifestRef, Snapshot, snapshot_key
from icechunk_virtual.format.transaction import TransactionLog, transaction_key
from icechunk_virtual.io.read_path import ReadPath
from icechunk_virtual.io.sources import normalize_prefix
from icechunk_virtual.repository.branch_log import create_version, read_tip, versions_after
from icechunk_virtual.storage import Storage

__all__ = ["RepositoryObjects"]

_MANIFEST_CACHE_ROWS = 20_000_000
_SNAPSHOT_CACHE_ENTRIES = 256


class RepositoryObjects:
    """Storage, settings and the object caches of one open repository."""

    def __init__(
        self,
        storage: Storage,
        config: RepositoryConfig,
        *,
        source_options: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.storage = storage
        self.config = config
        self.source_options = dict(source_options or {})
        self._read_paths: weakref.WeakSet[ReadPath] = weakref.WeakSet()
        self._virtual_sources = tuple(sorted({normalize_prefix(p) for p in config.virtual_sources}))
        self._snapshots: OrderedDict[SnapshotId, Snapshot] = OrderedDict()
        self._manifests = ManifestCache(storage, _MANIFEST_CACHE_ROWS)

    @property
    def virtual_sources(self) -> tuple[str, ...]:
        """URL prefixes virtual chunks may be read from (config.json's and the recorded ones)."""
        return self._virtual_sources

    @virtual_sources.setter
    def virtual_sources(self, prefixes: tuple[str, ...]) -> None:
        """A prefix authorised here applies at once to every open session's read path (an
        ingest authorises its sources while its session is open)."""
        self._virtual_sources = prefixes
        for path in self._read_paths:
            path.authorized = prefixes

    def read_path(self) -> ReadPath:
        """A fresh read path (one per session: sources are verified once per session)."""
        path = ReadPath(
            self.storage, authorized=self.virtual_sources, source_options=self.source_options
        )
        self._read_paths.add(path)
        return path

    # ---- snapshots and transaction logs ------------------------------------------------------
    def remember_snapshot(self, snapshot: Snapshot) -> None:
        self._snapshots[snapshot.id] = snapshot
        self._snapshots.move_to_end(snapshot.id)
        while len(self._snapshots) > _SNAPSHOT_CACHE_ENTRIES:
            self._snapshots.popitem(last=False)

    def forget_snapshots(self, snapshot_ids: Iterable[SnapshotId]) -> None:
        """Drop snapshots from the cache (garbage collection deleted them)."""
        for snapshot_id in snapshot_ids:
            self._snapshots.pop(snapshot_id, None)

    async def load_snapshot(self, snapshot_id: SnapshotId | str) -> Snapshot:
        """A snapshot by id. Raises :class:`SnapshotNotFoundError`."""
        snapshot_id = SnapshotId.parse(snapshot_id)
        cached = self._snapshots.get(snapshot_id)
        if cached is not None:
            return cached
        key = snapshot_key(snapshot_id)
        try:
            raw = await self.storage.get(key)
        except ObjectNotFoundError as exc:
            raise SnapshotNotFoundError(f"{self.storage.url}: no snapshot {snapshot_id}") from exc
        snapshot = Snapshot.from_bytes(raw, where=f"{self.storage.url}/{key}")
        self.remember_snapshot(snapshot)
        return snapshot

    async def load_transaction(self, snapshot_id: SnapshotId) -> TransactionLog:
        """What the commit of ``snapshot_id`` changed."""
        key = transaction_key(snapshot_id)
        raw = await self.storage.get(key)
        return TransactionLog.from_bytes(raw, where=f"{self.storage.url}/{key}")

    # ---- manifests -------------------------------------------------------------------------
    def cached_manifest(self, manifest: ManifestRef, coord: tuple[int, ...]) -> IndexedRefs | None:
        """The loaded refs holding ``coord`` of a manifest, if they are in memory (no I/O)."""
        return self._manifests.cached(manifest, coord)

    async def load_manifest(self, manifest: ManifestRef, ndim: int) -> IndexedRefs:
        """A whole manifest's refs."""
        return await self._manifests.load(manifest, ndim)

    async def lookup_manifest(
        self, manifest: ManifestRef, ndim: int, coord: tuple[int, ...]
    ) -> IndexedRefs:
        """The refs of the manifest's row group holding ``coord`` (one small decode)."""
        return await self._manifests.lookup_part(manifest, ndim, coord)

    def lookup_manifest_sync(
        self, manifest: ManifestRef, ndim: int, coord: tuple[int, ...]
    ) -> IndexedRefs | None:
        """:meth:`lookup_manifest` in the calling thread, if the storage allows (else ``None``)."""
        return self._manifests.lookup_part_sync(manifest, ndim, coord)

    # ---- branch versions -------------------------------------------------------------------
    async def latest_version(self, name: str) -> BranchVersion | None:
        """The branch's newest version (maybe a tombstone), or ``None`` if it never existed."""
        return await read_tip(self.storage, name)

    async def branch_tip(self, name: str) -> BranchVersion:
        """The branch's current version (never a tombstone)."""
        validate_ref_name(name, kind="branch")
        latest = await self.latest_version(name)
        if latest is None or latest.deleted:
            raise RefNotFoundError(f"{self.storage.url}: no branch '{name}'")
        return latest

    async def branch_versions_after(self, name: str, version: int) -> list[BranchVersion]:
        """The versions a branch gained after ``version``, oldest first.

        Raises :class:`SessionExpiredError` if garbage collection deleted some of them.
        """
        return await versions_after(self.storage, name, version)

    async def create_branch_version(self, name: str, record: BranchVersion) -> bool:
        """Create the branch's version ``record.version``; ``False`` if a rival holds it."""
        return await create_version(self.storage, name, record, is_ancestor=self.is_ancestor)

    async def is_ancestor(self, tip: SnapshotId, snapshot_id: SnapshotId) -> bool:
        """Whether ``snapshot_id`` is ``tip`` or in its history (as far as it is kept)."""
        current: SnapshotId | None = tip
        while current is not None:
            if current == snapshot_id:
                return True
            try:
                current = (await self.load_snapshot(current)).info.parent_id
            except SnapshotNotFoundError:
                return False
        return False
