"""Many sources' checksums in few requests: what a daily ingest pays to check its whole list.

A scheduled job passes every file of the archive, every day. Checking each one alone costs one
``stat`` locally (cheap, but through fsspec and a thread hop each it was ~0.2 ms a file) and one
``HEAD`` on object storage (36,500 round trips). So:

- local files are ``os.stat``-ed in one worker thread, one system call each;
- on object stores whose listings carry each object's identity (S3, GCS, Azure), a directory
  holding at least :data:`LIST_AT` of the sources is listed once (one request per 1,000 objects)
  and every listed source takes its checksum from the listing;
- anything else (HTTP, or a source the listing does not show) is asked alone, at most
  :data:`CONCURRENCY` at a time.

Each checksum equals what :func:`~icechunk_virtual.io.sources.fetch_checksum` returns for the
same source, so the ledger and the read path agree whichever way it was taken.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from icechunk_virtual.errors import SourceNotFoundError, StorageError
from icechunk_virtual.io.sources import checksum_from_info, fetch_checksum, source_protocol
from icechunk_virtual.storage._filesystems import filesystem_for
from icechunk_virtual.storage._fsspec import backend_failures

__all__ = ["CONCURRENCY", "LIST_AT", "fetch_checksums"]

CONCURRENCY = 32
"""Sources asked alone at once."""
LIST_AT = 8
"""Sources of one object-store directory from which listing it beats asking each one."""
_LISTABLE = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})


async def fetch_checksums(urls: Sequence[str], options: Mapping[str, Any]) -> list[str | None]:
    """The current checksum of every source (absolute URLs), in order.

    Raises
    ------
    SourceNotFoundError
        A source does not exist (the first one, by name).
    StorageError
        Its storage failed.
    """
    found: dict[str, str | None] = {}
    local = [u for u in urls if source_protocol(u) == "file"]
    if local:
        found.update(await asyncio.to_thread(_stat_all, local))
    remote = [u for u in urls if source_protocol(u) != "file"]
    found.update(await _listed(remote, options))
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(url: str) -> None:
        async with limit:
            found[url] = await fetch_checksum(url, options, where=url)

    asked = [u for u in dict.fromkeys(remote) if u not in found]
    outcomes = await asyncio.gather(*(one(u) for u in asked), return_exceptions=True)
    for outcome in outcomes:  # the first failure in the list's order, whichever ended first
        if isinstance(outcome, BaseException):
            raise outcome
    return [found[u] for u in urls]


def _stat_all(urls: Sequence[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for url in urls:
        path = url[len("file://") :] if url.startswith("file://") else url
        try:
            stat = os.stat(path)
        except FileNotFoundError as exc:
            raise SourceNotFoundError(f"{url}: virtual source {url} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"{url}: could not stat virtual source {url}: {exc}") from exc
        # the float fsspec's LocalFileSystem.info reports, as fetch_checksum and the read path
        found[url] = checksum_from_info({"mtime": stat.st_mtime, "size": stat.st_size})
    return found


async def _listed(urls: Sequence[str], options: Mapping[str, Any]) -> dict[str, str | None]:
    """The checksums an object-store listing gives, for directories holding many sources."""
    by_directory: defaultdict[str, list[str]] = defaultdict(list)
    for url in urls:
        if source_protocol(url) in _LISTABLE:
            by_directory[posixpath.dirname(url)].append(url)
    found: dict[str, str | None] = {}
    for directory, members in by_directory.items():
        if len(members) < LIST_AT:
            continue
        fs = filesystem_for(source_protocol(directory), dict(options))
        try:
            entries = await fs._ls(fs._strip_protocol(directory), detail=True, refresh=True)
        except FileNotFoundError:
            continue  # each source is then asked alone, and named if missing
        except backend_failures() as exc:
            raise StorageError(f"could not list virtual sources under {directory}/: {exc}") from exc
        listed = {posixpath.basename(str(e.get("name", "")).rstrip("/")): e for e in entries}
        for url in members:
            entry = listed.get(posixpath.basename(url))
            checksum = checksum_from_info(entry) if entry is not None else None
            if checksum is not None:
                found[url] = checksum
    return found
