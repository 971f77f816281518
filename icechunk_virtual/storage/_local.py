"""Local-disk storage with a real atomic create (temp file + ``os.link``), durable before publish.

Every blocking file operation runs in a worker thread (``asyncio.to_thread``), never on the event
loop; ``get_sync`` is the calling-thread path zarr's decode threads use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from icechunk_virtual.errors import ObjectNotFoundError, StorageError
from icechunk_virtual.storage._base import Storage

__all__ = ["LocalStorage"]

_SYNC_THREADS = 16


class LocalStorage(Storage):
    """Objects are files under a root directory.

    ``put`` writes a temporary file in the target's directory and renames it over the target
    (``os.replace`` is atomic on POSIX). ``put_if_absent`` writes a temporary file and hard-links it
    to the target: ``os.link`` fails with ``FileExistsError`` if the target exists, so of two
    writers exactly one wins, and the winner's file is complete when it becomes visible (unlike
    ``O_CREAT|O_EXCL`` followed by writes, where a reader could see a partial file).

    Durability: an object is only reachable once a ref (created by ``put_if_absent``) names it, so
    ``put`` leaves its file and directory to be synced, and ``put_if_absent`` first fsyncs every
    file this storage wrote since and their directories, then its own file, links it, and fsyncs
    the ref's directory: after a crash, a ref that survived names objects that survived. (One
    fsync per object at publish time, not at every chunk write: a commit of many native chunks
    pays them once, together.)
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.url = str(self.root)
        self._unsynced: set[Path] = set()
        """Files ``put`` wrote (and their directories) that no ``put_if_absent`` synced yet."""
        self._unsynced_lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.root / key

    async def get(self, key: str) -> bytes:
        # docstring inherited
        return await asyncio.to_thread(self.get_sync, key)

    def get_sync(self, key: str) -> bytes:
        # docstring inherited
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"{self.url}: no object at '{key}'") from exc
        except OSError as exc:
            raise StorageError(f"{self.url}: reading '{key}' failed: {exc}") from exc

    async def get_range(self, key: str, start: int, length: int) -> bytes:
        # docstring inherited
        return await asyncio.to_thread(self._get_range, key, start, length)

    def _get_range(self, key: str, start: int, length: int) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                return os.pread(f.fileno(), length, start)
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"{self.url}: no object at '{key}'") from exc
        except OSError as exc:
            raise StorageError(f"{self.url}: reading '{key}' failed: {exc}") from exc

    def _write_temp(self, key: str, data: bytes, *, durable: bool) -> Path:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.name)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
        except BaseException:
            os.unlink(tmp)
            raise
        return Path(tmp)

    async def put(self, key: str, data: bytes) -> None:
        # docstring inherited
        await asyncio.to_thread(self._put, key, data)

    def _put(self, key: str, data: bytes) -> None:
        target = self._path(key)
        # Replacing an object readers may already reach (expiry relinking a kept snapshot) must
        # not wait for the next publish: it is made durable now, name and all.
        replacing = target.exists()
        try:
            tmp = self._write_temp(key, data, durable=replacing)
            os.replace(tmp, target)
            if replacing:
                _fsync_path(target.parent)
        except OSError as exc:
            raise StorageError(f"{self.url}: writing '{key}' failed: {exc}") from exc
        if not replacing:
            with self._unsynced_lock:
                self._unsynced.update((target, target.parent))

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        # docstring inherited
        return await asyncio.to_thread(self._put_if_absent, key, data)

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        target = self._path(key)
        try:
            self._sync_written()
            tmp = self._write_temp(key, data, durable=True)
        except OSError as exc:
            raise StorageError(f"{self.url}: writing '{key}' failed: {exc}") from exc
        try:
            os.link(tmp, target)
            _fsync_path(target.parent)  # the new name itself survives a crash
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            raise StorageError(f"{self.url}: creating '{key}' failed: {exc}") from exc
        finally:
            os.unlink(tmp)

    def _sync_written(self) -> None:
        """fsync every file ``put`` wrote since the last call, then their directories, each
        group at once in threads (fsync releases the GIL, and the filesystem commits its journal
        once for many): a commit's dozen objects cost about one fsync, not a dozen."""
        with self._unsynced_lock:
            paths, self._unsynced = self._unsynced, set()
        files = [p for p in paths if not p.is_dir()]
        directories = [p for p in paths if p.is_dir()]
        for group in (files, directories):
            if len(group) > 1:
                with ThreadPoolExecutor(min(len(group), _SYNC_THREADS)) as pool:
                    list(pool.map(_fsync_if_present, group))
            elif group:
                _fsync_if_present(group[0])

    def _walk(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, temporary files of interrupted writes included."""
        directory = prefix.rpartition("/")[0]
        base = self._path(directory) if directory else self.root
        if not base.is_dir():
            return []
        keys: list[str] = []
        for dirpath, _dirnames, filenames in os.walk(base):
            rel = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
            rel = "" if rel == "." else rel + "/"
            keys.extend(rel + name for name in filenames if (rel + name).startswith(prefix))
        return keys

    async def list(self, prefix: str) -> list[str]:
        # docstring inherited
        keys = await asyncio.to_thread(self._walk, prefix)
        return [k for k in keys if not k.rpartition("/")[2].startswith(".tmp-")]

    async def list_modified(self, prefix: str) -> dict[str, datetime]:
        # docstring inherited
        return await asyncio.to_thread(self._list_modified, prefix)

    def _list_modified(self, prefix: str) -> dict[str, datetime]:
        found: dict[str, datetime] = {}
        for key in self._walk(prefix):
            try:
                mtime = self._path(key).stat().st_mtime
            except FileNotFoundError:  # deleted since the walk
                continue
            found[key] = datetime.fromtimestamp(mtime, UTC)
        return found

    async def delete(self, keys: Iterable[str]) -> None:
        # docstring inherited
        await asyncio.to_thread(self._delete, tuple(keys))

    def _delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            try:
                self._path(key).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StorageError(f"{self.url}: deleting '{key}' failed: {exc}") from exc

    async def exists(self, key: str) -> bool:
        # docstring inherited
        return await asyncio.to_thread(self._path(key).is_file)


def _fsync_if_present(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):  # deleted since (garbage collection)
        _fsync_path(path)


def _fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory's entries: the names in it)."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
