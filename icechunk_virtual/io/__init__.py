"""Bytes in: the read path ((url, offset, length) -> bytes for virtual, native and inline chunks),
range coalescing, and virtual sources (authorisation, checksums, per-prefix options).

Knows storage and chunk refs, never sessions: the repository composes it.
"""

from icechunk_virtual.io.read_path import ReadPath

__all__ = ["ReadPath"]
