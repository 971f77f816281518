"""Local storage: every object is fsynced before the ref that names it is published, the ref's
directory after it, and no file operation runs on the event loop."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr

import icechunk_virtual as iv
from icechunk_virtual.storage import LocalStorage


def _path_of(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def _objects(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")}


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name descriptors")
def test_objects_are_durable_before_the_ref_that_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = (tmp_path / "repo").resolve()
    repo = iv.Repository.create(str(root))
    session = repo.writable_session()
    array = zarr.create_array(session.store, name="a", shape=(4, 100), chunks=(1, 100),
                              dtype="f8", compressors=None)  # fmt: skip
    before = _objects(root)
    events: list[tuple[str, str]] = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd: int) -> None:
        events.append(("fsync", _path_of(fd)))
        real_fsync(fd)

    def link(src: str, dst: str, *args: object, **kwargs: object) -> None:
        events.append(("link", str(dst)))
        real_link(src, dst, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    array[:] = np.arange(400.0).reshape(4, 100)  # 800-byte chunks: native, in chunks/
    session.commit("durable")
    new = {p for p in _objects(root) - before if "/refs/" not in p}
    kinds = {Path(p).relative_to(root).parts[0] for p in new}
    assert kinds == {"chunks", "manifests", "snapshots", "transactions"}
    published = next(i for i, (kind, path) in enumerate(events)
                     if kind == "link" and "/refs/branch.main/" in path)  # fmt: skip
    synced_before = {path for kind, path in events[:published] if kind == "fsync"}
    assert new <= synced_before, sorted(new - synced_before)
    assert {str(Path(p).parent) for p in new} <= synced_before  # their names too
    ref_dir = str(Path(events[published][1]).parent)
    assert ("fsync", ref_dir) in events[published + 1 :]


def test_file_io_runs_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = LocalStorage(tmp_path / "s")
    threads: list[threading.Thread] = []
    real_replace, real_walk, real_fdopen = os.replace, os.walk, os.fdopen

    def record(real):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            threads.append(threading.current_thread())
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(os, "replace", record(real_replace))
    monkeypatch.setattr(os, "walk", record(real_walk))
    monkeypatch.setattr(os, "fdopen", record(real_fdopen))

    async def work() -> threading.Thread:
        await storage.put("a/b", b"1")
        assert await storage.put_if_absent("a/c", b"2")
        assert await storage.get("a/b") == b"1"
        assert await storage.get_range("a/b", 0, 1) == b"1"
        assert sorted(await storage.list("a/")) == ["a/b", "a/c"]
        assert set(await storage.list_modified("a/")) == {"a/b", "a/c"}
        assert await storage.exists("a/c")
        await storage.delete(["a/b"])
        return threading.current_thread()

    loop_thread = asyncio.run(work())
    assert threads, "the file operations were seen"
    assert loop_thread not in threads


def test_replacing_an_object_is_durable_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path / "s")
    asyncio.run(storage.put("snapshots/x", b"old"))
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    asyncio.run(storage.put("snapshots/x", b"relinked"))  # what expiry does to a kept snapshot
    assert str((tmp_path / "s" / "snapshots").resolve()) in synced  # the new name is durable
    assert len(synced) == 2  # and the new bytes, before the rename
    assert (tmp_path / "s" / "snapshots" / "x").read_bytes() == b"relinked"
