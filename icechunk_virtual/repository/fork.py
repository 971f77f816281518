"""Forked sessions: pieces of one writable session that other processes fill with virtual refs.

A :class:`ForkedSession` is a small picklable value: the array metadata its parent session sees
and the prefixes virtual sources may come from. A dask worker (or any process) calls
:meth:`ForkedSession.set_virtual_refs` on it — validation included — and sends it back; the parent
merges every fork into its own changes and commits once. Forks never touch storage, so a worker
needs no repository credentials.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from icechunk_virtual.chunk_refs.grid import chunk_grid_shape
from icechunk_virtual.chunk_refs.tables import virtual_refs
from icechunk_virtual.errors import InvalidInputError, NodeNotFoundError
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.io.sources import check_authorized
from icechunk_virtual.repository.changeset import ChangeSet
from icechunk_virtual.repository.nodes import normalize_path

__all__ = ["ForkedSession", "merge_forks"]


@dataclass(slots=True)
class ForkedSession:
    """A picklable fork of a writable session; see :meth:`icechunk_virtual.Session.fork`."""

    base_snapshot_id: SnapshotId
    arrays: Mapping[str, Mapping[str, Any]]
    """Every array's ``zarr.json`` as the parent session saw it when forking, by path."""
    authorized: tuple[str, ...]
    fork_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    refs: dict[str, list[pa.Table]] = field(default_factory=dict)
    """Validated ref tables per array path, in the order they were set."""

    def set_virtual_refs(self, array_path: str, refs: pa.Table | Mapping[str, Any]) -> None:
        """Point chunks of an array at byte ranges of outside files, as
        :meth:`icechunk_virtual.Session.set_virtual_refs` does (without ``inline_below``)."""
        path = normalize_path(array_path)
        zarr_json = self.arrays.get(path)
        if zarr_json is None:
            raise NodeNotFoundError(
                f"no array at '{path}' in the session this fork was made from "
                f"(snapshot {self.base_snapshot_id}); create arrays before forking"
            )
        where = f"array '{path}'"
        ndim = len(zarr_json.get("shape", ()))
        table = virtual_refs(refs, ndim=ndim, grid=chunk_grid_shape(zarr_json), where=where)
        locations = table.column("location").combine_chunks().dictionary
        check_authorized(locations.to_pylist(), self.authorized, where=where)
        self.refs.setdefault(path, []).append(table)

    def check_mergeable(self, arrays: Mapping[str, Mapping[str, Any]]) -> None:
        """Raise unless every array this fork wrote still has the metadata it was forked with."""
        for path in self.refs:
            if arrays.get(path) != self.arrays[path]:
                raise InvalidInputError(
                    f"fork {self.fork_id}: array '{path}' was changed or deleted in the session "
                    "after forking; fork again after changing metadata"
                )

    def __repr__(self) -> str:
        rows = sum(t.num_rows for tables in self.refs.values() for t in tables)
        return f"<ForkedSession {self.fork_id[:8]} of {self.base_snapshot_id}: {rows} refs>"


def merge_forks(
    forks: Sequence[ForkedSession],
    changes: ChangeSet,
    arrays: Mapping[str, Mapping[str, Any]],
    *,
    unmerged: set[str],
) -> None:
    """Add the refs of ``forks`` to ``changes``, all or none.

    ``arrays`` is the parent session's array metadata now and ``unmerged`` the ids of its forks
    not merged yet (each merged fork's id leaves it).
    """
    for fork in forks:
        if fork.fork_id not in unmerged:
            raise InvalidInputError(
                f"{fork!r} was not forked from this session, or was merged already"
            )
        fork.check_mergeable(arrays)
    with changes.lock:
        for fork in forks:
            for path, tables in fork.refs.items():
                array = changes.array(path, len(arrays[path].get("shape", ())))
                for table in tables:
                    array.add_batch(table)
            unmerged.discard(fork.fork_id)
