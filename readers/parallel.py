"""Scan many files at once, in worker processes.

h5py serialises every HDF5 call of a process behind one lock, and keeps it while HDF5 reads
through a Python file object, so threads neither scan nor fetch in parallel: processes do. The
pool is started once per process (with the ``forkserver`` method: forking a process that runs
threads is unsafe) and reused by later calls, so scheduled jobs that scan again pay the start-up
once. Short lists are scanned in the calling process, where the pool would cost more than it saves.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from readers.registry import open_virtual
from readers.types import VirtualDataset

__all__ = ["default_workers", "scan_many"]

_MIN_FILES_PER_WORKER = 2
_pool: ProcessPoolExecutor | None = None
_pool_workers = 0
_pool_lock = threading.Lock()


def default_workers() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def scan_many(
    urls: Sequence[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    workers: int | None = None,
) -> Iterator[VirtualDataset]:
    """Each file's :class:`VirtualDataset`, in the order of ``urls``, scanned ``workers`` at a
    time (default: one per CPU). The first reader error is raised as it is."""
    workers = workers or default_workers()
    options = dict(storage_options or {})
    if workers < 2 or len(urls) < _MIN_FILES_PER_WORKER * 2:
        for url in urls:
            yield open_virtual(url, storage_options=options)
        return
    pool = _shared_pool(workers)
    chunksize = max(1, len(urls) // (workers * 4))
    yield from pool.map(_scan, urls, [options] * len(urls), chunksize=chunksize)


def _scan(url: str, options: dict[str, Any]) -> VirtualDataset:
    return open_virtual(url, storage_options=options)


def _shared_pool(workers: int) -> ProcessPoolExecutor:
    global _pool, _pool_workers
    with _pool_lock:
        if _pool is None or _pool_workers != workers:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(
                ["readers.registry", "readers.hdf5", "readers.netcdf3", "readers.grib"]
            )
            _pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
            _pool_workers = workers
        return _pool


@atexit.register
def _shutdown() -> None:
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
