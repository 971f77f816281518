"""In-process storage for tests and demos: a dict behind a lock, shared by ``memory://`` name."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime

from icechunk_virtual.errors import ObjectNotFoundError
from icechunk_virtual.storage._base import Storage

__all__ = ["MemoryStorage"]

_registry: dict[str, MemoryStorage] = {}
_registry_lock = threading.Lock()


class MemoryStorage(Storage):
    """Objects in a dict; ``put_if_absent`` checks and inserts under one lock, so it is atomic."""

    def __init__(self, name: str) -> None:
        self.url = f"memory://{name}"
        self._objects: dict[str, bytes] = {}
        self._modified: dict[str, datetime] = {}
        self._lock = threading.Lock()

    @classmethod
    def named(cls, name: str) -> MemoryStorage:
        """The storage registered under ``name`` in this process (created on first use)."""
        with _registry_lock:
            if name not in _registry:
                _registry[name] = cls(name)
            return _registry[name]

    async def get(self, key: str) -> bytes:
        # docstring inherited
        return self.get_sync(key)

    def get_sync(self, key: str) -> bytes:
        # docstring inherited
        try:
            return self._objects[key]
        except KeyError:
            raise ObjectNotFoundError(f"{self.url}: no object at '{key}'") from None

    async def get_range(self, key: str, start: int, length: int) -> bytes:
        # docstring inherited
        return (await self.get(key))[start : start + length]

    async def put(self, key: str, data: bytes) -> None:
        # docstring inherited
        with self._lock:
            self._objects[key] = bytes(data)
            self._modified[key] = datetime.now(UTC)

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        # docstring inherited
        with self._lock:
            if key in self._objects:
                return False
            self._objects[key] = bytes(data)
            self._modified[key] = datetime.now(UTC)
            return True

    async def list(self, prefix: str) -> list[str]:
        # docstring inherited
        with self._lock:
            return [k for k in self._objects if k.startswith(prefix)]

    async def list_modified(self, prefix: str) -> dict[str, datetime]:
        # docstring inherited
        with self._lock:
            return {k: t for k, t in self._modified.items() if k.startswith(prefix)}

    async def delete(self, keys: Iterable[str]) -> None:
        # docstring inherited
        with self._lock:
            for key in keys:
                self._objects.pop(key, None)
                self._modified.pop(key, None)

    async def exists(self, key: str) -> bool:
        # docstring inherited
        return key in self._objects
