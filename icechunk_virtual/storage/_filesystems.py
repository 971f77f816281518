"""One async fsspec filesystem per (event loop, protocol, options), shared process-wide.

fsspec's async filesystems (s3fs, http) hold a client session bound to the loop that created it,
and zarr awaits store methods on its own loop while our sync API uses another; so instances are
kept per loop. Sharing them across storages and the read path means one connection pool per
endpoint rather than one per repository object.
"""

from __future__ import annotations

import asyncio
import json
import threading
import weakref
from typing import Any

import fsspec

__all__ = ["filesystem_for"]

_lock = threading.Lock()
_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)


def filesystem_for(protocol: str, options: dict[str, Any]) -> Any:
    """The filesystem for ``protocol`` + ``options`` on the running loop (async if fsspec has one)."""
    loop = asyncio.get_running_loop()
    key = protocol + json.dumps(options, sort_keys=True, default=repr)
    with _lock:
        per_loop = _by_loop.setdefault(loop, {})
        fs = per_loop.get(key)
        if fs is None:
            cls = fsspec.get_filesystem_class(protocol)
            if getattr(cls, "async_impl", False):
                fs = cls(asynchronous=True, loop=loop, skip_instance_cache=True, **options)
            else:
                fs = cls(skip_instance_cache=True, **options)
            per_loop[key] = fs
        return fs
