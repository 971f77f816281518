"""zarr's own store conformance suite (``zarr.testing.store.StoreTests``) against our store.

Our store is structured, as Icechunk's is: a key is a node's ``zarr.json`` (a valid Zarr v3
document) or a chunk of an array that exists, never an arbitrary name. zarr's tests that write
arbitrary keys or bytes ("foo", ``b"bar"`` as ``zarr.json``) are re-stated here with the same
assertions over valid metadata and real chunk keys; the few whose contract a versioned store
cannot meet are skipped with the reason next to them. The hooks ``set``/``get`` bypass the store
and work on the session directly, creating the array a chunk key names when it is missing.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import uuid
from typing import Any

import pytest
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import Buffer, cpu, default_buffer_prototype
from zarr.core.sync import _collect_aiterator
from zarr.testing.store import StoreTests
from zarr.testing.utils import assert_bytes_equal

import icechunk_virtual as iv
from icechunk_virtual.zarr.keys import ChunkKeys, metadata_path
from icechunk_virtual.zarr.store import IcechunkVirtualStore

GROUP = b'{"zarr_format":3,"node_type":"group","attributes":{}}'
CHUNK_KEYS = ["c/0", "foo/c/0/0", "bar/0.0"]
"""A root array's chunk, a default-encoded 2-d array's, a v2-encoded ("." separator) one's."""


def _array_json(ndim: int, encoding: dict[str, Any]) -> dict[str, Any]:
    return {
        "zarr_format": 3, "node_type": "array", "shape": [100] * ndim, "data_type": "uint8",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1] * ndim}},
        "chunk_key_encoding": encoding, "fill_value": 0, "attributes": {},
        "codecs": [{"name": "bytes"}],
    }  # fmt: skip


def _place(key: str) -> tuple[str, tuple[int, ...], dict[str, Any]]:
    """The array a test chunk key names: its path, the chunk and the array's metadata."""
    head, _, rest = key.partition("/")
    if head == "c":  # c/0: the root array
        coord = tuple(int(i) for i in rest.split("/"))
        return "/", coord, _array_json(len(coord), {"name": "default"})
    if rest.startswith("c/"):
        coord = tuple(int(i) for i in rest[2:].split("/"))
        return f"/{head}", coord, _array_json(len(coord), {"name": "default"})
    coord = tuple(int(i) for i in rest.split("."))
    v2 = {"name": "v2", "configuration": {"separator": "."}}
    return f"/{head}", coord, _array_json(len(coord), v2)


class TestWritableStore(StoreTests[IcechunkVirtualStore, cpu.Buffer]):
    store_cls = IcechunkVirtualStore
    buffer_cls = cpu.Buffer

    async def set(self, store: IcechunkVirtualStore, key: str, value: Buffer) -> None:
        session = store.session
        path = metadata_path(key)
        if path is not None:
            session.set_node_metadata(
                path, json.loads(value.to_bytes()), text=value.to_bytes().decode()
            )
            return
        array, coord, metadata = _place(key)
        if array != "/" and session.node("/") is None:
            session.set_node_metadata("/", json.loads(GROUP))
        if session.node(array) is None:
            session.set_node_metadata(array, metadata)
        await session.write_chunk(array, coord, value.to_bytes())

    async def get(self, store: IcechunkVirtualStore, key: str) -> Buffer:
        session = store.session
        path = metadata_path(key)
        if path is not None:
            node = session.node(path)
            assert node is not None
            return self.buffer_cls.from_bytes(node.document())
        array, coord, _ = _place(key)
        data = await session.chunks.read_chunk(array, coord)
        assert data is not None
        return self.buffer_cls.from_bytes(data)

    @pytest.fixture
    def store_kwargs(self) -> dict[str, Any]:
        repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
        return {"session": repo.writable_session().async_session}

    def test_store_repr(self, store: IcechunkVirtualStore) -> None:
        assert repr(store).startswith("IcechunkVirtualStore(snapshot=")

    def test_store_supports_writes(self, store: IcechunkVirtualStore) -> None:
        assert store.supports_writes

    def test_store_supports_listing(self, store: IcechunkVirtualStore) -> None:
        assert store.supports_listing

    # ---- contracts a versioned store cannot meet ------------------------------------------------
    async def test_serializable_store(self, store: IcechunkVirtualStore) -> None:
        """zarr's test pickles a writable store and writes through both copies; a writable
        session's uncommitted changes live in this process, so it refuses, pointing to fork()."""
        with pytest.raises(TypeError, match=r"fork\(\)") as caught:
            pickle.dumps(store)
        assert isinstance(caught.value, iv.NotPicklableError)

    # ---- zarr's tests over valid metadata and real chunk keys ------------------------------------
    async def test_with_read_only_store(self, open_kwargs: dict[str, Any]) -> None:
        store = await self.store_cls.open(**{**open_kwargs, "read_only": True})
        writer = store.with_read_only(read_only=False)
        assert not writer._is_open and not writer.read_only
        await writer.set("foo/zarr.json", self.buffer_cls.from_bytes(GROUP))
        await writer.delete("foo/zarr.json")
        for reader in (store, store.with_read_only(read_only=True)):
            assert reader.read_only
            with pytest.raises(ValueError, match="store was opened in read-only mode"):
                await reader.set("foo/zarr.json", self.buffer_cls.from_bytes(GROUP))
            with pytest.raises(ValueError, match="store was opened in read-only mode"):
                await reader.delete("foo/zarr.json")

    @pytest.mark.parametrize("key", CHUNK_KEYS)
    @pytest.mark.parametrize(
        ("data", "byte_range"),
        [(b"\x01\x02\x03\x04", None), (b"\x01\x02\x03\x04", RangeByteRequest(1, 4)),
         (b"\x01\x02\x03\x04", OffsetByteRequest(1)), (b"\x01\x02\x03\x04", SuffixByteRequest(1)),
         (b"", None)],
    )  # fmt: skip
    async def test_get(  # type: ignore[override]
        self, store: IcechunkVirtualStore, key: str, data: bytes, byte_range: Any
    ) -> None:
        await super().test_get(store, key, data, byte_range)

    async def test_get_many(self, store: IcechunkVirtualStore) -> None:
        keys = [f"c/{i}" for i in range(10)]
        for k in keys:
            await self.set(store, k, self.buffer_cls.from_bytes(k.encode()))
        requests = [(k, default_buffer_prototype(), None) for k in keys]
        observed = await _collect_aiterator(store._get_many(requests))
        assert sorted((k, b.to_bytes()) for k, b in observed) == [(k, k.encode()) for k in keys]  # type: ignore[union-attr]

    @pytest.mark.parametrize("key", [*CHUNK_KEYS, "zarr.json"])
    @pytest.mark.parametrize("data", [b"\x01\x02\x03\x04", b""])
    async def test_getsize(self, store: IcechunkVirtualStore, key: str, data: bytes) -> None:  # type: ignore[override]
        if key == "zarr.json":
            data = json.dumps({"zarr_format": 3, "node_type": "group", "n": data.hex()}).encode()
        await super().test_getsize(store, key, data)

    async def test_getsize_prefix(self, store: IcechunkVirtualStore) -> None:
        data = self.buffer_cls.from_bytes(b"\x01\x02\x03\x04")
        for key in ["foo/c/0/0", "foo/c/0/1", "foo/c/1/0", "foo/c/1/1", "fooo/c/0/0"]:
            await self.set(store, key, data)  # "fooo" shares the string prefix, not the directory
        metadata = len(store.session.node("/foo").document())  # type: ignore[union-attr]
        assert await store.getsize_prefix("foo") == 4 * len(data) + metadata

    @pytest.mark.parametrize("key", [*CHUNK_KEYS, "zarr.json"])
    @pytest.mark.parametrize("data", [b"\x01\x02\x03\x04", b""])
    async def test_set(self, store: IcechunkVirtualStore, key: str, data: bytes) -> None:  # type: ignore[override]
        if key == "zarr.json":
            data = b'{ "zarr_format": 3,\n  "node_type": "group", "x": "%s" }' % data.hex().encode()
        else:
            await self._make_array(store, key)
        await super().test_set(store, key, data)  # as written, whitespace included

    async def _make_array(self, store: IcechunkVirtualStore, key: str) -> None:
        array, _, metadata = _place(key)
        if array != "/":
            await self._put(store, "zarr.json", GROUP)
        meta_key = "zarr.json" if array == "/" else f"{array.strip('/')}/zarr.json"
        await self._put(store, meta_key, json.dumps(metadata).encode())

    async def _put(self, store: IcechunkVirtualStore, key: str, data: bytes) -> None:
        """A write that only sets a read test up: through the store (the read-only class below
        goes around it)."""
        await store.set(key, self.buffer_cls.from_bytes(data))

    async def test_set_not_open(self, store_not_open: IcechunkVirtualStore) -> None:
        await self._make_array(store_not_open, "c/0")
        await super().test_set_not_open(store_not_open)

    async def test_set_many(self, store: IcechunkVirtualStore) -> None:
        await self._make_array(store, "foo/c/0/0")
        values = {"zarr.json": GROUP, "foo/c/0/0": b"a", "foo/c/1/2": b"bc"}
        await store._set_many((k, self.buffer_cls.from_bytes(v)) for k, v in values.items())
        for key, value in values.items():
            assert (await self.get(store, key)).to_bytes() == value

    @pytest.mark.parametrize(
        "key_ranges",
        [[], [("zarr.json", RangeByteRequest(0, 2))],
         [("c/0", RangeByteRequest(0, 2)), ("zarr.json", None)],
         [("c/0", RangeByteRequest(0, 2)), ("c/1", SuffixByteRequest(2)),
          ("c/2", OffsetByteRequest(2))]],
    )  # fmt: skip
    async def test_get_partial_values(  # type: ignore[override]
        self, store: IcechunkVirtualStore, key_ranges: list[tuple[str, Any]]
    ) -> None:
        await self._make_array(store, "c/0")  # the root array; its zarr.json is the one read
        for key, _ in key_ranges:
            if key != "zarr.json":
                await self.set(store, key, self.buffer_cls.from_bytes(key.encode()))
        observed = await store.get_partial_values(default_buffer_prototype(), iter(key_ranges))
        assert len(observed) == len(key_ranges)
        for (key, byte_range), got in zip(key_ranges, observed, strict=True):
            expected = await store.get(key, default_buffer_prototype(), byte_range=byte_range)
            assert got is not None and expected is not None
            assert got.to_bytes() == expected.to_bytes()

    async def test_exists(self, store: IcechunkVirtualStore) -> None:
        assert not await store.exists("foo/zarr.json")
        await self._put(store, "foo/zarr.json", GROUP)
        assert await store.exists("foo/zarr.json")
        assert not await store.exists("foo")  # not a key: no such node or chunk

    async def test_delete(self, store: IcechunkVirtualStore) -> None:
        await store.set("foo/zarr.json", self.buffer_cls.from_bytes(GROUP))
        await store.delete("foo/zarr.json")
        assert not await store.exists("foo/zarr.json")
        await self.set(store, "c/3", self.buffer_cls.from_bytes(b"x"))
        await store.delete("c/3")
        assert not await store.exists("c/3")

    async def test_delete_dir(self, store: IcechunkVirtualStore) -> None:
        for key in ("zarr.json", "foo-bar/zarr.json"):
            await store.set(key, self.buffer_cls.from_bytes(GROUP))
        await self.set(store, "foo/c/0/0", self.buffer_cls.from_bytes(b"chunk"))
        await store.delete_dir("foo")
        assert await store.exists("zarr.json") and await store.exists("foo-bar/zarr.json")
        assert not await store.exists("foo/zarr.json")
        assert not await store.exists("foo/c/0/0")

    async def test_is_empty(self, store: IcechunkVirtualStore) -> None:
        assert await store.is_empty("")
        await self.set(store, "foo/c/0/0", self.buffer_cls.from_bytes(b"something"))
        assert not await store.is_empty("")
        assert await store.is_empty("fo")
        assert not await store.is_empty("foo/")
        assert not await store.is_empty("foo")
        assert await store.is_empty("spam/")

    async def test_clear(self, store: IcechunkVirtualStore) -> None:
        await self.set(store, "foo/c/0/0", self.buffer_cls.from_bytes(b"something"))
        await store.clear()
        assert await store.is_empty("")

    async def test_list(self, store: IcechunkVirtualStore) -> None:
        assert await _collect_aiterator(store.list()) == ()
        keys = [f"foo/c/{i}/0" for i in range(10)]
        for key in keys:
            await self.set(store, key, self.buffer_cls.from_bytes(b"v"))
        expected = sorted([*keys, "zarr.json", "foo/zarr.json"])
        assert sorted(await _collect_aiterator(store.list())) == expected

    async def test_list_prefix(self, store: IcechunkVirtualStore) -> None:
        prefixes = ("", "a/", "a/b/", "a/b/c/")
        for p in prefixes:
            await self._put(store, p + "zarr.json", GROUP)
        keys = [p + "zarr.json" for p in prefixes]
        for prefix in prefixes:
            observed = sorted(await _collect_aiterator(store.list_prefix(prefix)))
            assert observed == sorted(k for k in keys if k.startswith(prefix))

    async def test_list_empty_path(self, store: IcechunkVirtualStore) -> None:
        for key in ("foo/c/1/0", "bar/0.0"):
            await self.set(store, key, self.buffer_cls.from_bytes(b""))
        expected = sorted(["zarr.json", "foo/zarr.json", "foo/c/1/0", "bar/zarr.json", "bar/0.0"])
        assert sorted(await _collect_aiterator(store.list())) == expected
        assert sorted(await _collect_aiterator(store.list_prefix(""))) == expected
        foo = sorted(await _collect_aiterator(store.list_prefix("foo/")))
        assert foo == ["foo/c/1/0", "foo/zarr.json"]

    async def test_list_dir(self, store: IcechunkVirtualStore) -> None:
        assert await _collect_aiterator(store.list_dir("")) == ()
        await self.set(store, "foo/c/1/0", self.buffer_cls.from_bytes(b"\x01"))
        await self._put(store, "bar/zarr.json", GROUP)
        await self._put(store, "bar/child/zarr.json", GROUP)
        for root, expected in (("", {"zarr.json", "foo", "bar"}), ("foo", {"zarr.json", "c"}),
                               ("bar", {"zarr.json", "child"})):  # fmt: skip
            assert set(await _collect_aiterator(store.list_dir(root))) == expected
            if root:
                assert set(await _collect_aiterator(store.list_dir(root + "/"))) == expected

    async def test_set_if_not_exists(self, store: IcechunkVirtualStore) -> None:
        await self.set(store, "c/0", self.buffer_cls.from_bytes(b"0000"))
        await store.set_if_not_exists("c/0", self.buffer_cls.from_bytes(b"1111"))
        assert (await store.get("c/0", default_buffer_prototype())).to_bytes() == b"0000"  # type: ignore[union-attr]
        await store.set_if_not_exists("c/1", self.buffer_cls.from_bytes(b"1111"))
        assert (await store.get("c/1", default_buffer_prototype())).to_bytes() == b"1111"  # type: ignore[union-attr]

    # ---- the synchronous surface, on real chunk keys -------------------------------------------
    def test_get_sync(self, store: IcechunkVirtualStore) -> None:
        from zarr.core.sync import sync

        sync(self.set(store, "c/5", self.buffer_cls.from_bytes(b"\x01\x02")))
        assert_bytes_equal(store.get_sync("c/5"), self.buffer_cls.from_bytes(b"\x01\x02"))

    def test_get_sync_missing(self, store: IcechunkVirtualStore) -> None:
        from zarr.core.sync import sync

        sync(self._make_array(store, "c/0"))
        assert store.get_sync("c/7") is None
        assert store.get_sync("nonexistent") is None

    def test_set_sync(self, store: IcechunkVirtualStore) -> None:
        from zarr.core.sync import sync

        sync(self._make_array(store, "c/0"))
        store.set_sync("c/4", self.buffer_cls.from_bytes(b"\x01\x02\x03\x04"))
        assert sync(self.get(store, "c/4")).to_bytes() == b"\x01\x02\x03\x04"

    def test_delete_sync(self, store: IcechunkVirtualStore) -> None:
        from zarr.core.sync import sync

        sync(self._make_array(store, "c/0"))
        store.set_sync("c/4", self.buffer_cls.from_bytes(b"\x01"))
        store.delete_sync("c/4")
        assert store.get_sync("c/4") is None

    def test_delete_sync_missing(self, store: IcechunkVirtualStore) -> None:
        store.delete_sync("nonexistent_sync")

    @pytest.mark.parametrize("direction", ["set_async_get_sync", "set_sync_get_async"])
    async def test_sync_async_set_get_parity(
        self, store: IcechunkVirtualStore, direction: str
    ) -> None:
        await self._make_array(store, "c/0")
        data = self.buffer_cls.from_bytes(b"\x01\x02\x03\x04")
        if direction == "set_async_get_sync":
            await store.set("c/9", data)
            result = store.get_sync("c/9")
        else:
            store.set_sync("c/9", data)
            result = await store.get("c/9", prototype=default_buffer_prototype())
        assert result is not None
        assert_bytes_equal(result, data)

    async def test_delete_sync_visible_to_async_get(self, store: IcechunkVirtualStore) -> None:
        await self._make_array(store, "c/0")
        await store.set("c/8", self.buffer_cls.from_bytes(b"\x01"))
        store.delete_sync("c/8")
        assert await store.get("c/8", prototype=default_buffer_prototype()) is None

    @pytest.mark.parametrize(
        "byte_range",
        [None, RangeByteRequest(1, 4), OffsetByteRequest(1), SuffixByteRequest(1),
         RangeByteRequest(10, 20)],
    )  # fmt: skip
    async def test_get_sync_byte_range_parity(
        self, store: IcechunkVirtualStore, byte_range: Any
    ) -> None:  # type: ignore[override]
        await self._make_array(store, "c/0")
        await self._put(store, "c/6", b"\x01\x02\x03\x04")
        synchronous = store.get_sync("c/6", byte_range=byte_range)
        asynchronous = await store.get(
            "c/6", prototype=default_buffer_prototype(), byte_range=byte_range
        )
        assert synchronous is not None and asynchronous is not None
        assert_bytes_equal(synchronous, asynchronous)


class TestReadOnlyStore(TestWritableStore):
    """The store of a read-only session, pinned to a committed snapshot: every read test above
    against what a reader of the repository sees, every write refused in zarr's words.

    The hooks write through a writable session on the same repository, commit, and move the
    store to a read-only session on the new snapshot (what reopening it would give), so reads
    come from manifests and snapshots in storage, not from a change set.
    """

    @pytest.fixture
    def store_kwargs(self) -> dict[str, Any]:
        self.repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
        self.writer = self.repo.writable_session().async_session
        return {"session": self.repo.readonly_session().async_session}

    async def set(self, store: IcechunkVirtualStore, key: str, value: Buffer) -> None:
        await super().set(IcechunkVirtualStore(self.writer), key, value)
        snapshot_id = await self.writer.commit(f"set {key}")
        reader = await self.repo.async_repository.readonly_session(snapshot_id=snapshot_id)
        store._session, store._keys = reader, ChunkKeys(reader)

    async def _put(self, store: IcechunkVirtualStore, key: str, data: bytes) -> None:
        await self.set(store, key, self.buffer_cls.from_bytes(data))

    def test_store_read_only(self, store: IcechunkVirtualStore) -> None:
        assert store.read_only
        with pytest.raises(AttributeError):
            store.read_only = False  # type: ignore[misc]

    @pytest.mark.parametrize("read_only", [True, False])
    async def test_store_open_read_only(self, open_kwargs: dict[str, Any], read_only: bool) -> None:
        if read_only:
            store = await self.store_cls.open(**{**open_kwargs, "read_only": True})
            assert store._is_open and store.read_only
            return
        with pytest.raises(ValueError, match="read-only session") as caught:
            await self.store_cls.open(**{**open_kwargs, "read_only": False})
        assert isinstance(caught.value, iv.ReadOnlyError)

    async def test_with_read_only_store(self, open_kwargs: dict[str, Any]) -> None:
        store = await self.store_cls.open(**open_kwargs)
        assert store.with_read_only(read_only=True).read_only
        with pytest.raises(iv.ReadOnlyError, match="read-only session"):
            store.with_read_only(read_only=False)

    async def test_serializable_store(self, store: IcechunkVirtualStore) -> None:
        """zarr's test, reading back instead of writing: the copy is equal and reads the same."""
        await self._put(store, "zarr.json", GROUP)
        new_store = pickle.loads(pickle.dumps(store))
        assert new_store == store
        assert new_store.read_only and new_store.session is not store.session
        observed = await new_store.get("zarr.json", prototype=default_buffer_prototype())
        assert observed is not None and observed.to_bytes() == GROUP

    # ---- every write is refused, in zarr's words, and changes nothing --------------------------
    async def _refused(self, store: IcechunkVirtualStore, write: Any) -> None:
        before = sorted(await _collect_aiterator(store.list()))
        with pytest.raises(ValueError, match="store was opened in read-only mode") as caught:
            await write()
        assert isinstance(caught.value, iv.ReadOnlyError)
        assert sorted(await _collect_aiterator(store.list())) == before

    @pytest.mark.parametrize("key", [*CHUNK_KEYS, "zarr.json"])
    @pytest.mark.parametrize("data", [b"\x01\x02\x03\x04", b""])
    async def test_set(self, store: IcechunkVirtualStore, key: str, data: bytes) -> None:  # type: ignore[override]
        if key != "zarr.json":
            await self._make_array(store, key)
        await self._refused(store, lambda: store.set(key, self.buffer_cls.from_bytes(data)))

    async def test_set_not_open(self, store_not_open: IcechunkVirtualStore) -> None:
        await self._refused(store_not_open, lambda: store_not_open.set("zarr.json", GROUP_BUF))

    async def test_set_many(self, store: IcechunkVirtualStore) -> None:
        pairs = [("zarr.json", GROUP_BUF)]
        await self._refused(store, lambda: store._set_many(iter(pairs)))

    async def test_set_if_not_exists(self, store: IcechunkVirtualStore) -> None:
        await self._refused(store, lambda: store.set_if_not_exists("zarr.json", GROUP_BUF))
        await self._put(store, "zarr.json", GROUP)  # refused even where it would do nothing
        await self._refused(store, lambda: store.set_if_not_exists("zarr.json", GROUP_BUF))

    async def test_delete(self, store: IcechunkVirtualStore) -> None:
        await self._put(store, "foo/zarr.json", GROUP)
        await self._refused(store, lambda: store.delete("foo/zarr.json"))

    async def test_delete_nonexistent_key_does_not_raise(self, store: IcechunkVirtualStore) -> None:
        await self._refused(store, lambda: store.delete("nonexistent_key"))

    async def test_delete_dir(self, store: IcechunkVirtualStore) -> None:
        await self.set(store, "foo/c/0/0", self.buffer_cls.from_bytes(b"chunk"))
        await self._refused(store, lambda: store.delete_dir("foo"))

    async def test_clear(self, store: IcechunkVirtualStore) -> None:
        await self.set(store, "foo/c/0/0", self.buffer_cls.from_bytes(b"something"))
        await self._refused(store, store.clear)

    async def test_set_sync(self, store: IcechunkVirtualStore) -> None:  # type: ignore[override]
        await self._make_array(store, "c/0")
        await self._refused(store, _in_thread(store.set_sync, "c/4", GROUP_BUF))

    async def test_delete_sync(self, store: IcechunkVirtualStore) -> None:  # type: ignore[override]
        await self.set(store, "c/4", self.buffer_cls.from_bytes(b"\x01"))
        await self._refused(store, _in_thread(store.delete_sync, "c/4"))

    async def test_delete_sync_missing(self, store: IcechunkVirtualStore) -> None:  # type: ignore[override]
        await self._refused(store, _in_thread(store.delete_sync, "nonexistent_sync"))

    @pytest.mark.parametrize("direction", ["set_async_get_sync", "set_sync_get_async"])
    async def test_sync_async_set_get_parity(
        self, store: IcechunkVirtualStore, direction: str
    ) -> None:
        await self._make_array(store, "c/0")
        data = self.buffer_cls.from_bytes(b"\x01\x02\x03\x04")
        if direction == "set_async_get_sync":
            await self._refused(store, lambda: store.set("c/9", data))
        else:
            await self._refused(store, _in_thread(store.set_sync, "c/9", data))
        await self.set(store, "c/9", data)  # the same bytes, committed, read both ways
        assert_bytes_equal(await asyncio.to_thread(store.get_sync, "c/9"), data)
        got = await store.get("c/9", prototype=default_buffer_prototype())
        assert got is not None
        assert_bytes_equal(got, data)

    async def test_delete_sync_visible_to_async_get(self, store: IcechunkVirtualStore) -> None:
        await self.set(store, "c/8", self.buffer_cls.from_bytes(b"\x01"))
        await self._refused(store, _in_thread(store.delete_sync, "c/8"))
        assert await store.get("c/8", prototype=default_buffer_prototype()) is not None


GROUP_BUF = cpu.Buffer.from_bytes(GROUP)


def _in_thread(func: Any, *args: Any) -> Any:
    """A coroutine factory running a sync store method off the event loop (as zarr's sync
    surface must be called)."""
    return lambda: asyncio.to_thread(func, *args)


async def test_set_refuses_what_is_not_a_buffer() -> None:
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    store = repo.writable_session().store

    class Lookalike:
        def to_bytes(self) -> bytes:
            return GROUP

    with pytest.raises(TypeError, match="must be a Buffer instance"):
        await store.set("zarr.json", Lookalike())  # type: ignore[arg-type]
    with pytest.raises(iv.InvalidInputError, match=r"'zarr\.json' is not a JSON document"):
        await store.set("zarr.json", cpu.Buffer.from_bytes(b"\x01\x02"))
