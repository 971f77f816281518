"""Memory storage details a mutation run (mutmut) showed no other test pinned down.

One storage per ``memory://`` name in a process; stored bytes are a copy of what was written;
each write stamps the object with the current time in UTC, and ``list_modified`` and ``delete``
see the same objects ``list`` and ``get`` do; the error for a missing object names the storage
and the key. The oracle is a dict of what the test wrote and the clock read around each write.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import pytest

from icechunk_virtual.errors import ObjectNotFoundError
from icechunk_virtual.storage import MemoryStorage, open_storage


def run[T](coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def _name() -> str:
    return f"mutants-{uuid.uuid4().hex}"


def test_one_storage_per_name_shared_by_open_storage() -> None:
    name = _name()
    first = MemoryStorage.named(name)
    assert first.url == f"memory://{name}"
    assert MemoryStorage.named(name) is first
    assert open_storage(f"memory://{name}/") is first
    other = MemoryStorage.named(_name())
    assert other is not first
    run(first.put("k", b"v"))
    assert run(MemoryStorage.named(name).get("k")) == b"v"
    assert not run(other.exists("k"))


def test_a_missing_object_names_the_storage_and_the_key() -> None:
    storage = MemoryStorage("m")
    with pytest.raises(ObjectNotFoundError) as caught:
        run(storage.get("a/b"))
    assert str(caught.value) == "memory://m: no object at 'a/b'"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(ObjectNotFoundError, match="no object at 'a/b'"):
        storage.get_sync("a/b")
    with pytest.raises(ObjectNotFoundError, match="no object at 'a/b'"):
        run(storage.get_range("a/b", 0, 1))


def test_stored_bytes_are_a_copy_and_read_back_in_ranges() -> None:
    storage = MemoryStorage("m")
    written = bytearray(b"0123456789")
    run(storage.put("k", written))  # type: ignore[arg-type]  # a caller's buffer
    created = bytearray(b"abc")
    assert run(storage.put_if_absent("c", created))  # type: ignore[arg-type]
    written[0:1] = b"X"
    created[0:1] = b"X"
    assert run(storage.get("k")) == b"0123456789" and type(run(storage.get("k"))) is bytes
    assert storage.get_sync("c") == b"abc" and type(storage.get_sync("c")) is bytes
    assert run(storage.get_range("k", 3, 4)) == b"3456"
    assert run(storage.get_range("k", 0, 1)) == b"0"
    assert run(storage.get_range("k", 8, 5)) == b"89"


def test_put_if_absent_keeps_the_first_object_and_its_time() -> None:
    storage = MemoryStorage("m")
    assert run(storage.put_if_absent("r", b"first"))
    first_time = run(storage.list_modified(""))["r"]
    assert not run(storage.put_if_absent("r", b"second"))
    assert run(storage.get("r")) == b"first"
    assert run(storage.list_modified("")) == {"r": first_time}


def test_every_write_is_stamped_with_the_time_in_utc() -> None:
    storage = MemoryStorage("m")
    stamps: dict[str, tuple[datetime, datetime]] = {}
    for key, write in (("p/a", storage.put), ("p/b", storage.put_if_absent), ("q", storage.put)):
        before = datetime.now(UTC)
        run(write(key, b"x"))
        stamps[key] = (before, datetime.now(UTC))
    modified = run(storage.list_modified(""))
    assert set(modified) == {"p/a", "p/b", "q"}
    for key, stamp in modified.items():
        assert stamp.tzinfo is UTC
        assert stamps[key][0] <= stamp <= stamps[key][1], key
    assert set(run(storage.list_modified("p/"))) == {"p/a", "p/b"}
    before = datetime.now(UTC)
    run(storage.put("p/a", b"y"))  # a replaced object gets a new time
    assert before <= run(storage.list_modified("p/a"))["p/a"] <= datetime.now(UTC)


def test_list_and_delete_agree_with_what_was_written() -> None:
    storage = MemoryStorage("m")
    model: dict[str, bytes] = {}
    for key in ("p/1", "p/2", "p/q/3", "other/4", "p"):
        run(storage.put(key, key.encode()))
        model[key] = key.encode()
    for prefix in ("", "p", "p/", "p/q", "o", "none"):
        expected = sorted(k for k in model if k.startswith(prefix))
        assert sorted(run(storage.list(prefix))) == expected, prefix
        assert sorted(run(storage.list_modified(prefix))) == expected, prefix
    run(storage.delete(iter(["p/1", "p/missing", "p"])))  # any iterable; missing keys ignored
    for key in ("p/1", "p"):
        del model[key]
    assert sorted(run(storage.list(""))) == sorted(model)
    assert sorted(run(storage.list_modified(""))) == sorted(model)
    for key in ("p/1", "p/missing", "p"):
        assert not run(storage.exists(key))
    for key, data in model.items():
        assert run(storage.exists(key)) and run(storage.get(key)) == data
    run(storage.delete([]))
    assert sorted(run(storage.list(""))) == sorted(model)
