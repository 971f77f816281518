"""Versioned, transactional virtual Zarr datasets over scientific archives (public names only).

>>> repo = icechunk_virtual.Repository.create("/tmp/repo")
>>> session = repo.writable_session("main")
>>> ds.to_zarr(session.store, consolidated=False)
>>> session.commit("first data")

The public names only; each lives in the subpackage of its concept (see ``docs/architecture.md``).
"""

import zarr as _zarr

from icechunk_virtual.errors import (
    AlreadyExistsError,
    CommitOutcomeUnknownError,
    ConflictError,
    CorruptChunkError,
    CorruptSourceError,
    FormatError,
    IcechunkVirtualError,
    IncompatibleSourcesError,
    InvalidInputError,
    NoChangesToCommitError,
    NodeNotFoundError,
    NotFoundError,
    NotPicklableError,
    ReadOnlyError,
    RefNotFoundError,
    RepositoryNotFoundError,
    SessionExpiredError,
    SnapshotNotFoundError,
    SourceNotFoundError,
    StaleSourceError,
    StorageError,
    UnauthorizedSourceError,
    UnsafeStorageError,
    UnsupportedSourceError,
)
from icechunk_virtual.format.config import RepositoryConfig
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.format.snapshot import SnapshotInfo
from icechunk_virtual.ingestion import IngestReport, OnChanged
from icechunk_virtual.maintenance import ExpireReport, FsckProblem, FsckReport, GCReport
from icechunk_virtual.repository import AsyncRepository, AsyncSession, Diff, ForkedSession
from icechunk_virtual.synchronous import Repository, Session, ingest, source_checksum
from icechunk_virtual.zarr import IcechunkVirtualStore, read_config

__all__ = [
    "AlreadyExistsError",
    "AsyncRepository",
    "AsyncSession",
    "CommitOutcomeUnknownError",
    "ConflictError",
    "CorruptChunkError",
    "CorruptSourceError",
    "Diff",
    "ExpireReport",
    "ForkedSession",
    "FormatError",
    "FsckProblem",
    "FsckReport",
    "GCReport",
    "IcechunkVirtualError",
    "IcechunkVirtualStore",
    "IncompatibleSourcesError",
    "IngestReport",
    "InvalidInputError",
    "NoChangesToCommitError",
    "NodeNotFoundError",
    "NotFoundError",
    "NotPicklableError",
    "OnChanged",
    "ReadOnlyError",
    "RefNotFoundError",
    "Repository",
    "RepositoryConfig",
    "RepositoryNotFoundError",
    "Session",
    "SessionExpiredError",
    "SnapshotId",
    "SnapshotInfo",
    "SnapshotNotFoundError",
    "SourceNotFoundError",
    "StaleSourceError",
    "StorageError",
    "UnauthorizedSourceError",
    "UnsafeStorageError",
    "UnsupportedSourceError",
    "ingest",
    "read_config",
    "source_checksum",
]

# Files of different lengths combine into rectilinear chunk grids, which zarr-python gates
# behind a flag while the extension is young; repositories hold them, so readers need it on.
_zarr.config.set({"array.rectilinear_chunks": True})
