"""Versioning without zarr: the repository, its sessions, and what a commit does.

``AsyncRepository`` and ``AsyncSession`` are the implementation (and public); the synchronous
``Repository`` / ``Session`` in :mod:`icechunk_virtual.synchronous` run them. A session keeps a
:class:`~.changeset.ChangeSet`, reads chunks through a composed :class:`~.chunk_reads.ChunkReader`,
and commits through :mod:`.commit` (building the snapshot) and :mod:`.conflicts` (rebasing past
rivals); :mod:`.objects` reads stored objects through caches; :mod:`.fork` and :mod:`.diff` are
the picklable fork and snapshot comparison.
"""

from icechunk_virtual.repository.diff import Diff
from icechunk_virtual.repository.fork import ForkedSession
from icechunk_virtual.repository.repository import AsyncRepository
from icechunk_virtual.repository.session import AsyncSession

__all__ = ["AsyncRepository", "AsyncSession", "Diff", "ForkedSession"]
