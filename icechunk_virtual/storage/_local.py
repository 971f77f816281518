"""Local-disk storage with a real atomic create (temp file + ``os.link``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from icechunk_virtual.errors import ObjectNotFoundError, StorageError
from icechunk_virtual.storage._base import Storage

__all__ = ["LocalStorage"]


class LocalStorage(Storage):
    """Objects are files under a root directory.

    ``put`` writes a temporary file in the target's directory and renames it over the target
    (``os.replace`` is atomic on POSIX). ``put_if_absent`` writes a temporary file and hard-links it
    to the target: ``os.link`` fails with ``FileExistsError`` if the target exists, so of two
    writers exactly one wins, and the winner's file is complete when it becomes visible (unlike
    ``O_CREAT|O_EXCL`` followed by writes, where a reader could see a partial file).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    async def get(self, key: str) -> bytes:
        # docstring inherited
        return self.get_sync(key)

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
        try:
            with open(self._path(key), "rb") as f:
                f.seek(start)
                return f.read(length)
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
        try:
            tmp = self._write_temp(key, data, durable=False)
            os.replace(tmp, self._path(key))
        except OSError as exc:
            raise StorageError(f"{self.url}: writing '{key}' failed: {exc}") from exc

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        # docstring inherited
        # Refs and config are the only objects created this way; they are tiny, so making them
        # durable before they become visible costs little.
        try:
            tmp = self._write_temp(key, data, durable=True)
        except OSError as exc:
            raise StorageError(f"{self.url}: writing '{key}' failed: {exc}") from exc
        try:
            os.link(tmp, self._path(key))
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            raise StorageError(f"{self.url}: creating '{key}' failed: {exc}") from exc
        finally:
            os.unlink(tmp)

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
        return [k for k in self._walk(prefix) if not k.rpartition("/")[2].startswith(".tmp-")]

    async def list_modified(self, prefix: str) -> dict[str, datetime]:
        # docstring inherited
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
        for key in keys:
            try:
                self._path(key).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise StorageError(f"{self.url}: deleting '{key}' failed: {exc}") from exc

    async def exists(self, key: str) -> bool:
        # docstring inherited
        return self._path(key).is_file()
