"""Local storage details a mutation run (mutmut) showed no other test pinned down.

Which files and directories are fsynced, and when: a new object is left for the next
``put_if_absent`` (which syncs it, and its directory, before creating the ref; once), a replaced
object is synced at once; the errors (their type, and the message naming the key); temporary
files (never listed, never left behind, but visible to ``list_modified`` so garbage collection
removes those of interrupted writes); prefix listing. The oracle is the file system itself
(``pathlib``, ``os.stat``) and the descriptors ``os.fsync`` was handed (``/proc/self/fd``).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from icechunk_virtual.errors import ObjectNotFoundError, StorageError
from icechunk_virtual.storage import LocalStorage

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="needs /proc to name descriptors"
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return (tmp_path / "s").resolve()


@pytest.fixture
def storage(root: Path) -> LocalStorage:
    return LocalStorage(root)


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths ``os.fsync`` is called on, in order."""
    paths: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        paths.append(path)
        if not Path(path).name.startswith(".tmp-"):  # (a temporary file: through its writer)
            # opened to be synced for reading only: no write access needed to what it syncs
            assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    yield paths


def run[T](coroutine: asyncio.Future[T] | object) -> T:
    return asyncio.run(coroutine)  # type: ignore[arg-type,no-any-return]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_new_objects_are_synced_once_by_the_next_create(
    storage: LocalStorage, root: Path, synced: list[str]
) -> None:
    run(storage.put("a/x", b"1"))
    run(storage.put("b/c/y", b"2"))
    assert synced == []  # a new object waits for the ref that will name it
    assert run(storage.put_if_absent("refs/r", b"ref"))
    ref_temp = [p for p in synced if Path(p).name.startswith(".tmp-")]
    assert len(ref_temp) == 1 and Path(ref_temp[0]).parent == root / "refs"
    files_and_dirs = {str(root / "a/x"), str(root / "a"), str(root / "b/c/y"), str(root / "b/c")}
    before_ref = synced[: synced.index(ref_temp[0])]
    assert set(before_ref) == files_and_dirs and len(before_ref) == 4
    assert before_ref.index(str(root / "a/x")) < before_ref.index(str(root / "a"))
    assert synced[-1] == str(root / "refs")  # the ref's name, after the link
    synced.clear()
    assert run(storage.put_if_absent("refs/s", b"ref"))  # nothing left to sync but its own
    assert len(synced) == 2 and synced[-1] == str(root / "refs")


def test_an_object_deleted_before_the_create_does_not_stop_the_others_syncing(
    storage: LocalStorage, root: Path, synced: list[str]
) -> None:
    run(storage.put("a/1", b"1"))
    run(storage.put("a/2", b"2"))
    run(storage.put("a/3", b"3"))
    run(storage.delete(["a/1"]))
    assert run(storage.put_if_absent("refs/r", b"ref"))
    assert {str(root / "a/2"), str(root / "a/3"), str(root / "a")} <= set(synced)


def test_a_replaced_object_is_synced_at_once_and_not_again(
    storage: LocalStorage, root: Path, synced: list[str]
) -> None:
    run(storage.put("snapshots/x", b"old"))
    run(storage.put_if_absent("refs/r", b"ref"))
    synced.clear()
    run(storage.put("snapshots/x", b"new"))
    assert len(synced) == 2 and synced[1] == str(root / "snapshots")
    assert Path(synced[0]).name.startswith(".tmp-")  # the bytes, before the rename
    synced.clear()
    run(storage.put_if_absent("refs/s", b"ref"))
    assert str(root / "snapshots/x") not in synced and str(root / "snapshots") not in synced
    assert (root / "snapshots/x").read_bytes() == b"new"


def test_put_if_absent_syncs_its_bytes_before_linking(
    storage: LocalStorage, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str, bytes]] = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        content = Path(path).read_bytes() if Path(path).is_file() else b""
        events.append(("fsync", path, content))
        real_fsync(fd)

    def link(src: str, dst: str) -> None:
        events.append(("link", str(dst), b""))
        real_link(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    assert run(storage.put_if_absent("refs/r", b"payload"))
    kinds = [(kind, Path(path).parent == root / "refs", content) for kind, path, content in events]
    assert kinds == [("fsync", True, b"payload"), ("link", True, b""), ("fsync", False, b"")]
    assert events[2][1] == str(root / "refs")


def test_create_loses_to_an_existing_object_and_leaves_no_temporary_file(
    storage: LocalStorage, root: Path
) -> None:
    assert run(storage.put_if_absent("refs/r", b"first"))
    assert not run(storage.put_if_absent("refs/r", b"second"))
    assert (root / "refs/r").read_bytes() == b"first"
    assert _files(root) == {"refs/r"}


def test_errors_name_the_key(storage: LocalStorage, root: Path) -> None:
    (root / "dir/sub").mkdir(parents=True)
    (root / "file").write_bytes(b"x")
    with pytest.raises(ObjectNotFoundError) as missing:
        run(storage.get("nope"))
    assert str(missing.value) == f"{root}: no object at 'nope'"
    with pytest.raises(ObjectNotFoundError) as missing_range:
        run(storage.get_range("nope", 0, 1))
    assert str(missing_range.value) == f"{root}: no object at 'nope'"
    for read in (storage.get("dir"), storage.get_range("dir", 0, 1)):
        with pytest.raises(StorageError) as failed:
            run(read)
        assert not isinstance(failed.value, ObjectNotFoundError)
        assert str(failed.value).startswith(f"{root}: reading 'dir' failed: ")
    with pytest.raises(StorageError) as put_failed:
        run(storage.put("file/below", b"x"))
    assert str(put_failed.value).startswith(f"{root}: writing 'file/below' failed: ")
    with pytest.raises(StorageError) as create_failed:
        run(storage.put_if_absent("file/below", b"x"))
    assert str(create_failed.value).startswith(f"{root}: writing 'file/below' failed: ")
    with pytest.raises(StorageError) as delete_failed:
        run(storage.delete(["dir"]))
    assert str(delete_failed.value).startswith(f"{root}: deleting 'dir' failed: ")
    assert _files(root) == {"file"}  # no temporary file left by any failure


def test_a_failed_link_is_a_storage_error_and_leaves_no_temporary_file(
    storage: LocalStorage, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def link(src: str, dst: str) -> None:
        raise OSError(31, "Too many links")

    monkeypatch.setattr(os, "link", link)
    with pytest.raises(StorageError) as failed:
        run(storage.put_if_absent("refs/r", b"x"))
    assert str(failed.value).startswith(f"{root}: creating 'refs/r' failed: ")
    assert _files(root) == set()


def test_a_failed_write_removes_its_temporary_file(
    storage: LocalStorage, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(StorageError, match="writing 'refs/r' failed"):
        run(storage.put_if_absent("refs/r", b"x"))
    assert _files(root) == set()


def test_ranges_and_existence(storage: LocalStorage, root: Path) -> None:
    run(storage.put("a/obj", b"0123456789"))
    assert run(storage.get_range("a/obj", 0, 3)) == b"012"
    assert run(storage.get_range("a/obj", 7, 10)) == b"789"
    assert storage.get_sync("a/obj") == b"0123456789"
    assert run(storage.exists("a/obj")) and not run(storage.exists("a"))


def test_listing_by_prefix_skips_temporary_files_that_gc_still_sees(
    storage: LocalStorage, root: Path
) -> None:
    for key in ("p/1", "p/2", "p/q/3", "pq/4", "top"):
        run(storage.put(key, b"x"))
    for temporary in ("p/.tmp-dead1", "p/q/.tmp-dead2", ".tmp-dead3"):
        (root / temporary).write_bytes(b"interrupted")
    assert sorted(run(storage.list("p/"))) == ["p/1", "p/2", "p/q/3"]
    assert sorted(run(storage.list("p"))) == ["p/1", "p/2", "p/q/3", "pq/4"]
    assert sorted(run(storage.list("p/q"))) == ["p/q/3"]
    assert sorted(run(storage.list(""))) == ["p/1", "p/2", "p/q/3", "pq/4", "top"]
    assert run(storage.list("absent/")) == []
    modified = run(storage.list_modified("p/"))
    assert sorted(modified) == ["p/.tmp-dead1", "p/1", "p/2", "p/q/.tmp-dead2", "p/q/3"]
    for key, when in modified.items():
        assert when == datetime.fromtimestamp((root / key).stat().st_mtime, UTC)
    assert run(storage.list_modified("absent/")) == {}


def test_a_prefix_walks_only_its_own_directory(
    storage: LocalStorage, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing a branch's refs must not walk every chunk of the repository."""
    for key in ("refs/branch.main/1", "chunks/a", "chunks/b"):
        run(storage.put(key, b"x"))
    walked: list[str] = []
    real = os.walk

    def walk(top: str | os.PathLike[str]) -> Iterator[tuple[str, list[str], list[str]]]:
        walked.append(str(top))
        return real(top)

    monkeypatch.setattr(os, "walk", walk)
    assert run(storage.list("refs/branch.main/")) == ["refs/branch.main/1"]
    assert run(storage.list("refs/branch.m")) == ["refs/branch.main/1"]
    assert walked == [str(root / "refs/branch.main"), str(root / "refs")]
    walked.clear()
    assert sorted(run(storage.list("chu"))) == ["chunks/a", "chunks/b"]
    assert walked == [str(root)]


def test_an_object_deleted_during_list_modified_is_left_out_not_the_rest(
    storage: LocalStorage, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("p/1", "p/2"):
        run(storage.put(key, b"x"))
    real = os.walk

    def walk(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
        for dirpath, dirnames, filenames in real(top):
            yield dirpath, dirnames, ["0-deleted-since", *sorted(filenames)]

    monkeypatch.setattr(os, "walk", walk)
    assert sorted(run(storage.list_modified("p/"))) == ["p/1", "p/2"]
