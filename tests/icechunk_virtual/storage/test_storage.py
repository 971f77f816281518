"""The storage contract, run against local disk, memory and S3 (moto), plus backend selection."""

from __future__ import annotations

import threading

import pytest

from icechunk_virtual._sync import sync
from icechunk_virtual.errors import ObjectNotFoundError, StorageError, UnsafeStorageError
from icechunk_virtual.storage import FsspecStorage, LocalStorage, Storage, open_storage


@pytest.fixture
def storage(location) -> Storage:  # type: ignore[no-untyped-def]
    return open_storage(location.url, storage_options=location.storage_options)


def test_put_get_and_ranges(storage: Storage) -> None:
    sync(storage.put("a/b/obj", b"0123456789"))
    assert sync(storage.get("a/b/obj")) == b"0123456789"
    assert sync(storage.get_range("a/b/obj", 3, 4)) == b"3456"
    sync(storage.put("a/b/obj", b"new"))
    assert sync(storage.get("a/b/obj")) == b"new"


def test_missing_object_is_a_typed_error_naming_the_key(storage: Storage) -> None:
    with pytest.raises(ObjectNotFoundError, match="nope/missing"):
        sync(storage.get("nope/missing"))
    assert not sync(storage.exists("nope/missing"))


def test_put_if_absent_creates_once(storage: Storage) -> None:
    assert sync(storage.put_if_absent("refs/x", b"first"))
    assert not sync(storage.put_if_absent("refs/x", b"second"))
    assert sync(storage.get("refs/x")) == b"first"


def test_put_if_absent_has_exactly_one_winner_under_a_race(storage: Storage) -> None:
    winners: list[int] = []
    barrier = threading.Barrier(8)

    def contend(i: int) -> None:
        barrier.wait()
        if sync(storage.put_if_absent("race/key", f"writer {i}".encode())):
            winners.append(i)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert sync(storage.get("race/key")) == f"writer {winners[0]}".encode()


def test_list_and_delete(storage: Storage) -> None:
    for key in ("p/1", "p/2", "p/q/3", "other/4"):
        sync(storage.put(key, b"x"))
    assert sorted(sync(storage.list("p/"))) == ["p/1", "p/2", "p/q/3"]
    assert sorted(sync(storage.list("p/q"))) == ["p/q/3"]
    sync(storage.delete(["p/1", "p/missing"]))
    assert sorted(sync(storage.list("p/"))) == ["p/2", "p/q/3"]
    assert sync(storage.list("empty/")) == []


def test_local_put_if_absent_leaves_no_temporary_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    storage = LocalStorage(tmp_path)
    sync(storage.put_if_absent("refs/a", b"1"))
    sync(storage.put_if_absent("refs/a", b"2"))
    assert sorted(p.name for p in (tmp_path / "refs").iterdir()) == ["a"]


def test_backend_selection() -> None:
    assert isinstance(open_storage("/tmp/x"), LocalStorage)
    assert isinstance(open_storage("file:///tmp/x"), LocalStorage)
    s3 = open_storage("s3://bucket/prefix")
    assert isinstance(s3, FsspecStorage) and s3.atomic_create


def test_backends_without_atomic_create_are_refused() -> None:
    with pytest.raises(UnsafeStorageError, match=r"gcs://bucket/repo.*unsafe_single_writer"):
        open_storage("gcs://bucket/repo")
    unsafe = open_storage("gcs://bucket/repo", unsafe_single_writer=True)
    assert isinstance(unsafe, FsspecStorage) and not unsafe.atomic_create


def test_s3_lost_create_response_is_settled_by_reading_back(s3_location) -> None:  # type: ignore[no-untyped-def]
    storage = open_storage(s3_location.url, storage_options=s3_location.storage_options)
    assert isinstance(storage, FsspecStorage)
    # Nothing stored: the ambiguous create is reported as a storage error, safe to retry.
    with pytest.raises(StorageError, match="creating 'k'"):
        sync(storage._settle_ambiguous_create("k", b"mine", OSError("reset")))
    # The server stored the object but the client saw an error (a lost response).
    sync(storage.put("k", b"mine"))
    assert sync(storage._settle_ambiguous_create("k", b"mine", OSError("reset")))
    assert not sync(storage._settle_ambiguous_create("k", b"theirs", OSError("reset")))
