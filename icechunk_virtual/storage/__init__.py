"""Object storage for repositories: local disk, memory and S3, each with a real atomic create.

:func:`open_storage` picks the backend from the URL and refuses backends whose create is not atomic
(fsspec's generic ``mode="create"`` checks then writes, which two writers can both pass).
"""

from __future__ import annotations

from typing import Any

from icechunk_virtual.errors import InvalidInputError, UnsafeStorageError
from icechunk_virtual.storage._base import Storage, StorageAddress
from icechunk_virtual.storage._fsspec import FsspecStorage
from icechunk_virtual.storage._local import LocalStorage
from icechunk_virtual.storage._memory import MemoryStorage

__all__ = [
    "FsspecStorage",
    "LocalStorage",
    "MemoryStorage",
    "Storage",
    "StorageAddress",
    "open_storage",
]

_ATOMIC_FSSPEC_PROTOCOLS = ("s3", "s3a")


def open_storage(
    url: str,
    *,
    storage_options: dict[str, Any] | None = None,
    unsafe_single_writer: bool = False,
) -> Storage:
    """The storage backend for ``url``.

    Parameters
    ----------
    url
        A local path, ``file://path``, ``memory://name`` or ``s3://bucket/prefix``. Other fsspec
        protocols need ``unsafe_single_writer=True``.
    storage_options
        fsspec options (credentials, endpoint); used, never stored.
    unsafe_single_writer
        Accept a backend without atomic create. Only safe if one process ever writes.

    Raises
    ------
    UnsafeStorageError
        The backend cannot create objects atomically and ``unsafe_single_writer`` is false.
    """
    storage = _backend(url, storage_options, unsafe_single_writer)
    storage.address = StorageAddress(url, dict(storage_options or {}), unsafe_single_writer)
    return storage


def _backend(
    url: str, storage_options: dict[str, Any] | None, unsafe_single_writer: bool
) -> Storage:
    if not isinstance(url, str) or not url:
        raise InvalidInputError(f"repository url must be a non-empty string, got {url!r}")
    protocol, sep, rest = url.partition("://")
    if not sep:
        return LocalStorage(url)
    if protocol in ("file", "local"):
        return LocalStorage(rest)
    if protocol == "memory":
        return MemoryStorage.named(rest.strip("/"))
    if protocol in _ATOMIC_FSSPEC_PROTOCOLS:
        return FsspecStorage(url, storage_options=storage_options, atomic_create=True)
    if unsafe_single_writer:
        return FsspecStorage(url, storage_options=storage_options, atomic_create=False)
    raise UnsafeStorageError(
        f"{url}: '{protocol}://' storage has no atomic create (put-if-absent), so two writers "
        "could both commit and one would be lost; use a local path, memory:// or s3://, or pass "
        "unsafe_single_writer=True if only one process will ever write"
    )
