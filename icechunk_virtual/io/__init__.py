"""The bytes of chunks and sources: the read path, range coalescing, virtual sources.

The read path turns a chunk ref into bytes for virtual, native and inline chunks ((url, offset,
length) -> bytes); sources are authorised, checksummed and given per-prefix options. Knows
storage and chunk refs, never sessions: the repository composes it.
"""

from icechunk_virtual.io.read_path import ReadPath

__all__ = ["ReadPath"]
