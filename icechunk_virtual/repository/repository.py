"""The repository: open/create, virtual sources, branches, tags, history, diff and sessions.

This async class is the implementation and carries the user documentation; the synchronous
:class:`icechunk_virtual.Repository` runs each method on the IO loop (one line each, the docs
inherited from here).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import icechunk_virtual.repository.branches as branches
from icechunk_virtual.errors import (
    AlreadyExistsError,
    InvalidInputError,
    ObjectNotFoundError,
    RepositoryNotFoundError,
    SnapshotNotFoundError,
)
from icechunk_virtual.format.config import CONFIG_KEY, RepositoryConfig
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.format.refs import (
    BranchVersion,
    branch_version_key,
    tag_deleted_key,
    validate_ref_name,
)
from icechunk_virtual.format.snapshot import Snapshot, SnapshotInfo, snapshot_key
from icechunk_virtual.format.transaction import TransactionLog, transaction_key
from icechunk_virtual.io.sources import normalize_prefix
from icechunk_virtual.repository.diff import Diff, diff_snapshots
from icechunk_virtual.repository.objects import RepositoryObjects
from icechunk_virtual.repository.session import AsyncSession
from icechunk_virtual.storage import Storage, open_storage

__all__ = ["AsyncRepository"]

SOURCES_PREFIX = "sources/"


class AsyncRepository:
    """A transactional, versioned Zarr repository on local disk, in memory or on S3.

    Create or open one with :meth:`create`, :meth:`open` or :meth:`open_or_create`.
    """

    def __init__(self, objects: RepositoryObjects) -> None:
        self.objects = objects
        """The stored objects and their caches (what sessions and maintenance work on)."""

    @property
    def storage(self) -> Storage:
        """Where the repository's objects live."""
        return self.objects.storage

    @property
    def config(self) -> RepositoryConfig:
        """The repository's settings (``config.json``)."""
        return self.objects.config

    @property
    def url(self) -> str:
        """The repository's URL."""
        return self.objects.storage.url

    @property
    def source_options(self) -> dict[str, dict[str, Any]]:
        """fsspec options per virtual-source URL prefix, as given when opening."""
        return self.objects.source_options

    @property
    def virtual_sources(self) -> tuple[str, ...]:
        """URL prefixes virtual chunks may be read from."""
        return self.objects.virtual_sources

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
        """Create an empty repository with one branch, ``main``.

        Parameters
        ----------
        url
            A local path, ``file://path``, ``memory://name`` or ``s3://bucket/prefix``.
        storage_options
            fsspec options for the repository's storage (e.g. S3 endpoint and credentials); used,
            never stored.
        config
            Repository settings (manifest split size, inline threshold, virtual sources).
        unsafe_single_writer
            Accept storage without atomic create (any other fsspec protocol). Only safe if a
            single process ever writes.
        source_options
            fsspec options per virtual-source URL prefix, e.g. ``{"s3://archive/": {"anon": True}}``.

        Raises
        ------
        AlreadyExistsError
            A repository exists at ``url``.
        UnsafeStorageError
            The storage has no atomic create and ``unsafe_single_writer`` is false.
        """
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
        repo = cls(RepositoryObjects(storage, config, source_options=source_options))
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
        """Open an existing repository (see :meth:`create` for the parameters).

        Raises
        ------
        RepositoryNotFoundError
            No repository at ``url``.
        """
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
        repo = cls(RepositoryObjects(storage, config, source_options=source_options))
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
        """Open the repository at ``url``, creating it first if there is none."""
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
        known = {normalize_prefix(p) for p in (*self.config.virtual_sources, *added)}
        self.objects.virtual_sources = tuple(sorted(known))  # (records of old versions: raw)
        return self.virtual_sources

    async def authorize_virtual_source(self, prefix: str) -> None:
        """Allow virtual chunks under ``prefix`` (a URL such as ``s3://archive/era5/``).

        The prefix is recorded in the repository for every user; credentials for it are not:
        give them as ``source_options`` when opening the repository.
        """
        # Each prefix is its own immutable object, so writers authorising different prefixes at
        # the same time never overwrite each other (a shared list in config.json would).
        prefix = normalize_prefix(prefix)
        digest = hashlib.sha256(prefix.encode()).hexdigest()[:32]
        record = json.dumps({"prefix": prefix}).encode()
        await self.storage.put_if_absent(f"{SOURCES_PREFIX}{digest}.json", record)
        await self.refresh_virtual_sources()

    # ---- branches ---------------------------------------------------------------------------
    async def lookup_branch(self, name: str) -> SnapshotId:
        """The snapshot at the tip of ``name``. Raises RefNotFoundError."""
        tip = await self.objects.branch_tip(name)
        assert tip.snapshot_id is not None
        return tip.snapshot_id

    async def list_branches(self) -> list[str]:
        """Names of all branches, sorted."""
        return await branches.list_branches(self.objects)

    async def create_branch(self, name: str, snapshot_id: SnapshotId | str) -> None:
        """Create branch ``name`` at a snapshot. Raises AlreadyExistsError if it exists."""
        validate_ref_name(name, kind="branch")
        snapshot = await self.objects.load_snapshot(snapshot_id)
        await branches.advance_branch(self.objects, name, snapshot.id, create=True)

    async def reset_branch(self, name: str, snapshot_id: SnapshotId | str) -> None:
        """Point ``name`` at another snapshot (rollback); the old history stays in storage."""
        validate_ref_name(name, kind="branch")
        snapshot = await self.objects.load_snapshot(snapshot_id)
        await branches.advance_branch(self.objects, name, snapshot.id, create=False)

    async def delete_branch(self, name: str) -> None:
        """Delete a branch (not ``main``); its snapshots stay until garbage collection."""
        validate_ref_name(name, kind="branch")
        if name == "main":
            raise InvalidInputError("the 'main' branch cannot be deleted (reset it instead)")
        await branches.advance_branch(self.objects, name, None, create=False)

    # ---- tags -------------------------------------------------------------------------------
    async def create_tag(self, name: str, snapshot_id: SnapshotId | str) -> None:
        """Tag a snapshot. Tags are immutable; a deleted tag's name can never be reused."""
        validate_ref_name(name, kind="tag")
        snapshot = await self.objects.load_snapshot(snapshot_id)
        await branches.create_tag(self.objects, name, snapshot.id)

    async def lookup_tag(self, name: str) -> SnapshotId:
        """The snapshot a tag names. Raises RefNotFoundError."""
        return await branches.lookup_tag(self.objects, name)

    async def list_tags(self) -> list[str]:
        """Names of all (not deleted) tags, sorted."""
        return await branches.list_tags(self.objects)

    async def delete_tag(self, name: str) -> None:
        """Delete a tag; its name stays taken."""
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
        assert snapshot_id is not None  # exactly one was given
        return (await self.objects.load_snapshot(snapshot_id)).id

    async def ancestry(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: SnapshotId | str | None = None,
    ) -> AsyncIterator[SnapshotInfo]:
        """The history of a branch, tag or snapshot, newest first."""
        current: SnapshotId | None = await self.resolve(
            branch=branch, tag=tag, snapshot_id=snapshot_id
        )
        while current is not None:
            snapshot = await self.objects.load_snapshot(current)
            yield snapshot.info
            current = snapshot.info.parent_id

    async def diff(
        self, from_snapshot_id: SnapshotId | str, to_snapshot_id: SnapshotId | str
    ) -> Diff:
        """What changed between two snapshots: nodes added, deleted or updated, and chunks."""
        return await diff_snapshots(self.objects, from_snapshot_id, to_snapshot_id)

    async def snapshot_as_of(self, branch: str, as_of: datetime) -> SnapshotId:
        """The last snapshot of ``branch`` written at or before ``as_of`` (timezone-aware)."""
        if as_of.tzinfo is None:
            raise InvalidInputError(f"as_of={as_of!r} needs a timezone (e.g. datetime.UTC)")
        async for info in self.ancestry(branch=branch):
            if info.written_at <= as_of:
                return info.id
        raise SnapshotNotFoundError(
            f"{self.storage.url}: branch '{branch}' has no snapshot at or before {as_of.isoformat()}"
        )

    # ---- sessions ---------------------------------------------------------------------------
    async def writable_session(self, branch: str = "main") -> AsyncSession:
        """A session at the tip of ``branch`` whose changes :meth:`AsyncSession.commit` records."""
        tip = await self.objects.branch_tip(branch)
        assert tip.snapshot_id is not None
        snapshot = await self.objects.load_snapshot(tip.snapshot_id)
        return AsyncSession(
            self.objects, snapshot, branch=branch, version=tip.version, read_only=False
        )

    async def readonly_session(
        self,
        branch: str | None = None,
        *,
        tag: str | None = None,
        snapshot_id: SnapshotId | str | None = None,
        as_of: datetime | None = None,
    ) -> AsyncSession:
        """A read-only session on a branch tip, a tag, a snapshot, or a branch as of a time.

        Parameters
        ----------
        branch
            Branch name (``main`` when nothing is named).
        tag
            Tag name.
        snapshot_id
            Snapshot id.
        as_of
            With ``branch``: the branch's last snapshot written at or before this aware datetime.
        """
        if as_of is not None:
            if tag is not None or snapshot_id is not None:
                raise InvalidInputError("as_of= goes with a branch, not with tag= or snapshot_id=")
            resolved = await self.snapshot_as_of(branch or "main", as_of)
        elif branch is None and tag is None and snapshot_id is None:
            resolved = await self.lookup_branch("main")
        else:
            resolved = await self.resolve(branch=branch, tag=tag, snapshot_id=snapshot_id)
        snapshot = await self.objects.load_snapshot(resolved)
        return AsyncSession(self.objects, snapshot, branch=branch, version=None, read_only=True)

    async def load_snapshot(self, snapshot_id: SnapshotId | str) -> Snapshot:
        """A snapshot by id (its info, node tree and manifests). Raises SnapshotNotFoundError."""
        return await self.objects.load_snapshot(snapshot_id)

    def __repr__(self) -> str:
        return f"<AsyncRepository {self.url}>"
