"""Object storage through an async fsspec filesystem (S3 and, when explicitly allowed, others)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from icechunk_virtual.errors import ObjectNotFoundError, StorageError
from icechunk_virtual.storage._base import Storage
from icechunk_virtual.storage._filesystems import filesystem_for

__all__ = ["FsspecStorage", "backend_failures"]


def backend_failures() -> tuple[type[BaseException], ...]:
    """What the backends raise when the service fails: ``OSError``, and the client libraries'
    own trees, which do not derive from it (botocore's ``EndpointConnectionError``...). Not
    ``TypeError`` and its kin: a bad option or a bug is not a transient failure.

    Called in ``except`` clauses, so it runs only when something was raised, and looks only at
    libraries already imported (one that is not loaded raised nothing): importing this package
    does not import botocore and aiohttp (~150 ms a process, which a daily job pays)."""
    found: list[type[BaseException]] = [OSError]
    for module, name in (("botocore.exceptions", "BotoCoreError"),
                         ("botocore.exceptions", "ClientError"),
                         ("aiohttp", "ClientError")):  # fmt: skip
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(failure := getattr(loaded, name, None), type):
            found.append(failure)
    return tuple(found)


class FsspecStorage(Storage):
    """Objects under ``protocol://root``, through fsspec's async API.

    With ``atomic_create=True`` (S3), :meth:`put_if_absent` is a conditional PUT
    (``If-None-Match: *``): the server decides the race. With ``atomic_create=False`` it is a
    check-then-write, which is only correct with a single writer; the repository refuses such
    storage unless the caller opts in with ``unsafe_single_writer=True``.

    Filesystems come from :func:`filesystem_for` (one per event loop).
    """

    def __init__(
        self,
        url: str,
        *,
        storage_options: dict[str, Any] | None = None,
        atomic_create: bool,
    ) -> None:
        protocol, _, root = url.partition("://")
        self.url = url.rstrip("/")
        self.protocol = protocol
        self.root = root.rstrip("/")
        self.atomic_create = atomic_create
        self._options = dict(storage_options or {})
        if protocol in ("s3", "s3a"):
            # A stale listing cache would hide a branch version another writer just created.
            self._options.setdefault("use_listings_cache", False)

    def _fs(self) -> Any:
        return filesystem_for(self.protocol, self._options)

    def _full(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _error(self, action: str, key: str, exc: BaseException) -> StorageError:
        return StorageError(f"{self.url}: {action} '{key}' failed: {exc!r}")

    async def get(self, key: str) -> bytes:
        # docstring inherited
        try:
            data: bytes = await self._fs()._cat_file(self._full(key))
            return data
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"{self.url}: no object at '{key}'") from exc
        except backend_failures() as exc:
            raise self._error("reading", key, exc) from exc

    async def get_range(self, key: str, start: int, length: int) -> bytes:
        # docstring inherited
        try:
            data: bytes = await self._fs()._cat_file(
                self._full(key), start=start, end=start + length
            )
            return data
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"{self.url}: no object at '{key}'") from exc
        except backend_failures() as exc:
            raise self._error("reading", key, exc) from exc

    async def put(self, key: str, data: bytes) -> None:
        # docstring inherited
        try:
            await self._fs()._pipe_file(self._full(key), data)
        except backend_failures() as exc:
            raise self._error("writing", key, exc) from exc

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        # docstring inherited
        if not self.atomic_create:
            if await self.exists(key):
                return False
            await self.put(key, data)
            return True
        try:
            await self._fs()._pipe_file(self._full(key), data, mode="create")
            return True
        except FileExistsError:
            return False
        except Exception as exc:
            # The response was lost or garbled (timeout, connection reset, 409 from a concurrent
            # conditional write): the object may or may not have been created, by us or by a rival.
            # The bytes we write are unique to this writer, so reading them back settles it.
            return await self._settle_ambiguous_create(key, data, exc)

    async def _settle_ambiguous_create(self, key: str, data: bytes, exc: Exception) -> bool:
        try:
            found = await self.get(key)
        except ObjectNotFoundError:
            raise self._error("creating", key, exc) from exc
        except Exception as unreadable:  # the read-back failed too: the outcome is unknown
            raise self._error("creating (outcome unknown)", key, unreadable) from exc
        return found == data

    async def list(self, prefix: str) -> list[str]:
        # docstring inherited
        directory = prefix.rpartition("/")[0]
        base = self._full(directory) if directory else self.root
        try:
            found = await self._fs()._find(base)
        except FileNotFoundError:
            return []
        except backend_failures() as exc:
            raise self._error("listing", prefix, exc) from exc
        start = len(self.root) + 1
        keys = [path[start:] for path in found]
        return [k for k in keys if k.startswith(prefix)]

    async def list_modified(self, prefix: str) -> dict[str, datetime]:
        # docstring inherited
        directory = prefix.rpartition("/")[0]
        base = self._full(directory) if directory else self.root
        try:
            found = await self._fs()._find(base, detail=True)
        except FileNotFoundError:
            return {}
        except backend_failures() as exc:
            raise self._error("listing", prefix, exc) from exc
        start = len(self.root) + 1
        out: dict[str, datetime] = {}
        for path, info in found.items():
            key = path[start:]
            if key.startswith(prefix):
                out[key] = _modified_time(info, where=f"{self.url}/{key}")
        return out

    async def delete(self, keys: Iterable[str]) -> None:
        # docstring inherited
        names = list(keys)
        if not names:
            return
        try:
            await self._fs()._rm([self._full(k) for k in names])
        except FileNotFoundError:
            pass
        except backend_failures() as exc:
            raise self._error("deleting", names[0], exc) from exc

    async def exists(self, key: str) -> bool:
        # docstring inherited
        try:
            return bool(await self._fs()._exists(self._full(key)))
        except backend_failures() as exc:
            raise self._error("checking", key, exc) from exc


def _modified_time(info: dict[str, Any], *, where: str) -> datetime:
    """An object's last-modified time from an fsspec ``info`` dict (S3 and file-like keys)."""
    value = info.get("LastModified", info.get("last_modified", info.get("mtime")))
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise StorageError(f"{where}: the storage reports no modification time ({sorted(info)})")
