"""The storage contract: immutable objects plus one atomic primitive, ``put_if_absent``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Storage", "StorageAddress"]


@dataclass(frozen=True)
class StorageAddress:
    """What :func:`~icechunk_virtual.storage.open_storage` was given: enough to open the same
    storage again in another process (a read-only session's pickle carries it)."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    unsafe_single_writer: bool = False


class Storage(ABC):
    """Object storage under one root URL, addressed by ``/``-separated keys.

    Every method is a coroutine. Implementations must make :meth:`put_if_absent` atomic: of two
    concurrent calls for one key, exactly one returns ``True``. That single guarantee is what makes
    commits by uncoordinated writers safe.
    """

    url: str
    """The root URL, as the user gave it (normalised)."""

    address: StorageAddress | None = None
    """How :func:`~icechunk_virtual.storage.open_storage` opened it (``None`` if built directly)."""

    @abstractmethod
    async def get(self, key: str) -> bytes:
        """The object's bytes.

        Raises
        ------
        ObjectNotFoundError
            No object at ``key``.
        StorageError
            The backend failed.
        """

    def get_sync(self, key: str) -> bytes | None:
        """The object's bytes read in the calling thread, or ``None`` if this backend cannot
        (remote stores need their event loop). Raises as :meth:`get` does."""
        return None

    @abstractmethod
    async def get_range(self, key: str, start: int, length: int) -> bytes:
        """``length`` bytes of the object from byte ``start``."""

    @abstractmethod
    async def put(self, key: str, data: bytes) -> None:
        """Write (or replace) the object; readers see the old or the new bytes, never a mix."""

    @abstractmethod
    async def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create the object only if no object exists at ``key``; ``True`` if this call created it."""

    @abstractmethod
    async def list(self, prefix: str) -> list[str]:
        """Keys (relative to the root) that start with ``prefix``, in no particular order."""

    @abstractmethod
    async def list_modified(self, prefix: str) -> dict[str, datetime]:
        """Like :meth:`list`, with each object's last-modified time (UTC).

        Also lists the leftovers of interrupted writes (e.g. a local temporary file), which
        garbage collection removes once they are old enough; :meth:`list` never shows them.
        """

    @abstractmethod
    async def delete(self, keys: Iterable[str]) -> None:
        """Delete the objects; missing ones are ignored."""

    @abstractmethod
    async def exists(self, key: str) -> bool:
        """Whether an object exists at ``key``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.url}')"
