"""How ingest names sources and nodes: source URLs as refs record them, prefixes, group paths."""

from __future__ import annotations

import os
import posixpath

__all__ = ["join", "location", "source_prefix"]


def location(url: str | os.PathLike[str]) -> str:
    """The URL refs record: local paths become absolute ``file://`` URLs."""
    url = os.fspath(url)
    if "://" in url:
        return url
    if url.startswith("/") and "/." not in url and "//" not in url and not url.endswith("/"):
        return "file://" + url  # absolute and normal already (what a glob gives): no syscall
    return "file://" + posixpath.abspath(url)


def source_prefix(url: str) -> str:
    """The directory of a source, authorised as a virtual-source prefix."""
    return location(url).rsplit("/", 1)[0] + "/"


def join(base: str, path: str) -> str:
    """A node path under ``base`` (either may be empty; no leading or doubled slashes)."""
    return "/".join(p for p in (base, path.strip("/")) if p)
