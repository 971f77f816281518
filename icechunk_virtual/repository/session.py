"""Sessions: a view of one snapshot plus uncommitted changes, and the commit loop.

``commit`` writes the new snapshot, then creates the branch's next version with put-if-absent,
replaying rival versions (:mod:`.rebase`) until it wins or conflicts; the protocol and its
invariants are in ``docs/architecture.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from icechunk_virtual.chunk_refs.grid import check_chunk, chunk_grid_shape
from icechunk_virtual.chunk_refs.shift import shifted_refs
from icechunk_virtual.chunk_refs.tables import coords_of, virtual_refs
from icechunk_virtual.errors import (
    InvalidInputError,
    NoChangesToCommitError,
    NodeNotFoundError,
    ReadOnlyError,
)
from icechunk_virtual.format.ids import ChunkId, SnapshotId
from icechunk_virtual.format.manifest_file import ChunkKind
from icechunk_virtual.format.snapshot import ManifestRef, NodeKind, Snapshot
from icechunk_virtual.io.sources import check_authorized
from icechunk_virtual.repository.changeset import ArrayChanges, ChangeSet, is_under
from icechunk_virtual.repository.chunk_reads import ChunkReader
from icechunk_virtual.repository.commit import node_kind, rewrite_manifests, summarize
from icechunk_virtual.repository.fork import ForkedSession, merge_forks
from icechunk_virtual.repository.nodes import NodeView, normalize_path
from icechunk_virtual.repository.publish import publish
from icechunk_virtual.repository.rebase import catch_up
from icechunk_virtual.repository.reopen import pickled_session

if TYPE_CHECKING:
    from icechunk_virtual.repository.objects import RepositoryObjects

__all__ = ["AsyncSession"]


class AsyncSession:
    """A view of one snapshot, plus uncommitted changes if opened writable on a branch.

    Get one from :meth:`AsyncRepository.writable_session` or
    :meth:`AsyncRepository.readonly_session` and :meth:`commit`; zarr and xarray read and write
    it through ``IcechunkVirtualStore(session)`` (the sync :class:`icechunk_virtual.Session` has it
    as ``session.store``).
    """

    spill_rows: int = 2_000_000
    """An array's pending refs beyond this many are written to manifest files before commit."""

    def __init__(
        self,
        repo: RepositoryObjects,
        base: Snapshot,
        *,
        branch: str | None,
        version: int | None,
        read_only: bool,
    ) -> None:
        self._repo = repo
        self._base = base
        self._branch = branch
        self._version = version
        self._read_only = read_only
        self._changes = ChangeSet()
        self._read_path = repo.read_path()
        self._forks: set[str] = set()
        self._unsettled: tuple[Snapshot, int] | None = None
        """A commit attempt whose ref write has an unknown outcome: its snapshot and version."""
        self._retry_id: SnapshotId | None = None
        self.chunks = ChunkReader(self, self._changes, repo, self._read_path)
        """Chunk lookups and reads: ``chunk_ref``, ``read_chunk``, ``read_chunks`` (and sync)."""

    # ---- identity -------------------------------------------------------------------------
    @property
    def snapshot_id(self) -> SnapshotId:
        """The snapshot this session is based on (the new one after a commit)."""
        return self._base.id

    @property
    def repository_url(self) -> str:
        """The URL of the repository the session reads."""
        return self._repo.storage.url

    @property
    def branch(self) -> str | None:
        """The branch, or ``None`` for a session opened on a tag or snapshot."""
        return self._branch

    @property
    def read_only(self) -> bool:
        """Whether the session refuses changes (opened on a tag, snapshot, time or read-only)."""
        return self._read_only

    @property
    def has_uncommitted_changes(self) -> bool:
        """Whether the session holds changes not yet committed."""
        return not self._changes.is_empty()

    def __reduce__(self) -> tuple[Any, ...]:
        """Read-only: pickled as its address, reopened where it arrives (:mod:`.reopen`)."""
        return pickled_session(self, self._repo)

    def _check_writable(self) -> None:
        if self._read_only:
            where = f"branch '{self._branch}'" if self._branch else f"snapshot {self.snapshot_id}"
            raise ReadOnlyError(
                f"this session is read-only (opened on {where} at {self.snapshot_id}); "
                "use repo.writable_session(branch) to write"
            )

    # ---- nodes ----------------------------------------------------------------------------
    def node(self, path: str) -> NodeView | None:
        """The group or array at ``path`` as this session sees it, or ``None``."""
        path = normalize_path(path)
        with self._changes.lock:
            change = self._changes.nodes.get(path)
            if change is not None:
                kind = node_kind(path, change.zarr_json)
                return NodeView(path, kind, change.zarr_json, change.text)
            if path in self._changes.deleted:
                return None
        base = self._base.nodes.get(path)
        return NodeView(base.path, base.kind, base.zarr_json, base.text) if base else None

    def node_paths(self) -> list[str]:
        """Every node path this session sees, sorted."""
        with self._changes.lock:
            paths = (set(self._base.nodes) - self._changes.deleted) | set(self._changes.nodes)
        return sorted(paths)

    def set_node_metadata(
        self, path: str, zarr_json: Mapping[str, Any], *, text: str | None = None
    ) -> None:
        """Create or update a node from its ``zarr.json`` document (``text``: as written)."""
        self._check_writable()
        path = normalize_path(path)
        node_kind(path, zarr_json)
        with self._changes.lock:
            base = self._base.nodes.get(path)
            untouched = path not in self._changes.nodes and path not in self._changes.deleted
            if untouched and base is not None and base.zarr_json == zarr_json:
                return  # rewriting identical metadata is not a change (and must not conflict)
            self._changes.set_node(path, zarr_json, text)

    def delete_node(self, path: str) -> None:
        """Delete a node and everything below it."""
        self._check_writable()
        path = normalize_path(path)
        below = (p for p in self._base.nodes if is_under(p, path))
        self._changes.delete_subtree(path, below)

    def _array(self, path: str) -> NodeView:
        node = self.node(path)
        if node is None or node.kind is not NodeKind.ARRAY:
            raise NodeNotFoundError(
                f"no array at '{normalize_path(path)}' in snapshot {self.snapshot_id}"
            )
        return node

    def _has_base_chunks(self, path: str) -> bool:
        change = self._changes.nodes.get(path)
        base = self._base.nodes.get(path)
        return base is not None and (change is None or not change.replaces)

    def stored_manifests(self, path: str) -> tuple[ManifestRef, ...]:
        """The manifests holding the array's refs that are not in memory: those spilled in this
        session (which include the base's), else the base snapshot's."""
        pending = self._changes.chunks.get(path)
        if pending is not None and pending.manifests is not None:
            return pending.manifests
        return self._base.nodes[path].manifests if self._has_base_chunks(path) else ()

    # ---- chunks ---------------------------------------------------------------------------
    async def chunk_coords(self, path: str) -> npt.NDArray[np.int64]:
        """Coordinates of every written chunk of an array (for listing)."""
        node = self._array(normalize_path(path))
        return coords_of(await self.chunks.array_refs(node.path, node.ndim), node.ndim)

    async def shift_chunks(self, path: str, axis: int, start: int, by: int) -> None:
        """Move every chunk at index ``start`` or later along ``axis`` by ``by`` (refs only: no
        bytes are read or copied), opening a gap for inserted chunks; the chunks of the gap read
        as the fill value until written. Grow the array's shape first."""
        self._check_writable()
        node = self._array(normalize_path(path))
        refs = await self.chunks.array_refs(node.path, node.ndim)
        moved = shifted_refs(refs, node.ndim, axis, start, by)
        with self._changes.lock:
            self._changes.array(node.path, node.ndim).add_batch(moved)

    async def write_chunk(self, path: str, coord: tuple[int, ...], data: bytes) -> None:
        """Store a native chunk: inline in the manifest if small, else as ``chunks/<id>``."""
        self._check_writable()
        node = self._chunk_of(path, coord)
        changes = self._changes.array(node.path, node.ndim)
        if len(data) <= self._repo.config.inline_chunk_threshold_bytes:
            with self._changes.lock:
                changes.add_chunk(coord, ChunkKind.INLINE, length=len(data), inline=bytes(data))
            return
        chunk_id = ChunkId.generate()
        await self._repo.storage.put(f"chunks/{chunk_id}", bytes(data))
        with self._changes.lock:
            changes.add_chunk(coord, ChunkKind.NATIVE, location=str(chunk_id), length=len(data))

    def delete_chunk(self, path: str, coord: tuple[int, ...]) -> None:
        """Forget a chunk: it reads as the fill value."""
        self._check_writable()
        node = self._chunk_of(path, coord)
        with self._changes.lock:
            self._changes.array(node.path, node.ndim).add_chunk(coord, ChunkKind.DELETED)

    def _chunk_of(self, path: str, coord: tuple[int, ...]) -> NodeView:
        """The array at ``path``, once ``coord`` is known to be one of its chunks."""
        node = self._array(path)
        check_chunk(coord, node.ndim, chunk_grid_shape(node.zarr_json), f"array '{node.path}'")
        return node

    async def set_virtual_refs(
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
            A location is under no prefix authorised by
            :meth:`AsyncRepository.authorize_virtual_source`.
        """
        self._check_writable()
        node = self._array(array_path)
        where = f"array '{node.path}'"
        table = virtual_refs(
            refs, ndim=node.ndim, grid=chunk_grid_shape(node.zarr_json), where=where
        )
        locations = table.column("location").combine_chunks().dictionary
        check_authorized(locations.to_pylist(), self._read_path.authorized, where=where)
        if inline_below > 0:
            table = await self.chunks.inline_small(table, node.ndim, inline_below, where)
        with self._changes.lock:
            changes = self._changes.array(node.path, node.ndim)
            changes.add_batch(table)
        if changes.pending_rows() >= self.spill_rows:
            await self._spill(node.path, changes)

    async def _spill(self, path: str, changes: ArrayChanges) -> None:
        """Write an array's pending refs into manifest files now (unreferenced until commit), so a
        stream of refs of any length needs bounded memory."""
        with self._changes.lock:
            start = self.stored_manifests(path)
            delta = changes.take_for_spill()
        changes.manifests = await rewrite_manifests(
            start,
            changes.ndim,
            delta,
            storage=self._repo.storage,
            split_rows=self._repo.config.manifest_split_rows,
            load=self._repo.load_manifest,
        )

    def _array_metadata(self) -> dict[str, Mapping[str, Any]]:
        """Every array's ``zarr.json`` as this session sees it, by path."""
        with self._changes.lock:
            views = [self.node(p) for p in set(self._base.nodes) | set(self._changes.nodes)]
        return {v.path: v.zarr_json for v in views if v is not None and v.kind is NodeKind.ARRAY}

    def fork(self) -> ForkedSession:
        """A picklable fork of this writable session, for another process to add virtual refs.

        Create the arrays first; send forks to workers (e.g. with dask), call
        ``fork.set_virtual_refs(...)`` there, send them back and :meth:`merge` them, then commit
        once. Forks carry array metadata and refs only: workers need no repository access.
        """
        self._check_writable()
        fork = ForkedSession(self.snapshot_id, self._array_metadata(), self._read_path.authorized)
        self._forks.add(fork.fork_id)
        return fork

    def merge(self, *forks: ForkedSession) -> None:
        """Add the virtual refs of forks of this session to its changes (each fork once).

        Raises :class:`InvalidInputError` if a fork is not from this session, was merged before,
        or wrote an array whose metadata changed in this session after forking.
        """
        self._check_writable()
        merge_forks(forks, self._changes, self._array_metadata(), unmerged=self._forks)

    # ---- commits --------------------------------------------------------------------------
    def discard_changes(self) -> None:
        """Forget every uncommitted change."""
        self._check_writable()
        self._changes.clear()

    async def commit(
        self, message: str, *, metadata: Mapping[str, Any] | None = None
    ) -> SnapshotId:
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
        CommitOutcomeUnknownError
            The branch-ref write's answer was lost: the commit may have landed. Call ``commit()``
            again: it first checks (:meth:`settle_commit`) and never applies the changes twice.
        """
        self._check_writable()
        if self._branch is None or self._version is None:
            raise ReadOnlyError("only sessions opened on a branch can commit")
        if (landed := await self.settle_commit()) is not None:
            return landed
        if self._changes.is_empty():
            raise NoChangesToCommitError(
                f"nothing to commit on branch '{self._branch}': the session has no changes"
            )
        if not isinstance(message, str):
            raise InvalidInputError(f"commit message must be a string, got {message!r}")
        snapshot_id, self._retry_id = self._retry_id or SnapshotId.generate(), None

        def unknown(snapshot: Snapshot, version: int) -> None:
            self._unsettled = (snapshot, version)

        self._base, self._version = await publish(
            self._repo, self._branch, self._changes, self._base, self._version,
            snapshot_id=snapshot_id, message=message, metadata=metadata or {}, unknown=unknown,
        )  # fmt: skip
        self._changes.clear()
        return snapshot_id

    async def settle_commit(self) -> SnapshotId | None:
        """Settle a commit that raised :class:`CommitOutcomeUnknownError`: its snapshot id if it
        reached the branch (the session then stands on it, its changes committed), else
        ``None`` (the changes are still pending; the next commit reuses the snapshot id).

        ``commit()`` calls this first, so calling ``commit()`` again is enough.
        """
        if self._unsettled is None or self._branch is None:
            return None
        snapshot, version = self._unsettled
        versions = await self._repo.branch_versions_after(self._branch, version - 1)
        self._unsettled = None
        for found in versions:
            if found.snapshot_id == snapshot.id:
                self._base, self._version = snapshot, found.version
                self._changes.clear()
                return snapshot.id
        self._retry_id = snapshot.id
        return None

    async def rebase(self) -> None:
        """Move the session onto its branch's current tip, keeping its changes.

        Raises :class:`ConflictError` if a commit since the session's base overlaps its changes.
        """
        if self._branch is None or self._version is None:
            raise ReadOnlyError("only sessions opened on a branch can rebase")
        log = summarize(self._changes, self._base)
        _, self._base, self._version = await catch_up(
            self._repo, self._branch, self._changes, self._base, self._version, log, None
        )
