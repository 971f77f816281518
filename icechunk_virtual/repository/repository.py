"""The async repository core: open/create, object caches, branches, tags, history, sessions.

The synchronous :class:`icechunk_virtual.Repository` wraps this class one line per method and
carries the user documentation.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

from icechunk_virtual.errors import (
    AlreadyExistsError,
    InvalidInputError,
    ObjectNotFoundError,
    RefNotFoundError,
    RepositoryNotFoundError,
    SnapshotNotFoundError,
)
from icechunk_virtual.format.config import CONFIG_KEY, RepositoryConfig
from icechunk_virtual.format.refs import (
    BRANCH_PREFIX,
    TAG_PREFIX,
    BranchVersion,
    branch_version_key,
    branch_versions_prefix,
    decode_tag,
    encode_tag,
    parse_branch_version_key,
    tag_deleted_key,
    tag_key,
    validate_ref_name,
)
from icechunk_virtual.format.snapshot import (
    ManifestRef,
    Snapshot,
    SnapshotInfo,
    snapshot_key,
)
from icechunk_virtual.format.transaction import TransactionLog, transaction_key
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.chunk_refs.tables import IndexedRefs
from icechunk_virtual.chunk_refs.cache import ManifestCache
from icechunk_virtual.io.read_path import ReadPath
from icechunk_virtual.repository.session import AsyncSession
from icechunk_virtual.io.sources import normalize_prefix
from icechunk_virtual.storage import Storage, open_storage

__all__ = ["AsyncRepository"]

SOURCES_PREFIX = "sources/"
_MANIFEST_CACHE_ROWS = 20_000_000
_SNAPSHOT_CACHE_ENTRIES = 256


class AsyncRepository:
    """The async core of :class:`icechunk_virtual.Repository`; see there for the documentation."""

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
        self.virtual_sources: tuple[str, ...] = tuple(config.virtual_sources)
        self._snapshots: OrderedDict[SnapshotId, Snapshot] = OrderedDict()
        self._manifests = ManifestCache(storage, _MANIFEST_CACHE_ROWS)

    # ---- open / create ---------------------------------------------------------------------
    @classmethod
    async def create(
        cls,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        config: RepositoryConfig | None = None,
        unsafe_single_writer: bool = False,
        source_options: dict[str, dict[str, Any]] | None = None,
    ) -> AsyncRepository:
        storage = open_storage(
            url, storage_options=storage_options, unsafe_single_writer=unsafe_single_writer
        )
        config = config or RepositoryConfig()
        root = Snapshot(
            SnapshotInfo(
                id=SnapshotId.generate(),
                parent_id=None,
                written_at=datetime.now(UTC),
                message="Repository initialized",
            ),
            {},  # empty, so ``ds.to_zarr(store)`` (mode "w-") works on a new repository
        )
        await storage.put(snapshot_key(root.id), root.to_bytes())
        await storage.put(transaction_key(root.id), TransactionLog().to_bytes())
        # config.json is the repository's birth certificate: whoever creates it owns the URL.
        if not await storage.put_if_absent(CONFIG_KEY, config.to_bytes()):
            await storage.delete([snapshot_key(root.id), transaction_key(root.id)])
            raise AlreadyExistsError(f"{storage.url}: a repository already exists here")
        repo = cls(storage, config, source_options=source_options)
        await storage.put_if_absent(
            branch_version_key("main", 0), BranchVersion(0, root.id).to_bytes()
        )
        return repo

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        unsafe_single_writer: bool = False,
        source_options: dict[str, dict[str, Any]] | None = None,
    ) -> AsyncRepository:
        storage = open_storage(
            url, storage_options=storage_options, unsafe_single_writer=unsafe_single_writer
        )
        try:
            raw = await storage.get(CONFIG_KEY)
        except ObjectNotFoundError as exc:
            raise RepositoryNotFoundError(
                f"{storage.url}: no repository here (no {CONFIG_KEY}); create one with "
                "Repository.create"
            ) from exc
        config = RepositoryConfig.from_bytes(raw, where=f"{storage.url}/{CONFIG_KEY}")
        repo = cls(storage, config, source_options=source_options)
        await repo.refresh_virtual_sources()
        return repo

    @classmethod
    async def open_or_create(
        cls,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        config: RepositoryConfig | None = None,
        unsafe_single_writer: bool = False,
        source_options: dict[str, dict[str, Any]] | None = None,
    ) -> AsyncRepository:
        try:
            return await cls.open(
                url,
                storage_options=storage_options,
                unsafe_single_writer=unsafe_single_writer,
                source_options=source_options,
            )
        except RepositoryNotFoundError:
            pass
        try:
            return await cls.create(
                url,
                storage_options=storage_options,
                config=config,
                unsafe_single_writer=unsafe_single_writer,
                source_options=source_options,
            )
        except AlreadyExistsError:  # another process created it in between
            return await cls.open(
                url,
                storage_options=storage_options,
                unsafe_single_writer=unsafe_single_writer,
                source_options=source_options,
            )

    # ---- virtual sources --------------------------------------------------------------------
    async def refresh_virtual_sources(self) -> tuple[str, ...]:
        """Re-read the authorised prefixes: config.json's plus every ``sources/`` record."""
        keys = await self.storage.list(SOURCES_PREFIX)
        records = await asyncio.gather(*(self.storage.get(k) for k in keys))
        added = [json.loads(r)["prefix"] for r in records]
        self.virtual_sources = tuple(sorted(set(self.config.virtual_sources) | set(added)))
        return self.virtual_sources

    async def authorize_virtual_source(self, prefix: str) -> None:
        # Each prefix is its own immutable object, so writers authorising different prefixes at
        # the same time never overwrite each other (a shared list in config.json would).
        prefix = normalize_prefix(prefix)
        digest = hashlib.sha256(prefix.encode()).hexdigest()[:32]
        record = json.dumps({"prefix": prefix}).encode()
        await self.storage.put_if_absent(f"{SOURCES_PREFIX}{digest}.json", record)
        await self.refresh_virtual_sources()

    def read_path(self) -> ReadPath:
        """A fresh read path (one per session: sources are verified once per session)."""
        return ReadPath(
            self.storage, authorized=self.virtual_sources, source_options=self.source_options
        )

    # ---- immutable objects ------------------------------------------------------------------
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
        key = transaction_key(snapshot_id)
        raw = await self.storage.get(key)
        return TransactionLog.from_bytes(raw, where=f"{self.storage.url}/{key}")

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

    # ---- branches ---------------------------------------------------------------------------
    async def _branch_version_numbers(self, name: str) -> list[int]:
        keys = await self.storage.list(branch_versions_prefix(name))
        parsed = (parse_branch_version_key(k) for k in keys)
        return sorted(v for p in parsed if p is not None and p[0] == name for v in [p[1]])

    async def _read_branch_version(self, name: str, version: int) -> BranchVersion:
        key = branch_version_key(name, version)
        raw = await self.storage.get(key)
        return BranchVersion.from_bytes(version, raw, where=f"{self.storage.url}/{key}")

    async def _latest_version(self, name: str) -> BranchVersion | None:
        versions = await self._branch_version_numbers(name)
        return await self._read_branch_version(name, versions[-1]) if versions else None

    async def branch_tip(self, name: str) -> BranchVersion:
        """The branch's current version (never a tombstone)."""
        validate_ref_name(name, kind="branch")
        latest = await self._latest_version(name)
        if latest is None or latest.deleted:
            raise RefNotFoundError(f"{self.storage.url}: no branch '{name}'")
        return latest

    async def branch_versions_after(self, name: str, version: int) -> list[BranchVersion]:
        numbers = [v for v in await self._branch_version_numbers(name) if v > version]
        return list(await asyncio.gather(*(self._read_branch_version(name, v) for v in numbers)))

    async def lookup_branch(self, name: str) -> SnapshotId:
        tip = await self.branch_tip(name)
        assert tip.snapshot_id is not None
        return tip.snapshot_id

    async def list_branches(self) -> list[str]:
        keys = await self.storage.list(BRANCH_PREFIX)
        names = {p[0] for p in map(parse_branch_version_key, keys) if p is not None}
        tips = await asyncio.gather(*(self._latest_version(n) for n in names))
        return sorted(n for n, tip in zip(names, tips, strict=True) if tip and not tip.deleted)

    async def _advance_branch(
        self, name: str, snapshot_id: SnapshotId | None, *, create: bool
    ) -> None:
        """Write the branch's next version (a snapshot, or a tombstone for ``None``)."""
        while True:
            latest = await self._latest_version(name)
            exists = latest is not None and not latest.deleted
            if create and exists:
                raise AlreadyExistsError(f"{self.storage.url}: branch '{name}' already exists")
            if not create and not exists:
                raise RefNotFoundError(f"{self.storage.url}: no branch '{name}'")
            version = latest.version + 1 if latest else 0
            record = BranchVersion(version, snapshot_id)
            if await self.storage.put_if_absent(
                branch_version_key(name, version), record.to_bytes()
            ):
                return

    async def create_branch(self, name: str, snapshot_id: SnapshotId | str) -> None:
        validate_ref_name(name, kind="branch")
        snapshot = await self.load_snapshot(snapshot_id)
        await self._advance_branch(name, snapshot.id, create=True)

    async def reset_branch(self, name: str, snapshot_id: SnapshotId | str) -> None:
        validate_ref_name(name, kind="branch")
        snapshot = await self.load_snapshot(snapshot_id)
        await self._advance_branch(name, snapshot.id, create=False)

    async def delete_branch(self, name: str) -> None:
        validate_ref_name(name, kind="branch")
        if name == "main":
            raise InvalidInputError("the 'main' branch cannot be deleted (reset it instead)")
        await self._advance_branch(name, None, create=False)

    # ---- tags -------------------------------------------------------------------------------
    async def create_tag(self, name: str, snapshot_id: SnapshotId | str) -> None:
        validate_ref_name(name, kind="tag")
        snapshot = await self.load_snapshot(snapshot_id)
        if await self.storage.exists(tag_deleted_key(name)):
            raise AlreadyExistsError(
                f"{self.storage.url}: tag '{name}' was deleted; tag names are never reused"
            )
        if not await self.storage.put_if_absent(tag_key(name), encode_tag(snapshot.id)):
            raise AlreadyExistsError(f"{self.storage.url}: tag '{name}' already exists")

    async def lookup_tag(self, name: str) -> SnapshotId:
        validate_ref_name(name, kind="tag")
        try:
            raw = await self.storage.get(tag_key(name))
        except ObjectNotFoundError as exc:
            raise RefNotFoundError(f"{self.storage.url}: no tag '{name}'") from exc
        if await self.storage.exists(tag_deleted_key(name)):
            raise RefNotFoundError(f"{self.storage.url}: tag '{name}' was deleted")
        return decode_tag(raw, where=f"{self.storage.url}/{tag_key(name)}")

    async def list_tags(self) -> list[str]:
        keys = set(await self.storage.list(TAG_PREFIX))
        names = {k[len(TAG_PREFIX) :].partition("/")[0] for k in keys}
        return sorted(n for n in names if tag_key(n) in keys and tag_deleted_key(n) not in keys)

    async def delete_tag(self, name: str) -> None:
        await self.lookup_tag(name)
        await self.storage.put_if_absent(tag_deleted_key(name), b"{}")

    # ---- history ----------------------------------------------------------------------------
    async def resolve(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: SnapshotId | str | None = None,
    ) -> SnapshotId:
        """The snapshot id named by exactly one of branch, tag or snapshot id."""
        given = [x is not None for x in (branch, tag, snapshot_id)]
        if sum(given) != 1:
            raise InvalidInputError("name exactly one of branch=, tag= or snapshot_id=")
        if branch is not None:
            return await self.lookup_branch(branch)
        if tag is not None:
            return await self.lookup_tag(tag)
        return (await self.load_snapshot(snapshot_id)).id  # type: ignore[arg-type]  # checked above

    async def ancestry(self, start: SnapshotId) -> AsyncIterator[SnapshotInfo]:
        """``start`` and its ancestors, newest first."""
        current: SnapshotId | None = start
        while current is not None:
            snapshot = await self.load_snapshot(current)
            yield snapshot.info
            current = snapshot.info.parent_id

    async def snapshot_as_of(self, branch: str, as_of: datetime) -> SnapshotId:
        if as_of.tzinfo is None:
            raise InvalidInputError(f"as_of={as_of!r} needs a timezone (e.g. datetime.UTC)")
        async for info in self.ancestry(await self.lookup_branch(branch)):
            if info.written_at <= as_of:
                return info.id
        raise SnapshotNotFoundError(
            f"{self.storage.url}: branch '{branch}' has no snapshot at or before {as_of.isoformat()}"
        )

    # ---- sessions ---------------------------------------------------------------------------
    async def writable_session(self, branch: str = "main") -> AsyncSession:
        tip = await self.branch_tip(branch)
        assert tip.snapshot_id is not None
        snapshot = await self.load_snapshot(tip.snapshot_id)
        return AsyncSession(self, snapshot, branch=branch, version=tip.version, read_only=False)

    async def readonly_session(
        self,
        branch: str | None = None,
        *,
        tag: str | None = None,
        snapshot_id: SnapshotId | str | None = None,
        as_of: datetime | None = None,
    ) -> AsyncSession:
        if as_of is not None:
            if tag is not None or snapshot_id is not None:
                raise InvalidInputError("as_of= goes with a branch, not with tag= or snapshot_id=")
            resolved = await self.snapshot_as_of(branch or "main", as_of)
        elif branch is None and tag is None and snapshot_id is None:
            resolved = await self.lookup_branch("main")
        else:
            resolved = await self.resolve(branch=branch, tag=tag, snapshot_id=snapshot_id)
        snapshot = await self.load_snapshot(resolved)
        return AsyncSession(self, snapshot, branch=branch, version=None, read_only=True)
