"""Zarr and xarray round trips through a session's store, on every backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

import icechunk_virtual as iv

NUMERIC_DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128", ">i4", ">f8",
]  # fmt: skip


@pytest.fixture
def repo(location) -> iv.Repository:  # type: ignore[no-untyped-def]
    return iv.Repository.create(location.url, storage_options=location.storage_options)


def _reopen(repo: iv.Repository, location) -> iv.Repository:  # type: ignore[no-untyped-def]
    return iv.Repository.open(location.url, storage_options=location.storage_options)


def test_numeric_dtypes_round_trip(repo: iv.Repository, location) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    session = repo.writable_session()
    root = zarr.open_group(session.store, mode="a")
    expected = {}
    for dtype in NUMERIC_DTYPES:
        data = (rng.random((7, 5)) * 100).astype(dtype)
        name = "d_" + np.dtype(dtype).str.replace("<", "le").replace(">", "be").replace("|", "")
        root.create_array(name, shape=data.shape, chunks=(3, 2), dtype=dtype)[:] = data
        expected[name] = data
    session.commit("all dtypes")
    group = zarr.open_group(_reopen(repo, location).readonly_session().store, mode="r")
    for name, data in expected.items():
        back = group[name][:]
        # zarr v3 keeps byte order in the ``bytes`` codec and returns native-order arrays
        assert back.dtype == data.dtype.newbyteorder("="), name
        np.testing.assert_array_equal(back, data, err_msg=name)


def test_strings_fill_values_attributes_nested_groups(repo: iv.Repository, location) -> None:  # type: ignore[no-untyped-def]
    session = repo.writable_session()
    root = zarr.open_group(session.store, mode="a")
    deep = root.create_group("a").create_group("b").create_group("c")
    deep.attrs.update({"title": "deep", "n": 3, "nested": {"x": [1, 2]}})
    words = np.array(["alpha", "β", "", "a longer string"], dtype=object)
    strings = deep.create_array("words", shape=(4,), chunks=(3,), dtype=str)
    strings[:] = words
    filled = deep.create_array("sparse", shape=(10,), chunks=(2,), dtype="i4", fill_value=-9)
    filled[4:6] = [1, 2]
    floats = root.create_array("nan_fill", shape=(4,), chunks=(2,), dtype="f8", fill_value=np.nan)
    floats[:2] = [1.5, 2.5]
    floats.attrs["units"] = "K"
    session.commit("strings and fills")
    group = zarr.open_group(_reopen(repo, location).readonly_session().store, mode="r")
    assert dict(group["a/b/c"].attrs) == {"title": "deep", "n": 3, "nested": {"x": [1, 2]}}
    assert list(group["a/b/c/words"][:]) == list(words)
    np.testing.assert_array_equal(group["a/b/c/sparse"][:], [-9, -9, -9, -9, 1, 2, -9, -9, -9, -9])
    np.testing.assert_array_equal(group["nan_fill"][:], [1.5, 2.5, np.nan, np.nan])
    assert group["nan_fill"].attrs["units"] == "K"
    assert sorted(group.group_keys()) == ["a"]
    assert sorted(k for k, _ in group["a/b"].members()) == ["c"]


def test_xarray_dataset_round_trip(repo: iv.Repository, location) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    ds = xr.Dataset(
        {
            "t2m": (("time", "lat", "lon"), rng.random((6, 4, 5)).astype("f4"), {"units": "K"}),
            "flag": (("time",), np.array([1, 0, 1, 1, 0, 1], dtype="i1")),
        },
        coords={
            "time": np.arange("2024-01-01", "2024-01-07", dtype="datetime64[D]").astype(
                "datetime64[ns]"
            ),
            "lat": np.linspace(-10, 10, 4),
            "lon": np.linspace(0, 40, 5),
        },
        attrs={"source": "test"},
    )
    session = repo.writable_session()
    ds.to_zarr(session.store, consolidated=False, encoding={"t2m": {"chunks": (2, 4, 5)}})
    session.commit("dataset")
    back = xr.open_zarr(_reopen(repo, location).readonly_session().store, consolidated=False)
    xr.testing.assert_identical(back.load(), ds)


def test_uncommitted_writes_are_visible_to_the_session_only(repo: iv.Repository) -> None:
    session = repo.writable_session()
    arr = zarr.open_group(session.store, mode="a").create_array(
        "x", shape=(4,), chunks=(2,), dtype="i8"
    )
    arr[:] = [1, 2, 3, 4]
    assert session.has_uncommitted_changes
    np.testing.assert_array_equal(
        zarr.open_array(session.store, path="x", mode="r")[:], [1, 2, 3, 4]
    )
    with pytest.raises(zarr.errors.GroupNotFoundError):  # a new repository holds no nodes
        zarr.open_group(repo.readonly_session().store, mode="r")
    session.discard_changes()
    assert not session.has_uncommitted_changes
    with pytest.raises(zarr.errors.GroupNotFoundError):
        zarr.open_group(session.store, mode="r")


def test_overwrite_and_delete(repo: iv.Repository) -> None:
    session = repo.writable_session()
    group = zarr.open_group(session.store, mode="a")
    group.create_array("x", shape=(4,), chunks=(2,), dtype="i8")[:] = [1, 2, 3, 4]
    group.create_array("gone", shape=(2,), chunks=(2,), dtype="i8")[:] = [7, 7]
    session.commit("two arrays")
    session = repo.writable_session()
    group = zarr.open_group(session.store, mode="a")
    # re-creating an array drops its old chunks
    group.create_array("x", shape=(4,), chunks=(2,), dtype="i8", fill_value=0, overwrite=True)[
        :2
    ] = [9, 9]
    del group["gone"]
    session.commit("overwrite x, delete gone")
    group = zarr.open_group(repo.readonly_session().store, mode="r")
    np.testing.assert_array_equal(group["x"][:], [9, 9, 0, 0])
    assert "gone" not in group


def test_read_only_sessions_refuse_writes(repo: iv.Repository) -> None:
    from zarr.core.buffer import default_buffer_prototype

    group_json = default_buffer_prototype().buffer.from_bytes(
        b'{"zarr_format": 3, "node_type": "group", "attributes": {}}'
    )
    session = repo.readonly_session()
    with pytest.raises(iv.ReadOnlyError, match="read-only"):
        session.store.set_sync("zarr.json", group_json)
    with pytest.raises(iv.ReadOnlyError):
        session.commit("nope")
    writable = repo.writable_session()
    with pytest.raises(iv.ReadOnlyError):
        writable.store.with_read_only(True).set_sync("zarr.json", group_json)
    writable.store.set_sync("zarr.json", group_json)
    assert writable.has_uncommitted_changes


def test_commit_without_changes_is_refused(repo: iv.Repository) -> None:
    with pytest.raises(iv.NoChangesToCommitError, match="main"):
        repo.writable_session().commit("empty")


def test_sync_surface_reads_and_writes(repo: iv.Repository) -> None:
    from zarr.core.buffer import default_buffer_prototype

    session = repo.writable_session()
    zarr.open_group(session.store, mode="a").create_array(
        "x", shape=(4,), chunks=(2,), dtype="u1", compressors=None
    )
    buf = default_buffer_prototype().buffer.from_bytes(b"\x01\x02")
    session.store.set_sync("x/c/1", buf)
    assert session.store.get_sync("x/c/1").to_bytes() == b"\x01\x02"  # type: ignore[union-attr]
    np.testing.assert_array_equal(zarr.open_array(session.store, path="x")[:], [0, 0, 1, 2])
    session.store.delete_sync("x/c/1")
    assert session.store.get_sync("x/c/1") is None


def test_keys_that_are_neither_metadata_nor_chunks_are_refused(repo: iv.Repository) -> None:
    from zarr.core.buffer import default_buffer_prototype

    session = repo.writable_session()
    buf = default_buffer_prototype().buffer.from_bytes(b"{}")
    with pytest.raises(iv.InvalidInputError, match=r"'\.zarray' is neither Zarr v3"):
        session.store.set_sync(".zarray", buf)
    assert session.store.get_sync(".zarray") is None


def test_partial_values_of_one_key_keep_each_byte_range(repo: iv.Repository) -> None:
    from zarr.abc.store import RangeByteRequest
    from zarr.core.buffer import default_buffer_prototype

    from icechunk_virtual._sync import sync

    session = repo.writable_session()
    zarr.open_group(session.store, mode="a").create_array(
        "x", shape=(8,), chunks=(8,), dtype="u1", compressors=None
    )
    prototype = default_buffer_prototype()
    session.store.set_sync("x/c/0", prototype.buffer.from_bytes(bytes(range(8))))
    got = sync(
        session.store.get_partial_values(
            prototype, [("x/c/0", RangeByteRequest(0, 2)), ("x/c/0", RangeByteRequest(5, 8))]
        )
    )
    assert [b.to_bytes() for b in got] == [b"\x00\x01", b"\x05\x06\x07"]  # type: ignore[union-attr]


def test_cold_chunk_reads_on_local_disk_need_no_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zarr's sync surface reads a chunk of a repository on local disk entirely in the calling
    thread, even before its manifest is loaded (no hop to the IO thread)."""
    import icechunk_virtual.zarr.store as store_module

    repo = iv.Repository.create(str(tmp_path / "repo"))
    session = repo.writable_session()
    array = zarr.open_group(session.store, mode="a").create_array(
        "a", shape=(4, 1000), chunks=(1, 1000), dtype="f8", compressors=None
    )
    array[:] = np.arange(4000.0).reshape(4, 1000)
    session.commit("native chunks")
    store = iv.Repository.open(str(tmp_path / "repo")).readonly_session().store

    def no_loop(coro: object) -> object:
        raise AssertionError("went through the event loop")

    monkeypatch.setattr(store_module, "sync", no_loop)
    data = store.get_sync("a/c/2/0")
    assert data is not None
    np.testing.assert_array_equal(np.frombuffer(data.to_bytes(), "<f8"), np.arange(2000.0, 3000.0))
