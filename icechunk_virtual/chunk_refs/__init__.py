"""Chunk-ref tables in memory (Arrow): build, validate, merge, split and look up, and the cache of
manifests loaded from storage. No I/O of its own but the cache's reads through ``storage``.

:mod:`.tables` holds the table operations (vectorised; no per-chunk Python), :mod:`.user_refs`
reads the columns of a user's refs in each form they may take, and :mod:`.cache` is the bounded
cache of loaded manifests and row groups.
"""

from icechunk_virtual.chunk_refs.cache import ManifestCache
from icechunk_virtual.chunk_refs.tables import ChunkRef, IndexedRefs

__all__ = ["ChunkRef", "IndexedRefs", "ManifestCache"]
