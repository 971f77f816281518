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

import icechunk_virtual as iv
from icechunk_virtual.read_pipeline import SlicedReadPipeline
from icechunk_virtual.store import IcechunkVirtualStore

from .test_read_path import hdf5_refs, make_array, referenced_repo, source, write_hdf5

__all__ = ["source"]  # the fixture, imported for these tests

SELECTIONS = [
    np.s_[:],
    np.s_[1:4, 3:17, 5:29],  # chunks cut on every side
    np.s_[2, :, 5],  # integer indices drop axes
    np.s_[::2, 7, ::3],
    np.s_[5],
]


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


def test_each_task_fetches_a_slice_in_one_store_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "file.h5"
    data = write_hdf5(path, compressed=True)
    repo = iv.Repository.create(str(tmp_path / "repo"))
    repo.authorize_virtual_source(f"file://{tmp_path}/")
    session = repo.writable_session()
    make_array(session, compressed=True)
    session.set_virtual_refs("/t", hdf5_refs(path, f"file://{path}"))
    session.commit("refs")
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
    arr = open_with_pipeline(repo.readonly_session().store)
    with zarr.config.set({"codec_pipeline.max_workers": 1}):
        np.testing.assert_array_equal(arr[:], data)
    assert sorted(k for keys in calls for k in keys) == [f"t/c/{i}/0/0" for i in range(6)]
    assert len(calls) < 6  # six chunks, fewer store calls


def test_read_path_errors_come_through(tmp_path: Path) -> None:
    path = tmp_path / "file.h5"
    write_hdf5(path, compressed=True)
    repo = iv.Repository.create(str(tmp_path / "repo"))
    repo.authorize_virtual_source(f"file://{tmp_path}/")
    session = repo.writable_session()
    make_array(session, compressed=True)
    session.set_virtual_refs("/t", hdf5_refs(path, f"file://{path}"))
    session.commit("refs")
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
