"""Run the async core from synchronous code on one background IO loop.

The public ``Repository``/``Session`` classes are thin synchronous wrappers: each method hands its
coroutine to :func:`sync`, which runs it on a single daemon thread's event loop. Calling ``sync``
from inside that loop would deadlock, so it refuses instead. Coroutines may also run on other loops
(zarr calls the store's async methods on its own loop); the storage layer keeps per-loop clients
for that reason.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any

__all__ = ["get_loop", "sync"]

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None


def get_loop() -> asyncio.AbstractEventLoop:
    """The IO loop, started on first use (and again after ``fork``)."""
    global _loop, _loop_pid
    with _lock:
        if _loop is None or _loop_pid != os.getpid():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="icechunk_virtual-io", daemon=True
            )
            thread.start()
            _loop, _loop_pid = loop, os.getpid()
        return _loop


def sync[T](coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the IO loop and return its result (or raise its exception)."""
    loop = get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError(
            "icechunk_virtual: a synchronous method was called from inside the IO loop; "
            "use the Async* classes from async code"
        )
    return asyncio.run_coroutine_threadsafe(coro, loop).result()
