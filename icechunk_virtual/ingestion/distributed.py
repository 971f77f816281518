"""Ingest on a dask cluster: files scanned on the workers, refs set in forked sessions there.

The client only orders and checks what the workers scanned, creates the arrays, and merges the
forks the workers send back into one commit. dask is imported by the caller (who made the client),
never here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from icechunk_virtual.repository.fork import ForkedSession
from icechunk_virtual.repository.session import AsyncSession
from readers.errors import CorruptFileError
from readers.registry import open_virtual
from readers.types import VirtualDataset

__all__ = ["scan_on_cluster", "set_refs_on_cluster"]


def _scan(url: str, options: Mapping[str, Any]) -> VirtualDataset:
    return open_virtual(url, storage_options=dict(options) or None)


def scan_on_cluster(
    client: Any, urls: Sequence[str], storage_options: Mapping[str, Any] | None
) -> Iterator[VirtualDataset]:
    """Each file's scan, in the order of ``urls``, computed on the client's workers.

    A reader's error on a worker is raised here as the reader raised it.
    """
    options = dict(storage_options or {})
    futures = client.map(_scan, list(urls), options=options, pure=False)
    try:
        for url, future in zip(urls, futures, strict=True):
            try:
                yield future.result()
            except Exception as exc:
                if type(exc).__name__ != "KilledWorker":  # dask's, not imported here
                    raise
                raise CorruptFileError(
                    url, None, "the format library crashed reading this file (its worker died)"
                ) from exc
    finally:
        client.cancel(futures)


def _fill(fork: ForkedSession, pending: Sequence[tuple[str, Mapping[str, Any]]]) -> ForkedSession:
    for path, refs in pending:
        fork.set_virtual_refs(path, refs)
    return fork


def set_refs_on_cluster(
    client: Any, session: AsyncSession, pending: Sequence[tuple[str, Mapping[str, Any]]]
) -> None:
    """Set the pending refs in forks of ``session`` on the workers and merge them back."""
    if not pending:
        return
    parts = max(1, min(len(pending), len(client.nthreads())))
    batches = [list(pending[i::parts]) for i in range(parts)]
    forks = [session.fork() for _ in batches]
    futures = client.map(_fill, forks, batches, pure=False)
    session.merge(*client.gather(futures))
