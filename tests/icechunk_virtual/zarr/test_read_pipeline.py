"""The engine's codec pipeline: each pool task fetches a slice of the chunks in one store call, and
reads exactly what zarr's own pipeline reads, from local and S3 sources, with every kind of chunk,
every selection, pending changes and the read path's errors."""

from __future__ import annotations

import os
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr
from zarr.codecs import BytesCodec
from zarr.codecs.numcodecs import Shuffle, Zlib

import icechunk_virtual as iv
from icechunk_virtual._sync import sync
from icechunk_virtual.zarr import read_pipeline
from icechunk_virtual.zarr.read_pipeline import SlicedReadPipeline
from icechunk_virtual.zarr.store import IcechunkVirtualStore

from ..io.test_read_path import hdf5_refs, make_array, referenced_repo, source, write_hdf5

__all__ = ["source"]  # the fixture, imported for these tests

SELECTIONS = [
    np.s_[:],
    np.s_[1:4, 3:17, 5:29],  # chunks cut on every side
    np.s_[2, :, 5],  # integer indices drop axes
    np.s_[::2, 7, ::3],
    np.s_[5],
]


def local_source(directory: Path) -> tuple[str, Path, None]:
    """The ``source`` fixture's value for files on local disk."""
    return f"file://{directory}/", directory, None


def open_with_pipeline(store: IcechunkVirtualStore, path: str = "t") -> zarr.Array:
    with zarr.config.set(iv.read_config()):
        arr = zarr.open_array(store, path=path, mode="r" if store.read_only else "a")
    assert type(arr._async_array.codec_pipeline) is SlicedReadPipeline
    return arr


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "zlib+shuffle"])
def test_reads_equal_the_source_for_every_selection(source, compressed: bool, workers: int) -> None:  # type: ignore[no-untyped-def]
    repo, path, data = referenced_repo(source, compressed=compressed)
    arr = open_with_pipeline(repo.readonly_session().store)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["t"][:], data)
    with zarr.config.set({"codec_pipeline.max_workers": workers}):
        for selection in SELECTIONS:
            np.testing.assert_array_equal(arr[selection], data[selection])


def test_native_inline_virtual_and_missing_chunks_pending_and_committed(tmp_path: Path) -> None:
    path = tmp_path / "file.h5"
    data = write_hdf5(path, compressed=True)
    repo = iv.Repository.create(
        str(tmp_path / "repo"), config=iv.RepositoryConfig(inline_chunk_threshold_bytes=3000)
    )
    repo.authorize_virtual_source(f"file://{tmp_path}/")
    session = repo.writable_session()
    make_array(session, compressed=True)
    refs = hdf5_refs(path, f"file://{path}")
    session.set_virtual_refs("/t", {k: v[:3] for k, v in refs.items()})  # type: ignore[index]
    arr = open_with_pipeline(session.store)
    arr[3] = data[3]  # native
    arr[4, :2] = 7.0  # compresses well: inline; the rest of the chunk is fill
    expected = data.copy()
    expected[4] = np.nan
    expected[4, :2] = 7.0
    expected[5] = np.nan  # never written
    with zarr.config.set({"codec_pipeline.max_workers": 2}):
        np.testing.assert_array_equal(arr[:], expected)  # pending changes of a writer
        session.commit("mixed")
        committed = open_with_pipeline(repo.readonly_session().store)
        np.testing.assert_array_equal(committed[:], expected)


def test_each_task_fetches_a_slice_in_one_store_call_and_decodes_it_fused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, _, data = referenced_repo(local_source(tmp_path), compressed=True)
    calls: list[list[str]] = []
    original = IcechunkVirtualStore.get_many_sync

    def counting(self: IcechunkVirtualStore, keys: list[str], **kwargs: object) -> object:
        calls.append(list(keys))
        return original(self, keys, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(IcechunkVirtualStore, "get_many_sync", counting)
    monkeypatch.setattr(
        IcechunkVirtualStore,
        "get_sync",
        lambda *a, **k: pytest.fail("a chunk was fetched on its own"),
    )
    # zlib + shuffle float chunks are decoded by the fused path, never by zarr's codec chain
    monkeypatch.setattr(
        read_pipeline,
        "decode_and_scatter_chunk",
        lambda *a, **k: pytest.fail("a present chunk went through zarr's codecs"),
    )
    arr = open_with_pipeline(repo.readonly_session().store)
    with zarr.config.set({"codec_pipeline.max_workers": 1}):
        np.testing.assert_array_equal(arr[:], data)
    assert sorted(k for keys in calls for k in keys) == [f"t/c/{i}/0/0" for i in range(6)]
    assert len(calls) < 6  # six chunks, fewer store calls
    # the store remembers which key prefixes are arrays, not one entry per chunk
    assert set(arr.store._keys._prefixes) == {"", "t"}  # type: ignore[attr-defined]


def test_read_path_errors_come_through(tmp_path: Path) -> None:
    repo, path, _ = referenced_repo(local_source(tmp_path), compressed=True)
    arr = open_with_pipeline(repo.readonly_session().store)
    with h5py.File(path, "a") as f:  # same size, new bytes, new mtime
        f["t"][0] = 0.0
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(iv.StaleSourceError, match=r"array '/t' chunk \(\d, 0, 0\).*file\.h5"):
        arr[:]
    path.unlink()
    arr = open_with_pipeline(repo.readonly_session().store)
    with pytest.raises(iv.SourceNotFoundError, match=r"file\.h5 does not exist"):
        arr[:]
    # the batched fetch checks authorisation before any I/O, as the single-chunk one does
    store = repo.readonly_session().store
    store.session._read_path.authorized = ("s3://elsewhere/",)
    with pytest.raises(iv.UnauthorizedSourceError, match=r"file\.h5 is not under an authorised"):
        open_with_pipeline(store)[:]


CHAINS = {
    "none": None,
    "zlib": [Zlib(level=1)],
    "shuffle": [Shuffle()],
    "shuffle+zlib": [Shuffle(), Zlib(level=6)],
}


@pytest.mark.parametrize("endian", ["little", "big"])
@pytest.mark.parametrize("chain", list(CHAINS))
@pytest.mark.parametrize("dtype", ["<f4", ">f8", "<i2", "u1", "bool", "<c8", "<M8[s]"])
def test_every_dtype_byte_order_and_chain_reads_as_with_zarrs_codecs(
    tmp_path: Path, dtype: str, chain: str, endian: str
) -> None:
    """Chunks our fused decode takes and chunks it hands to zarr's codecs read the same."""
    rng = np.random.default_rng(5)
    values = (rng.random((5, 7, 9)) * 1000).astype(dtype)
    repo = iv.Repository.create(str(tmp_path / "repo"))
    session = repo.writable_session()
    zarr.create_array(
        session.store,
        name="a",
        shape=values.shape,
        chunks=(2, 3, 9),
        dtype=values.dtype,
        serializer=BytesCodec(endian=endian),  # type: ignore[arg-type]
        compressors=CHAINS[chain],
        fill_value=0,
    )[:4] = values[:4]  # the last row of chunks stays unwritten: fill
    session.commit("native chunks")
    expected = values.copy()
    expected[4:] = 0
    arr = open_with_pipeline(repo.readonly_session().store, "a")
    plain = zarr.open_array(repo.readonly_session().store, path="a", mode="r")
    with zarr.config.set({"codec_pipeline.max_workers": 2}):
        for selection in (np.s_[:], np.s_[1:5, 2, ::2]):
            ours, zarrs = arr[selection], plain[selection]
            assert ours.dtype == zarrs.dtype
            np.testing.assert_array_equal(ours, zarrs)
            np.testing.assert_array_equal(ours, expected[selection])


def test_a_damaged_chunk_is_typed_with_zarrs_error_chained(tmp_path: Path) -> None:
    repo = iv.Repository.create(str(tmp_path / "repo"))
    session = repo.writable_session()
    zarr.create_array(
        session.store, name="a", shape=(4, 500), chunks=(1, 500), dtype="<f8",
        compressors=[Shuffle(), Zlib()],
    )[:] = np.random.default_rng(0).random((4, 500))  # fmt: skip
    session.commit("native chunks")
    chunk = max((tmp_path / "repo" / "chunks").iterdir(), key=lambda p: p.stat().st_size)
    damaged = bytearray(chunk.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    chunk.write_bytes(bytes(damaged))
    plain = zarr.open_array(repo.readonly_session().store, path="a", mode="r")
    with pytest.raises(Exception) as zarrs:
        plain[:]
    with pytest.raises(iv.CorruptChunkError, match=r"array '/a' chunk c/\d/0") as ours:
        open_with_pipeline(repo.readonly_session().store, "a")[:]
    assert type(ours.value.__cause__) is type(zarrs.value)  # the codec's own error, chained


def test_repositories_on_every_backend_read_cold_and_warm(location, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Manifests that must be fetched through the loop (S3) and ones read in the calling thread
    (disk, memory) give the same values, on a cold session and a warm one."""
    path = tmp_path / "file.h5"
    data = write_hdf5(path, compressed=True)
    repo = iv.Repository.create(location.url, storage_options=location.storage_options)
    repo.authorize_virtual_source(f"file://{tmp_path}/")
    session = repo.writable_session()
    make_array(session, compressed=True)
    session.set_virtual_refs("/t", hdf5_refs(path, f"file://{path}"))
    session.commit("refs")
    reopened = iv.Repository.open(location.url, storage_options=location.storage_options)
    arr = open_with_pipeline(reopened.readonly_session().store)
    with zarr.config.set({"codec_pipeline.max_workers": 2}):
        np.testing.assert_array_equal(arr[1:5, 3:17, 5:29], data[1:5, 3:17, 5:29])  # cold
        np.testing.assert_array_equal(arr[:], data)  # warm
    chunks = sync(
        reopened.readonly_session()._async.chunks.read_chunks(
            "t", [(5, 0, 0), (0, 0, 0), (9, 0, 0)]
        )
    )
    assert chunks[2] is None  # outside the array: not written
    with h5py.File(path, "r") as f:
        infos = [f["t"].id.get_chunk_info_by_coord((i, 0, 0)) for i in (5, 0)]
    raw = path.read_bytes()
    assert chunks[:2] == [raw[i.byte_offset : i.byte_offset + i.size] for i in infos]


def test_read_inline_runs_zarrs_reads_in_the_calling_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, path, data = referenced_repo(local_source(tmp_path), compressed=True)
    arr = open_with_pipeline(repo.readonly_session().store)
    import zarr.core.array

    def no_loop(*args: object, **kwargs: object) -> object:
        raise AssertionError("zarr's event loop was used")

    monkeypatch.setattr(zarr.core.array, "sync", no_loop)
    with zarr.config.set({"codec_pipeline.max_workers": 2}):
        got = read_pipeline.read_inline(arr, lambda a: a.getitem(np.s_[1:5, 3:17, 5:29]))
        np.testing.assert_array_equal(got, data[1:5, 3:17, 5:29])
        got = read_pipeline.read_inline(arr, lambda a: a.oindex.getitem(([0, 2, 5], 3, [1, 4])))
        np.testing.assert_array_equal(got, data[np.ix_([0, 2, 5], [3], [1, 4])][:, 0, :])
        assert read_pipeline.read_inline(arr, lambda a: a.getitem((2, 3, 4))) == data[2, 3, 4]
    # errors come through as they are
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    fresh = open_with_pipeline(repo.readonly_session().store)
    with pytest.raises(iv.StaleSourceError, match="changed since it was referenced"):
        read_pipeline.read_inline(fresh, lambda a: a.getitem(np.s_[:]))


def test_read_inline_declines_what_is_not_ours(tmp_path: Path) -> None:
    plain = zarr.create_array(zarr.storage.MemoryStore(), shape=(4,), chunks=(2,), dtype="f4")
    assert (
        read_pipeline.read_inline(plain, lambda a: a.getitem(np.s_[:])) is read_pipeline.NOT_INLINE
    )
    repo, _, _ = referenced_repo(local_source(tmp_path), compressed=True)
    default = zarr.open_array(repo.readonly_session().store, path="t", mode="r")  # zarr's pipeline
    assert read_pipeline.read_inline(default, lambda a: a.getitem(0)) is read_pipeline.NOT_INLINE
