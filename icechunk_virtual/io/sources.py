"""Virtual sources: which URL prefixes may be read, and how a source's identity is recorded.

A source's checksum is a short string: ``etag:<etag>`` where the store has one (S3, most HTTP
servers), else ``mtime:<ns>,size:<bytes>`` (local files). It is recorded with each virtual ref and
compared once per session before the source's bytes are trusted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from icechunk_virtual.errors import (
    InvalidInputError,
    SourceNotFoundError,
    StorageError,
    UnauthorizedSourceError,
)
from icechunk_virtual.io.urls import canonical_prefix, canonical_url, is_under
from icechunk_virtual.storage._filesystems import filesystem_for
from icechunk_virtual.storage._fsspec import backend_failures

__all__ = [
    "check_authorized",
    "checksum_from_info",
    "fetch_checksum",
    "normalize_prefix",
    "options_for",
    "source_protocol",
]


def source_protocol(url: str) -> str:
    return url.partition("://")[0] if "://" in url else "file"


def normalize_prefix(prefix: str) -> str:
    """A source prefix as stored: a canonical URL with a protocol, ending in ``/``
    (:mod:`.urls`), so ``.../data`` never authorises ``.../data-other/``."""
    if not isinstance(prefix, str) or not prefix:
        raise InvalidInputError(f"virtual source prefix must be a non-empty URL, got {prefix!r}")
    if "://" not in prefix:
        raise InvalidInputError(
            f"virtual source prefix {prefix!r} needs a protocol, e.g. 's3://bucket/' or 'file:///data/'"
        )
    return canonical_prefix(prefix)


def options_for(url: str, source_options: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The fsspec options for a source: those of the longest prefix of ``url`` that has some."""
    best = max((p for p in source_options if url.startswith(p)), key=len, default=None)
    return dict(source_options[best]) if best is not None else {}


def check_authorized(urls: Iterable[str], prefixes: Iterable[str], *, where: str) -> None:
    """Raise :class:`UnauthorizedSourceError` for the first URL under none of ``prefixes``,
    comparing canonical forms (:mod:`.urls`): ``..``, ``%2e``, ``//`` and case cannot smuggle a
    URL out of its prefix."""
    allowed = tuple(canonical_prefix(p) for p in prefixes)
    for url in urls:
        try:
            canonical = canonical_url(url)
        except UnauthorizedSourceError as exc:
            raise UnauthorizedSourceError(f"{where}: {exc}") from exc
        if not any(is_under(canonical, p) for p in allowed):
            shown = ", ".join(allowed) if allowed else "none"
            raise UnauthorizedSourceError(
                f"{where}: virtual source {url} is not under an authorised prefix (authorised: "
                f"{shown}); authorise it with repo.authorize_virtual_source(prefix)"
            )


def checksum_from_info(info: Mapping[str, Any]) -> str | None:
    """The checksum string of a source from its fsspec ``info()``; ``None`` if it has no identity."""
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return f"etag:{str(etag).strip('"')}"
    mtime = info.get("mtime", info.get("LastModified", info.get("last_modified")))
    size = info.get("size")
    if mtime is None or size is None:
        return None
    if isinstance(mtime, datetime):
        mtime = mtime.timestamp()
    return f"mtime:{round(float(mtime) * 1e9)},size:{int(size)}"


async def fetch_checksum(url: str, options: Mapping[str, Any], *, where: str) -> str | None:
    """The current checksum of a source, read from its storage."""
    fs = filesystem_for(source_protocol(url), dict(options))
    path = fs._strip_protocol(url)
    try:
        if getattr(fs, "async_impl", False):
            info = await fs._info(path)
        else:
            info = await asyncio.to_thread(fs.info, path)
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"{where}: virtual source {url} does not exist") from exc
    except backend_failures() as exc:
        raise StorageError(f"{where}: could not stat virtual source {url}: {exc}") from exc
    return checksum_from_info(info)
