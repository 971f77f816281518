"""How ingest names sources and nodes: source URLs as refs record them, prefixes, group paths."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["join", "location", "locations", "source_prefix"]


def location(url: str | os.PathLike[str]) -> str:
    """The URL refs record: local paths become absolute ``file://`` URLs."""
    url = os.fspath(url)
    if "://" in url:
        return url
    if url.startswith("/") and "/." not in url and "//" not in url and not url.endswith("/"):
        return "file://" + url  # absolute and normal already (what a glob gives): no syscall
    return "file://" + posixpath.abspath(url)


def locations(urls: Sequence[str | os.PathLike[str]]) -> pa.Array:
    """:func:`location` of every URL, each once, in the order given: vectorised, for the lists
    of a whole archive a daily job passes (what :func:`location` leaves as it is, or only
    prefixes, is done in Arrow; any other path goes through it)."""
    raw = pa.array([os.fspath(u) for u in urls], pa.string())
    remote = pc.match_substring(raw, "://")
    normal = pc.and_not(pc.starts_with(raw, "/"), pc.or_(
        pc.or_(pc.match_substring(raw, "/."), pc.match_substring(raw, "//")),
        pc.ends_with(raw, "/"),
    ))  # fmt: skip
    if len(raw) and not pc.all(pc.or_(remote, normal)).as_py():
        raw, remote = pa.array([location(u) for u in raw.to_pylist()], pa.string()), None
    if remote is not None:
        raw = pc.if_else(remote, raw, pc.binary_join_element_wise("file://", raw, ""))
    return pc.unique(raw)


def source_prefix(url: str) -> str:
    """The directory of a source, authorised as a virtual-source prefix."""
    return location(url).rsplit("/", 1)[0] + "/"


def join(base: str, path: str) -> str:
    """A node path under ``base`` (either may be empty; no leading or doubled slashes)."""
    return "/".join(p for p in (base, path.strip("/")) if p)
