"""fsspec storage details a mutation run (mutmut) showed no other test pinned down.

``FsspecStorage`` runs here against an in-process async filesystem registered with fsspec (a
dict of objects that answers as s3fs does, records each request and fails when told to), so no
network is needed: which request each operation makes (a ranged read, a conditional create or a
check then a write, a listing of the prefix's directory only, no delete of nothing), the options
the filesystem is made with (listing cache off on ``s3``/``s3a``), keys relative to the root,
modification times in UTC from each form of ``info`` fsspec backends give, which failures
become ``StorageError`` (naming the storage, the action and the key, the cause chained) and how
an ambiguous create is settled by reading back. The oracle is the dict the test wrote.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import types
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp
import botocore.exceptions  # type: ignore[import-untyped]  # botocore ships no types
import pytest
from fsspec.asyn import AsyncFileSystem
from fsspec.registry import _registry as _fsspec_registry

from icechunk_virtual.errors import ObjectNotFoundError, StorageError
from icechunk_virtual.storage import FsspecStorage, _fsspec

PROTOCOL = "ivfake"
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class _Objects:
    """What one fake bucket holds and what it was asked."""

    objects: dict[str, bytes] = field(default_factory=dict)
    modified: dict[str, datetime] = field(default_factory=dict)
    infos: dict[str, dict[str, Any]] = field(default_factory=dict)
    """``info`` replacing the default one (``LastModified``) for a path."""
    calls: list[tuple[str, Any, dict[str, Any]]] = field(default_factory=list)
    fail: dict[str, BaseException] = field(default_factory=dict)
    """Request name → the error it raises (every time)."""
    lose: dict[str, BaseException] = field(default_factory=dict)
    """Request name → the error it raises after doing its work (a lost response)."""
    options: list[dict[str, Any]] = field(default_factory=list)

    def request(self, name: str, path: Any, **kwargs: Any) -> None:
        self.calls.append((name, path, kwargs))
        if name in self.fail:
            raise self.fail[name]

    def store(self, path: str, data: bytes) -> None:
        self.objects[path] = bytes(data)
        self.modified[path] = EPOCH + timedelta(seconds=len(self.modified))


_BUCKETS: dict[str, _Objects] = {}


class _FakeFileSystem(AsyncFileSystem):  # type: ignore[misc]  # fsspec is untyped
    """An s3fs look-alike over a :class:`_Objects`, chosen by the ``bucket_state`` option."""

    def __init__(self, *, bucket_state: str, **options: Any) -> None:
        passed = {k: options.pop(k) for k in ("asynchronous", "loop") if k in options}
        super().__init__(**passed)
        self.state = _BUCKETS[bucket_state]
        self.state.options.append({"asynchronous": passed.get("asynchronous")} | options)

    async def _cat_file(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        self.state.request("cat", path, start=start, end=end)
        if path not in self.state.objects:
            raise FileNotFoundError(path)
        return self.state.objects[path][start:end]

    async def _pipe_file(self, path: str, data: bytes, mode: str = "overwrite") -> None:
        self.state.request("pipe", path, mode=mode)
        if mode == "create" and path in self.state.objects:
            raise FileExistsError(path)
        if mode not in ("create", "overwrite"):
            raise ValueError(f"mode {mode!r}")
        self.state.store(path, data)
        if "pipe" in self.state.lose:
            raise self.state.lose["pipe"]

    async def _find(self, path: str, detail: bool = False) -> Any:
        self.state.request("find", path, detail=detail)
        found = sorted(p for p in self.state.objects if p.startswith(path + "/"))
        if not detail:
            return found
        return {
            p: self.state.infos.get(p, {"LastModified": self.state.modified[p], "size": 1})
            for p in found
        }

    async def _rm(self, path: list[str]) -> None:
        self.state.request("rm", list(path))
        for p in path:
            self.state.objects.pop(p, None)

    async def _exists(self, path: str) -> bool:
        self.state.request("exists", path)
        return path in self.state.objects


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, _Objects]]:
    """A fresh fake bucket (its ``bucket_state`` option, and its state), on ``ivfake://``."""
    monkeypatch.setitem(_fsspec_registry, PROTOCOL, _FakeFileSystem)
    name = uuid.uuid4().hex
    _BUCKETS[name] = state = _Objects()
    yield name, state
    del _BUCKETS[name]


def _storage(
    bucket: tuple[str, _Objects], url: str = f"{PROTOCOL}://b/repo", **kw: Any
) -> FsspecStorage:
    options = {"bucket_state": bucket[0]} | kw.pop("options", {})
    return FsspecStorage(url, storage_options=options, atomic_create=kw.pop("atomic", True))


def run[T](coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


# ---- the options and paths the filesystem gets ---------------------------------------------------


@pytest.mark.parametrize("protocol", ["s3", "s3a"], ids=["aws", "hadoop"])  # (no "s3": see -k)
def test_listing_cache_is_off_for_the_atomic_protocols(
    bucket: tuple[str, _Objects], protocol: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(_fsspec_registry, protocol, _FakeFileSystem)
    options = {"bucket_state": bucket[0]}
    storage = FsspecStorage(f"{protocol}://b/repo", storage_options=options, atomic_create=True)
    run(storage.put("k", b"v"))
    assert bucket[1].options == [{"asynchronous": True, "use_listings_cache": False}]
    assert options == {"bucket_state": bucket[0]}  # the caller's dict is not changed
    bucket[1].options.clear()
    chosen = FsspecStorage(
        f"{protocol}://b/repo",
        storage_options=options | {"use_listings_cache": True},
        atomic_create=True,
    )
    run(chosen.put("k", b"v"))
    assert [o["use_listings_cache"] for o in bucket[1].options] == [True]


def test_other_protocols_get_the_options_as_given(bucket: tuple[str, _Objects]) -> None:
    storage = _storage(bucket, options={"anon": True})
    run(storage.put("k", b"v"))
    assert bucket[1].options == [{"asynchronous": True, "anon": True}]
    assert storage.protocol == PROTOCOL and storage.atomic_create
    assert not _storage(bucket, atomic=False).atomic_create


def test_no_options_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(_fsspec, "filesystem_for", lambda p, o: seen.append((p, o)))
    FsspecStorage("gcs://b/r", atomic_create=False)._fs()
    FsspecStorage("s3://b/r", storage_options=None, atomic_create=True)._fs()
    assert seen == [("gcs", {}), ("s3", {"use_listings_cache": False})]


def test_keys_are_paths_under_the_root_without_trailing_slashes(
    bucket: tuple[str, _Objects],
) -> None:
    storage = _storage(bucket, url=f"{PROTOCOL}://b/repo//")
    assert storage.url == f"{PROTOCOL}://b/repo" and storage.root == "b/repo"
    run(storage.put("a/k", b"v"))
    assert bucket[1].objects == {"b/repo/a/k": b"v"}
    assert repr(storage) == f"FsspecStorage('{PROTOCOL}://b/repo')"


def test_the_protocol_ends_at_the_first_separator_and_only_slashes_are_stripped(
    bucket: tuple[str, _Objects],
) -> None:
    storage = _storage(bucket, url=f"{PROTOCOL}://b/a://X/")  # a key may hold '://'
    assert (storage.protocol, storage.root) == (PROTOCOL, "b/a://X")
    assert storage.url == f"{PROTOCOL}://b/a://X"
    run(storage.put("k", b"v"))
    assert bucket[1].objects == {"b/a://X/k": b"v"}


# ---- reads and writes -------------------------------------------------------------------------------


def test_reads_whole_objects_and_ranges(bucket: tuple[str, _Objects]) -> None:
    storage, state = _storage(bucket), bucket[1]
    state.store("b/repo/k", b"0123456789")
    assert run(storage.get("k")) == b"0123456789"
    assert run(storage.get_range("k", 3, 4)) == b"3456"
    assert run(storage.get_range("k", 0, 2)) == b"01"
    assert state.calls == [
        ("cat", "b/repo/k", {"start": None, "end": None}),
        ("cat", "b/repo/k", {"start": 3, "end": 7}),
        ("cat", "b/repo/k", {"start": 0, "end": 2}),
    ]


def test_a_missing_object_is_not_found_naming_the_key(bucket: tuple[str, _Objects]) -> None:
    storage = _storage(bucket)
    for read in (storage.get("a/x"), storage.get_range("a/x", 0, 1)):
        with pytest.raises(ObjectNotFoundError) as caught:
            run(read)
        assert str(caught.value) == f"{PROTOCOL}://b/repo: no object at 'a/x'"
        assert isinstance(caught.value.__cause__, FileNotFoundError)
    assert not run(storage.exists("a/x"))


def test_put_replaces(bucket: tuple[str, _Objects]) -> None:
    storage, state = _storage(bucket), bucket[1]
    run(storage.put("k", b"one"))
    run(storage.put("k", b"two"))
    assert state.objects == {"b/repo/k": b"two"}
    assert state.calls == [("pipe", "b/repo/k", {"mode": "overwrite"})] * 2
    assert run(storage.exists("k")) is True


def test_atomic_create_is_one_conditional_write(bucket: tuple[str, _Objects]) -> None:
    storage, state = _storage(bucket), bucket[1]
    assert run(storage.put_if_absent("r", b"first")) is True
    assert run(storage.put_if_absent("r", b"second")) is False
    assert state.objects == {"b/repo/r": b"first"}
    assert state.calls == [("pipe", "b/repo/r", {"mode": "create"})] * 2


def test_non_atomic_create_checks_then_writes(bucket: tuple[str, _Objects]) -> None:
    storage, state = _storage(bucket, atomic=False), bucket[1]
    assert run(storage.put_if_absent("r", b"first")) is True
    assert run(storage.put_if_absent("r", b"second")) is False
    assert state.objects == {"b/repo/r": b"first"}
    assert state.calls == [
        ("exists", "b/repo/r", {}),
        ("pipe", "b/repo/r", {"mode": "overwrite"}),
        ("exists", "b/repo/r", {}),
    ]


def test_a_lost_create_response_is_settled_by_reading_back(bucket: tuple[str, _Objects]) -> None:
    storage, state = _storage(bucket), bucket[1]
    state.lose["pipe"] = TimeoutError("lost")  # written, but the answer never came
    assert run(storage.put_if_absent("mine", b"ours")) is True
    del state.lose["pipe"]
    state.store("b/repo/rival", b"theirs")  # a rival's object
    state.fail["pipe"] = ConnectionResetError("reset")
    assert run(storage.put_if_absent("rival", b"ours")) is False
    assert state.objects["b/repo/rival"] == b"theirs"
    with pytest.raises(StorageError) as caught:  # nothing was created: safe to retry
        run(storage.put_if_absent("none", b"ours"))
    assert str(caught.value) == (
        f"{PROTOCOL}://b/repo: creating 'none' failed: ConnectionResetError('reset')"
    )
    assert isinstance(caught.value.__cause__, ConnectionResetError)
    state.fail["cat"] = OSError("down")
    with pytest.raises(StorageError) as caught:
        run(storage.put_if_absent("rival", b"ours"))
    assert str(caught.value) == (
        f"{PROTOCOL}://b/repo: creating (outcome unknown) 'rival' failed: "
        "StorageError(\"ivfake://b/repo: reading 'rival' failed: OSError('down')\")"
    )
    assert isinstance(caught.value.__cause__, ConnectionResetError)


# ---- listings -----------------------------------------------------------------------------------


KEYS = ("p/1", "p/2", "p/q/3", "p", "pq/4", "other/5")


def _filled(bucket: tuple[str, _Objects]) -> tuple[Any, _Objects]:
    storage, state = _storage(bucket), bucket[1]
    for key in KEYS:
        state.store(f"b/repo/{key}", key.encode())
    state.store("b/repo2/p/x", b"outside the root")
    state.store("b/rep/p/y", b"outside the root")
    state.calls.clear()
    return storage, state


@pytest.mark.parametrize(
    ("prefix", "directory"),
    [("", "b/repo"), ("p", "b/repo"), ("p/", "b/repo/p"), ("p/q", "b/repo/p"),
     ("p/q/", "b/repo/p/q"), ("p/q/3", "b/repo/p/q"), ("o", "b/repo"), ("none/", "b/repo/none")],
)  # fmt: skip
def test_listings_match_the_keys_and_ask_for_the_prefix_directory_only(
    bucket: tuple[str, _Objects], prefix: str, directory: str
) -> None:
    storage, state = _filled(bucket)
    expected = sorted(k for k in KEYS if k.startswith(prefix))
    assert sorted(run(storage.list(prefix))) == expected
    modified = run(storage.list_modified(prefix))
    assert modified == {k: state.modified[f"b/repo/{k}"] for k in expected}
    assert state.calls == [
        ("find", directory, {"detail": False}),
        ("find", directory, {"detail": True}),
    ]


def test_a_missing_directory_lists_nothing(bucket: tuple[str, _Objects]) -> None:
    storage, state = _filled(bucket)
    state.fail["find"] = FileNotFoundError("b/repo/p")
    assert run(storage.list("p/")) == []
    assert run(storage.list_modified("p/")) == {}


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"LastModified": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)}, datetime(2024, 5, 6, 7, 8, 9)),
        ({"LastModified": datetime(2024, 5, 6, 7, 8, 9)}, datetime(2024, 5, 6, 7, 8, 9)),
        ({"LastModified": datetime(2024, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2)))},
         datetime(2024, 5, 6, 7, 8, 9)),
        ({"last_modified": datetime(2024, 5, 6)}, datetime(2024, 5, 6)),
        ({"mtime": 86400 * 365}, datetime(1971, 1, 1)),
        ({"mtime": 1.5}, datetime(1970, 1, 1, 0, 0, 1, 500000)),
        ({"mtime": "2024-05-06T07:08:09"}, datetime(2024, 5, 6, 7, 8, 9)),
        ({"mtime": "2024-05-06T09:08:09+02:00"}, datetime(2024, 5, 6, 7, 8, 9)),
        ({"last_modified": datetime(2024, 5, 6), "mtime": 0}, datetime(2024, 5, 6)),
        ({"LastModified": datetime(2024, 5, 6), "last_modified": 0, "mtime": 0},
         datetime(2024, 5, 6)),
    ],
)  # fmt: skip
def test_modification_times_from_each_form_of_info_in_utc(
    bucket: tuple[str, _Objects], info: dict[str, Any], expected: datetime
) -> None:
    storage, state = _storage(bucket), bucket[1]
    state.store("b/repo/k", b"v")
    state.infos["b/repo/k"] = info | {"size": 1}
    (found,) = run(storage.list_modified("")).values()
    assert found == expected.replace(tzinfo=UTC) and found.tzinfo is not None


def test_an_object_without_a_modification_time_is_a_storage_error(
    bucket: tuple[str, _Objects],
) -> None:
    storage, state = _storage(bucket), bucket[1]
    state.store("b/repo/a/k", b"v")
    state.infos["b/repo/a/k"] = {"size": 1, "type": "file", "mtime": None}
    with pytest.raises(StorageError) as caught:
        run(storage.list_modified("a/"))
    assert str(caught.value) == (
        f"{PROTOCOL}://b/repo/a/k: the storage reports no modification time "
        "(['mtime', 'size', 'type'])"
    )


# ---- deletes ----------------------------------------------------------------------------------------


def test_delete_removes_the_keys_in_one_request_and_nothing_for_no_keys(
    bucket: tuple[str, _Objects],
) -> None:
    storage, state = _filled(bucket)
    run(storage.delete(iter(["p/1", "p/missing", "p"])))
    assert state.calls == [("rm", ["b/repo/p/1", "b/repo/p/missing", "b/repo/p"], {})]
    assert sorted(run(storage.list(""))) == sorted(set(KEYS) - {"p/1", "p"})
    state.calls.clear()
    run(storage.delete([]))
    assert state.calls == []
    state.fail["rm"] = FileNotFoundError("b/repo/p/2")  # already gone: nothing to do
    run(storage.delete(["p/2"]))


# ---- failures -----------------------------------------------------------------------------------


OPERATIONS: dict[str, list[tuple[str, str, tuple[object, ...], str]]] = {
    # request: (action named, method, its arguments, key named)
    "cat": [("reading", "get", ("k",), "k"), ("reading", "get_range", ("k", 0, 1), "k")],
    "pipe": [("writing", "put", ("k", b"v"), "k")],
    "find": [("listing", "list", ("p/",), "p/"), ("listing", "list_modified", ("p/",), "p/")],
    "rm": [("deleting", "delete", (["k", "j"],), "k")],
    "exists": [
        ("checking", "exists", ("k",), "k"),
        ("checking", "put_if_absent", ("k", b"v"), "k"),
    ],
}


@pytest.mark.parametrize(
    "error",
    [
        OSError("boom"),
        ConnectionResetError("boom"),
        botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"),
        botocore.exceptions.ClientError({"Error": {"Code": "500"}}, "GetObject"),
        aiohttp.ClientConnectionError("boom"),
    ],
    ids=["oserror", "reset", "endpoint", "client", "aiohttp"],
)
def test_backend_failures_are_storage_errors_naming_the_action_and_key(
    bucket: tuple[str, _Objects], error: Exception
) -> None:
    state = bucket[1]
    for request, operations in OPERATIONS.items():
        state.fail = {request: error}
        for action, method, args, key in operations:
            storage = _storage(bucket, atomic=method != "put_if_absent")
            with pytest.raises(StorageError) as caught:
                run(getattr(storage, method)(*args))
            assert str(caught.value) == (
                f"{PROTOCOL}://b/repo: {action} '{key}' failed: {error!r}"
            ), method
            assert caught.value.__cause__ is error, method


def test_a_bug_is_not_a_storage_error(bucket: tuple[str, _Objects]) -> None:
    storage, state = _storage(bucket), bucket[1]
    state.fail = dict.fromkeys(("cat", "pipe", "find", "rm", "exists"), TypeError("bug"))
    for operation in (storage.get("k"), storage.get_range("k", 0, 1), storage.put("k", b"v"),
                      storage.list(""), storage.list_modified(""), storage.delete(["k"]),
                      storage.exists("k")):  # fmt: skip
        with pytest.raises(TypeError, match="bug"):
            run(operation)


def test_the_failures_are_os_errors_and_the_loaded_client_libraries_trees(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only libraries already imported count (one not loaded raised nothing), so importing the
    package does not import botocore and aiohttp."""
    everything = (
        OSError,
        botocore.exceptions.BotoCoreError,
        botocore.exceptions.ClientError,
        aiohttp.ClientError,
    )
    assert _fsspec.backend_failures() == everything
    monkeypatch.delitem(sys.modules, "botocore.exceptions")
    assert _fsspec.backend_failures() == (OSError, aiohttp.ClientError)
    monkeypatch.setitem(sys.modules, "botocore.exceptions", types.ModuleType("botocore.exceptions"))
    assert _fsspec.backend_failures() == (OSError, aiohttp.ClientError)  # no such classes
    monkeypatch.delitem(sys.modules, "aiohttp")
    assert _fsspec.backend_failures() == (OSError,)


def test_importing_the_package_loads_no_cloud_client_library() -> None:
    code = ("import sys, icechunk_virtual; "
            "print(sorted(m for m in ('botocore', 'aiohttp', 's3fs') if m in sys.modules))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
