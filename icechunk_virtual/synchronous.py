"""The synchronous public API: :class:`Repository`, :class:`Session`, :func:`ingest`.

A thin veneer over the async implementation, as zarr's ``Array`` is over ``AsyncArray``: each
method hands its coroutine to :func:`~icechunk_virtual._sync.sync` in one line and takes its
documentation from the method it runs (:func:`~icechunk_virtual._sync.docs_from`), so the docs
are written once, next to the code. ``help(Session.commit)`` shows them as usual.

The veneer is the top floor of the package: besides the repository it reaches ingest and
maintenance, which are built on the async classes (and never on this module).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from icechunk_virtual._sync import docs_from, sync, sync_iter
from icechunk_virtual.format.config import RepositoryConfig
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.format.snapshot import SnapshotInfo
from icechunk_virtual.ingestion import IngestReport, OnChanged, ingest_into
from icechunk_virtual.io.sources import fetch_checksum
from icechunk_virtual.maintenance import (
    ExpireReport,
    FsckReport,
    GCReport,
    expire_snapshots,
    fsck,
    garbage_collect,
)
from icechunk_virtual.repository import AsyncRepository, AsyncSession, Diff, ForkedSession
from icechunk_virtual.zarr.store import IcechunkVirtualStore

__all__ = ["Repository", "Session", "ingest", "source_checksum"]

_R = AsyncRepository
_S = AsyncSession


def source_checksum(url: str, *, storage_options: dict[str, Any] | None = None) -> str | None:
    """The checksum to record with virtual refs into ``url`` (etag, or mtime + size).

    Reads of refs that carry it raise :class:`StaleSourceError` once the file changes.
    """
    return sync(fetch_checksum(url, storage_options or {}, where=url))


def _delegated(prop: Any) -> Any:
    """A read-only property of the async twin, with its documentation."""
    return property(lambda self: prop.fget(self._async), doc=prop.__doc__)


class Session:
    """A view of one snapshot, plus uncommitted changes if opened writable on a branch.

    Get one from :meth:`Repository.writable_session` or :meth:`Repository.readonly_session`, hand
    :attr:`store` to zarr or xarray, and :meth:`commit`. Runs an :class:`AsyncSession`
    (:attr:`async_session`), where every method is documented.
    """

    def __init__(self, session: AsyncSession) -> None:
        self._async = session
        self._store = IcechunkVirtualStore(session)

    @property
    def async_session(self) -> AsyncSession:
        """The async session this one runs (for async code, or to share its caches)."""
        return self._async

    @property
    def store(self) -> IcechunkVirtualStore:
        """A zarr v3 store: ``zarr.open_group(session.store)``, ``xr.open_zarr(session.store,
        consolidated=False)``, ``ds.to_zarr(session.store, consolidated=False)``."""
        return self._store

    snapshot_id = _delegated(_S.snapshot_id)
    branch = _delegated(_S.branch)
    repository_url = _delegated(_S.repository_url)
    read_only = _delegated(_S.read_only)
    has_uncommitted_changes = _delegated(_S.has_uncommitted_changes)

    @docs_from(_S.commit)
    def commit(self, message: str, *, metadata: Mapping[str, Any] | None = None) -> SnapshotId:
        return sync(self._async.commit(message, metadata=metadata))

    @docs_from(_S.settle_commit)
    def settle_commit(self) -> SnapshotId | None:
        return sync(self._async.settle_commit())

    @docs_from(_S.discard_changes)
    def discard_changes(self) -> None:
        self._async.discard_changes()

    @docs_from(_S.rebase)
    def rebase(self) -> None:
        sync(self._async.rebase())

    @docs_from(_S.fork)
    def fork(self) -> ForkedSession:
        return self._async.fork()

    @docs_from(_S.merge)
    def merge(self, *forks: ForkedSession) -> None:
        self._async.merge(*forks)

    @docs_from(_S.set_virtual_refs)
    def set_virtual_refs(
        self, array_path: str, refs: pa.Table | Mapping[str, Any], *, inline_below: int = 0
    ) -> None:
        sync(self._async.set_virtual_refs(array_path, refs, inline_below=inline_below))

    @docs_from(_S.shift_chunks)
    def shift_chunks(self, path: str, axis: int, start: int, by: int) -> None:
        sync(self._async.shift_chunks(path, axis, start, by))

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "writable"
        return f"<Session {mode} branch={self.branch!r} snapshot={self.snapshot_id}>"


class Repository:
    """A transactional, versioned Zarr repository on local disk, in memory or on S3.

    Create or open one with :meth:`create`, :meth:`open` or :meth:`open_or_create`. Runs an
    :class:`AsyncRepository` (:attr:`async_repository`), where every method is documented.
    """

    def __init__(self, repo: AsyncRepository) -> None:
        self._async = repo

    @property
    def async_repository(self) -> AsyncRepository:
        """The async repository this one runs (for async code)."""
        return self._async

    # ---- open / create ----------------------------------------------------------------------
    @classmethod
    @docs_from(_R.create)
    def create(
        cls,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        config: RepositoryConfig | None = None,
        unsafe_single_writer: bool = False,
        source_options: dict[str, dict[str, Any]] | None = None,
    ) -> Repository:
        return cls(sync(_R.create(url, storage_options=storage_options, config=config,
                                  unsafe_single_writer=unsafe_single_writer,
                                  source_options=source_options)))  # fmt: skip

    @classmethod
    @docs_from(_R.open)
    def open(
        cls,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        unsafe_single_writer: bool = False,
        source_options: dict[str, dict[str, Any]] | None = None,
    ) -> Repository:
        return cls(sync(_R.open(url, storage_options=storage_options,
                                unsafe_single_writer=unsafe_single_writer,
                                source_options=source_options)))  # fmt: skip

    @classmethod
    @docs_from(_R.open_or_create)
    def open_or_create(
        cls,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        config: RepositoryConfig | None = None,
        unsafe_single_writer: bool = False,
        source_options: dict[str, dict[str, Any]] | None = None,
    ) -> Repository:
        return cls(sync(_R.open_or_create(url, storage_options=storage_options, config=config,
                                          unsafe_single_writer=unsafe_single_writer,
                                          source_options=source_options)))  # fmt: skip

    config = _delegated(_R.config)
    url = _delegated(_R.url)
    virtual_sources = _delegated(_R.virtual_sources)

    @docs_from(_R.authorize_virtual_source)
    def authorize_virtual_source(self, prefix: str) -> None:
        sync(self._async.authorize_virtual_source(prefix))

    # ---- sessions ---------------------------------------------------------------------------
    @docs_from(_R.writable_session)
    def writable_session(self, branch: str = "main") -> Session:
        return Session(sync(self._async.writable_session(branch)))

    @docs_from(_R.readonly_session)
    def readonly_session(
        self,
        branch: str | None = None,
        *,
        tag: str | None = None,
        snapshot_id: SnapshotId | str | None = None,
        as_of: datetime | None = None,
    ) -> Session:
        return Session(sync(self._async.readonly_session(branch, tag=tag, snapshot_id=snapshot_id,
                                                         as_of=as_of)))  # fmt: skip

    # ---- branches and tags ------------------------------------------------------------------
    @docs_from(_R.create_branch)
    def create_branch(self, name: str, snapshot_id: SnapshotId | str) -> None:
        sync(self._async.create_branch(name, snapshot_id))

    @docs_from(_R.list_branches)
    def list_branches(self) -> list[str]:
        return sync(self._async.list_branches())

    @docs_from(_R.lookup_branch)
    def lookup_branch(self, name: str) -> SnapshotId:
        return sync(self._async.lookup_branch(name))

    @docs_from(_R.reset_branch)
    def reset_branch(self, name: str, snapshot_id: SnapshotId | str) -> None:
        sync(self._async.reset_branch(name, snapshot_id))

    @docs_from(_R.delete_branch)
    def delete_branch(self, name: str) -> None:
        sync(self._async.delete_branch(name))

    @docs_from(_R.create_tag)
    def create_tag(self, name: str, snapshot_id: SnapshotId | str) -> None:
        sync(self._async.create_tag(name, snapshot_id))

    @docs_from(_R.list_tags)
    def list_tags(self) -> list[str]:
        return sync(self._async.list_tags())

    @docs_from(_R.lookup_tag)
    def lookup_tag(self, name: str) -> SnapshotId:
        return sync(self._async.lookup_tag(name))

    @docs_from(_R.delete_tag)
    def delete_tag(self, name: str) -> None:
        sync(self._async.delete_tag(name))

    # ---- history ----------------------------------------------------------------------------
    @docs_from(_R.ancestry)
    def ancestry(
        self,
        *,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: SnapshotId | str | None = None,
    ) -> Iterator[SnapshotInfo]:
        return sync_iter(self._async.ancestry(branch=branch, tag=tag, snapshot_id=snapshot_id))

    @docs_from(_R.diff)
    def diff(self, from_snapshot_id: SnapshotId | str, to_snapshot_id: SnapshotId | str) -> Diff:
        return sync(self._async.diff(from_snapshot_id, to_snapshot_id))

    # ---- ingest and maintenance (functions over the async repository) -----------------------
    @docs_from(ingest_into)
    def ingest(
        self,
        urls: Sequence[str],
        *,
        concat_dim: str | None = None,
        branch: str = "main",
        message: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        on_changed: OnChanged | str = "error",
        group: str | None = None,
        client: Any = None,
        progress: bool = True,
        check_ingested: bool = True,
    ) -> IngestReport:
        return ingest_into(self._async, urls, concat_dim=concat_dim, branch=branch,
                           message=message, storage_options=storage_options,
                           on_changed=on_changed, check_ingested=check_ingested, group=group,
                           client=client, progress=progress)  # fmt: skip

    @docs_from(expire_snapshots)
    def expire_snapshots(
        self,
        older_than: datetime,
        *,
        delete_expired_branches: bool = False,
        delete_expired_tags: bool = False,
    ) -> ExpireReport:
        return sync(expire_snapshots(self._async, older_than,
                                     delete_expired_branches=delete_expired_branches,
                                     delete_expired_tags=delete_expired_tags))  # fmt: skip

    @docs_from(garbage_collect)
    def garbage_collect(self, older_than: datetime) -> GCReport:
        return sync(garbage_collect(self._async, older_than))

    @docs_from(fsck)
    def fsck(self, *, check_sources: bool = False) -> FsckReport:
        return sync(fsck(self._async, check_sources=check_sources))

    def __repr__(self) -> str:
        return f"<Repository {self.url}>"


@docs_from(ingest_into)
def ingest(
    repo: Repository | AsyncRepository,
    urls: Sequence[str],
    *,
    concat_dim: str | None = None,
    branch: str = "main",
    message: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    on_changed: OnChanged | str = "error",
    group: str | None = None,
    client: Any = None,
    progress: bool = True,
    check_ingested: bool = True,
) -> IngestReport:
    core = repo.async_repository if isinstance(repo, Repository) else repo
    return ingest_into(core, urls, concat_dim=concat_dim, branch=branch, message=message,
                       storage_options=storage_options, on_changed=on_changed,
                       check_ingested=check_ingested, group=group, client=client,
                       progress=progress)  # fmt: skip
