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
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

__all__ = ["docs_from", "get_loop", "sync", "sync_iter"]

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


def sync_iter[T](iterator: AsyncIterator[T]) -> Iterator[T]:
    """Iterate an async iterator from synchronous code, one :func:`sync` per item (lazily)."""
    try:
        while True:
            try:
                yield sync(anext(iterator))  # type: ignore[arg-type]  # anext gives an awaitable
            except StopAsyncIteration:
                return
    finally:  # the caller stopped early: let the async generator run its own cleanup
        close = getattr(iterator, "aclose", None)
        if close is not None:
            sync(close())


def docs_from[F: Callable[..., Any]](implementation: Callable[..., Any]) -> Callable[[F], F]:
    """Give a synchronous veneer method the documentation of the async method it runs.

    The documentation is written once, on the implementation; ``help(Session.commit)`` and
    Sphinx show it on the sync twin too. (Copying ``__doc__`` alone, not ``functools.wraps``: the
    sync method keeps its own signature and return type, which type checkers see as written.)
    """

    def give(method: F) -> F:
        method.__doc__ = implementation.__doc__
        method.__implementation__ = implementation  # type: ignore[attr-defined]  # for tests
        return method

    return give
