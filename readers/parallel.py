"""Scan many files at once, in worker processes.

h5py serialises every HDF5 call of a process behind one lock, and keeps it while HDF5 reads
through a Python file object, so threads neither scan nor fetch in parallel: processes do. The
pool is started once per process (with the ``forkserver`` method: forking a process that runs
threads is unsafe) and reused by later calls, so scheduled jobs that scan again pay the start-up
once.

Scanning in worker processes also protects the caller: the format libraries are C code, and a
damaged file can crash them (ecCodes has segfaulted on fuzzed GRIB headers). A crashed worker breaks
the pool; the files not yet scanned are then scanned again one at a time, each in a process of its
own, and the one that crashes its process is reported as a :class:`CorruptFileError`.

A job of a few files (a daily append scans one) is scanned in the calling process instead when
no pool is running yet: starting the pool costs ~0.5-0.8 s, a hundred times the scan of a small
file. That job gives up the crash protection (a format library crashing on a damaged file ends
the caller's process; an ingest then commits nothing); ``workers=`` chooses explicitly.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

from readers.errors import CorruptFileError
from readers.registry import open_virtual
from readers.types import VirtualDataset

__all__ = ["IN_PROCESS_AT_MOST", "default_workers", "scan_many"]

IN_PROCESS_AT_MOST = 2
"""Jobs of at most this many files are scanned in the calling process when no pool is running."""

_PRELOAD = ["readers.registry", "readers.hdf5", "readers.netcdf3", "readers.grib"]
_pool: ProcessPoolExecutor | None = None
_pool_workers = 0
_pool_lock = threading.Lock()
_main_lock = threading.Lock()


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
    time in worker processes (default: one per CPU; ``0``: in this process, which is also the
    default for :data:`IN_PROCESS_AT_MOST` files while no pool runs). The first reader error is
    raised as it is; a file that crashes its worker process raises :class:`CorruptFileError`."""
    if workers is None and len(urls) <= IN_PROCESS_AT_MOST and _pool is None:
        workers = 0
    if workers == 0:
        options = dict(storage_options or {})
        yield from (_scan(url, options) for url in urls)
        return
    workers = workers or default_workers()
    yield from _scan_in_pool(urls, dict(storage_options or {}), workers, retries=1)


def _scan_in_pool(
    urls: Sequence[str], options: dict[str, Any], workers: int, *, retries: int
) -> Iterator[VirtualDataset]:
    """Scan ``urls`` in the shared pool. After a worker dies, the rest are tried again in a new
    pool ``retries`` times (the death may have been an outside kill), then one file per process
    to find the culprit."""
    pool = _shared_pool(workers)
    chunksize = max(1, len(urls) // (workers * 4))
    done = 0
    try:
        with _main_module_hidden():  # workers start while tasks are submitted
            results = pool.map(_scan, urls, [options] * len(urls), chunksize=chunksize)
        for scanned in results:
            yield scanned
            done += 1
    except BrokenProcessPool:
        _discard_pool(pool)
        rest = urls[done:]
        if retries > 0:
            yield from _scan_in_pool(rest, options, workers, retries=retries - 1)
        else:
            for url in rest:
                yield scan_alone(url, options)


def scan_alone(
    url: str, options: dict[str, Any], scan: Callable[[str, dict[str, Any]], Any] | None = None
) -> VirtualDataset:
    """Scan one file in a process of its own: a crash there is the file's fault."""
    with ProcessPoolExecutor(max_workers=1, mp_context=_context()) as alone:
        try:
            with _main_module_hidden():
                future = alone.submit(scan or _scan, url, options)
            return future.result()  # type: ignore[no-any-return]
        except BrokenProcessPool:
            raise CorruptFileError(
                url, None, "the format library crashed reading this file (its process died)"
            ) from None


def _scan(url: str, options: dict[str, Any]) -> VirtualDataset:
    return open_virtual(url, storage_options=options)


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start worker processes without re-running the caller's script in them.

    A new ``forkserver``/``spawn`` process imports the parent's ``__main__`` script (as
    ``__mp_main__``) unless it has no file; a script calling ``ingest`` at top level, without an
    ``if __name__ == "__main__":`` guard, would then run again in every worker. The workers run
    only ``readers`` code, so they need nothing from ``__main__``: hide its file while they start.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None:
        yield
        return
    with _main_lock:
        del main.__file__
        try:
            yield
        finally:
            main.__file__ = path


def _context() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def _shared_pool(workers: int) -> ProcessPoolExecutor:
    global _pool, _pool_workers
    with _pool_lock:
        if _pool is None or _pool_workers != workers:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            _pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context())
            _pool_workers = workers
        return _pool


def _discard_pool(broken: ProcessPoolExecutor) -> None:
    """Forget a broken pool (the next call starts a new one)."""
    global _pool
    with _pool_lock:
        if _pool is broken:
            _pool = None
    broken.shutdown(wait=False, cancel_futures=True)


@atexit.register
def _shutdown() -> None:
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
