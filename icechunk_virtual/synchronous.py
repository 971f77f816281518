"""The synchronous public API: :class:`Repository` and :class:`Session`.

Each method runs its :class:`~icechunk_virtual.repository.repository.AsyncRepository` /
:class:`~icechunk_virtual.repository.session.AsyncSession` twin on the IO loop and carries the user docs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from icechunk_virtual._sync import sync
from icechunk_virtual.repository.diff import Diff, diff_snapshots
from icechunk_virtual.repository.fork import ForkedSession
from icechunk_virtual.format.config import RepositoryConfig
from icechunk_virtual.format.snapshot import SnapshotInfo
from icechunk_virtual.maintenance.fsck import FsckReport, fsck
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.maintenance.snapshots import (
    ExpireReport,
    GCReport,
    expire_snapshots,
    garbage_collect,
)
from icechunk_virtual.repository.repository import AsyncRepository
from icechunk_virtual.repository.session import AsyncSession
from icechunk_virtual.io.sources import fetch_checksum
from icechunk_virtual.zarr.store import IcechunkVirtualStore

if TYPE_CHECKING:
    from icechunk_virtual.ingestion.orchestrate import IngestReport

__all__ = ["Repository", "Session", "source_checksum"]


def source_checksum(url: str, *, storage_options: dict[str, Any] | None = None) -> str | None:
    """The checksum to record with virtual refs into ``url`` (etag, or mtime + size).

    Reads of refs that carry it raise :class:`StaleSourceError` once the file changes.
    """
    return sync(fetch_checksum(url, storage_options or {}, where=url))


class Session:
    """A view of one snapshot, plus uncommitted changes if opened writable on a branch.

    Get one from :meth:`Repository.writable_session` or :meth:`Repository.readonly_session`, hand
    :attr:`store` to zarr or xarray, and :meth:`commit`.
    """

    def __init__(self, session: AsyncSession) -> None:
        self._async = session
        self._store = IcechunkVirtualStore(session)

    @property
    def store(self) -> IcechunkVirtualStore:
        """A zarr v3 store: ``zarr.open_group(session.store)``, ``xr.open_zarr(session.store,
        consolidated=False)``, ``ds.to_zarr(session.store, consolidated=False)``."""
        return self._store

    @property
    def snapshot_id(self) -> SnapshotId:
        """The snapshot this session is based on (the new one after a commit)."""
        return self._async.snapshot_id

    @property
    def branch(self) -> str | None:
        """The branch, or ``None`` for a session opened on a tag or snapshot."""
        return self._async.branch

    @property
    def read_only(self) -> bool:
        return self._async.read_only

    @property
    def has_uncommitted_changes(self) -> bool:
        return self._async.has_uncommitted_changes

    def commit(self, message: str, *, metadata: Mapping[str, Any] | None = None) -> SnapshotId:
        """Record the session's changes as a new snapshot at the tip of its branch.

        If other writers committed to the branch since this session opened, the changes are
        rebased onto theirs when they do not overlap (different arrays, or different chunks of one
        array); otherwise nothing is written to the branch and :class:`ConflictError` names the
        overlapping paths and chunks.

        Returns
        -------
        SnapshotId
            The new snapshot's id.

        Raises
        ------
        ConflictError
            Another commit changed the same chunks, metadata or nodes.
        NoChangesToCommitError
            The session has no changes.
        ReadOnlyError
            The session is read-only.
        """
        return sync(self._async.commit(message, metadata=metadata))

    def discard_changes(self) -> None:
        """Forget every uncommitted change."""
        self._async.discard_changes()

    def rebase(self) -> None:
        """Move the session onto its branch's current tip, keeping its changes.

        Raises :class:`ConflictError` if a commit since the session's base overlaps its changes.
        """
        sync(self._async.rebase())

    def fork(self) -> ForkedSession:
        """A picklable fork of this writable session, for another process to add virtual refs.

        Create the arrays first; send forks to workers (e.g. with dask), call
        ``fork.set_virtual_refs(...)`` there, send them back and :meth:`merge` them, then commit
        once. Forks carry array metadata and refs only: workers need no repository access.
        """
        return self._async.fork()

    def merge(self, *forks: ForkedSession) -> None:
        """Add the virtual refs of forks of this session to its changes (each fork once).

        Raises
        ------
        InvalidInputError
            A fork is not from this session, was merged before, or wrote an array whose metadata
            changed in this session after forking.
        """
        self._async.merge(*forks)

    def set_virtual_refs(
        self, array_path: str, refs: pa.Table | Mapping[str, Any], *, inline_below: int = 0
    ) -> None:
        """Point chunks of an array at byte ranges of outside files.

        Parameters
        ----------
        array_path
            The array, e.g. ``"/t2m"`` (the array must exist in the session).
        refs
            A pyarrow Table or dict of columns: the chunk coordinates, either as ``coord``
            (n x ndim) or as one column per dimension ``c0``, ``c1``, ...; ``location`` (URL),
            ``offset`` and ``length`` (bytes); optional ``checksum`` (from
            :func:`icechunk_virtual.source_checksum`; reads then fail with
            :class:`StaleSourceError` if the source changed).
        inline_below
            Fetch chunks shorter than this many bytes now and keep their bytes in the manifest.

        Raises
        ------
        InvalidInputError
            A ref is malformed (the message names the first bad row).
        NodeNotFoundError
            No array at ``array_path``.
        UnauthorizedSourceError
            A location is under no prefix authorised by :meth:`Repository.authorize_virtual_source`.
        """
        sync(self._async.set_virtual_refs(array_path, refs, inline_below=inline_below))

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "writable"
        return f"<Session {mode} branch={self.branch!r} snapshot={self.snapshot_id}>"


class Repository:
    """A transactional, versioned Zarr repository on local disk, in memory or on S3.

    Create or open one with :meth:`create`, :meth:`open` or :meth:`open_or_create`.
    """

    def __init__(self, repo: AsyncRepository) -> None:
        self._async = repo

    # ---- open / create ----------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        config: RepositoryConfig | None = None,
        unsafe_single_writer: bool = False,
        source_options: dict[str, dict[str, Any]] | None = None,
    ) -> Repository:
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
        return cls(
            sync(
                AsyncRepository.create(
                    url,
                    storage_options=storage_options,
                    config=config,
                    unsafe_single_writer=unsafe_single_writer,
                    source_options=source_options,
                )
            )
        )

    @classmethod
    def open(
        cls,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        unsafe_single_writer: bool = False,
        source_options: dict[str, dict[str, Any]] | None = None,
    ) -> Repository:
        """Open an existing repository (see :meth:`create` for the parameters).

        Raises
        ------
        RepositoryNotFoundError
            No repository at ``url``.
        """
        return cls(
            sync(
                AsyncRepository.open(
                    url,
                    storage_options=storage_options,
                    unsafe_single_writer=unsafe_single_writer,
                    source_options=source_options,
                )
            )
        )

    @classmethod
    def open_or_create(
        cls,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        config: RepositoryConfig | None = None,
        unsafe_single_writer: bool = False,
        source_options: dict[str, dict[str, Any]] | None = None,
    ) -> Repository:
        """Open the repository at ``url``, creating it first if there is none."""
        return cls(
            sync(
                AsyncRepository.open_or_create(
                    url,
                    storage_options=storage_options,
                    config=config,
                    unsafe_single_writer=unsafe_single_writer,
                    source_options=source_options,
                )
            )
        )

    @property
    def config(self) -> RepositoryConfig:
        """The repository's settings (``config.json``)."""
        return self._async.config

    @property
    def url(self) -> str:
        return self._async.storage.url

    # ---- virtual sources --------------------------------------------------------------------
    @property
    def virtual_sources(self) -> tuple[str, ...]:
        """URL prefixes virtual chunks may be read from."""
        return self._async.virtual_sources

    def authorize_virtual_source(self, prefix: str) -> None:
        """Allow virtual chunks under ``prefix`` (a URL such as ``s3://archive/era5/``).

        The prefix is recorded in the repository for every user; credentials for it are not:
        give them as ``source_options`` when opening the repository.
        """
        sync(self._async.authorize_virtual_source(prefix))

    # ---- sessions ---------------------------------------------------------------------------
    def writable_session(self, branch: str = "main") -> Session:
        """A session at the tip of ``branch`` whose changes :meth:`Session.commit` records."""
        return Session(sync(self._async.writable_session(branch)))

    def readonly_session(
        self,
        branch: str | None = None,
        *,
        tag: str | None = None,
        snapshot_id: SnapshotId | str | None = None,
        as_of: datetime | None = None,
    ) -> Session:
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
        return Session(
            sync(
                self._async.readonly_session(branch, tag=tag, snapshot_id=snapshot_id, as_of=as_of)
            )
        )

    # ---- branches ---------------------------------------------------------------------------
    def create_branch(self, name: str, snapshot_id: SnapshotId | str) -> None:
        """Create branch ``name`` at a snapshot. Raises AlreadyExistsError if it exists."""
        sync(self._async.create_branch(name, snapshot_id))

    def list_branches(self) -> list[str]:
        """Names of all branches, sorted."""
        return sync(self._async.list_branches())

    def lookup_branch(self, name: str) -> SnapshotId:
        """The snapshot at the tip of ``name``. Raises RefNotFoundError."""
        return sync(self._async.lookup_branch(name))

    def reset_branch(self, name: str, snapshot_id: SnapshotId | str) -> None:
        """Point ``name`` at another snapshot (rollback); the old history stays in storage."""
        sync(self._async.reset_branch(name, snapshot_id))

    def delete_branch(self, name: str) -> None:
        """Delete a branch (not ``main``); its snapshots stay until garbage collection."""
        sync(self._async.delete_branch(name))

    # ---- tags -------------------------------------------------------------------------------
    def create_tag(self, name: str, snapshot_id: SnapshotId | str) -> None:
        """Tag a snapshot. Tags are immutable; a deleted tag's name can never be reused."""
        sync(self._async.create_tag(name, snapshot_id))

    def list_tags(self) -> list[str]:
        """Names of all (not deleted) tags, sorted."""
        return sync(self._async.list_tags())

    def lookup_tag(self, name: str) -> SnapshotId:
        """The snapshot a tag names. Raises RefNotFoundError."""
        return sync(self._async.lookup_tag(name))

    def delete_tag(self, name: str) -> None:
        """Delete a tag; its name stays taken."""
        sync(self._async.delete_tag(name))

    # ---- history ----------------------------------------------------------------------------
    def ancestry(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: SnapshotId | str | None = None,
    ) -> Iterator[SnapshotInfo]:
        """The history of a branch, tag or snapshot, newest first."""
        start = sync(self._async.resolve(branch=branch, tag=tag, snapshot_id=snapshot_id))
        current: SnapshotId | None = start
        while current is not None:
            snapshot = sync(self._async.load_snapshot(current))
            yield snapshot.info
            current = snapshot.info.parent_id

    def diff(self, from_snapshot_id: SnapshotId | str, to_snapshot_id: SnapshotId | str) -> Diff:
        """What changed between two snapshots: nodes added, deleted or updated, and chunks."""
        return sync(diff_snapshots(self._async, from_snapshot_id, to_snapshot_id))

    # ---- ingest -----------------------------------------------------------------------------
    def ingest(
        self,
        urls: Sequence[str],
        *,
        concat_dim: str | None = None,
        branch: str = "main",
        message: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        on_changed: str = "error",
        group: str | None = None,
        client: Any = None,
        progress: bool = True,
    ) -> IngestReport:
        """Scan archive files and commit their chunk refs: :func:`icechunk_virtual.ingestion.orchestrate` on this
        repository (see there for every option)."""
        from icechunk_virtual.ingestion.orchestrate import ingest  # ingest builds on this class

        return ingest(
            self,
            urls,
            concat_dim=concat_dim,
            branch=branch,
            message=message,
            storage_options=storage_options,
            on_changed=on_changed,
            group=group,
            client=client,
            progress=progress,
        )

    # ---- maintenance ------------------------------------------------------------------------
    def expire_snapshots(
        self,
        older_than: datetime,
        *,
        delete_expired_branches: bool = False,
        delete_expired_tags: bool = False,
    ) -> ExpireReport:
        """Drop snapshots older than ``older_than`` from every branch's history.

        Branch tips, tagged snapshots and the first snapshot stay; a kept snapshot whose parent
        expires is relinked to its nearest kept ancestor. Expired snapshots stay in storage until
        :meth:`garbage_collect`. Safe while other processes commit.

        Parameters
        ----------
        older_than
            Cutoff, a timezone-aware datetime.
        delete_expired_branches
            Also delete branches (other than ``main``) whose tip is older than the cutoff.
        delete_expired_tags
            Also delete tags naming a snapshot older than the cutoff.
        """
        return sync(
            expire_snapshots(
                self._async,
                older_than,
                delete_expired_branches=delete_expired_branches,
                delete_expired_tags=delete_expired_tags,
            )
        )

    def garbage_collect(self, older_than: datetime) -> GCReport:
        """Delete snapshots, manifests, native chunks and transaction logs no branch or tag reaches.

        Objects modified after ``older_than`` are never deleted, so commits in flight are safe:
        choose a cutoff older than your longest-running writer (an hour is plenty for most).
        Returns the number of objects deleted, by kind.
        """
        return sync(garbage_collect(self._async, older_than))

    def fsck(self, *, check_sources: bool = False) -> FsckReport:
        """Check that every ref, snapshot, manifest and native chunk a branch or tag reaches exists
        and parses; with ``check_sources=True`` also that every virtual source exists, is
        authorised and still has the checksum recorded with its refs. Problems are listed in the
        report (``report.ok``), not raised."""
        return sync(fsck(self._async, check_sources=check_sources))

    def __repr__(self) -> str:
        return f"<Repository {self.url}>"
