"""An array at the root of the store: written by zarr, numpy and dask, given virtual refs, read,
committed and diffed like any other (its chunk keys are ``c/...`` with no path before them)."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr

import icechunk_virtual as iv


@pytest.fixture
def repo(tmp_path: Path) -> iv.Repository:
    return iv.Repository.create(str(tmp_path / "repo"))


def _read(repo: iv.Repository) -> np.ndarray:
    return zarr.open_array(repo.readonly_session().store, mode="r")[...]


def test_zarr_writes_a_root_array(repo: iv.Repository) -> None:
    session = repo.writable_session()
    array = zarr.create_array(session.store, shape=(4, 6), chunks=(2, 3), dtype="f8")
    array[:] = np.arange(24.0).reshape(4, 6)
    np.testing.assert_array_equal(array[:], np.arange(24.0).reshape(4, 6))  # before commit
    first = session.commit("root array")
    np.testing.assert_array_equal(_read(repo), np.arange(24.0).reshape(4, 6))
    session = repo.writable_session()
    zarr.open_array(session.store)[0, 0] = -1.0
    second = session.commit("one chunk")
    assert _read(repo)[0, 0] == -1.0
    diff = repo.diff(first, second)
    assert diff.updated_chunks["/"].tolist() == [[0, 0]]
    keys = sorted(_list(repo.readonly_session().store))
    assert keys == ["c/0/0", "c/0/1", "c/1/0", "c/1/1", "zarr.json"]


def _list(store: iv.IcechunkVirtualStore) -> list[str]:
    from icechunk_virtual._sync import sync

    async def collect() -> list[str]:
        return [k async for k in store.list()]

    return sync(collect())


def test_save_array_and_dask_to_zarr_write_the_root(repo: iv.Repository) -> None:
    session = repo.writable_session()
    zarr.save_array(session.store, np.arange(10, dtype="i4"))
    session.commit("save_array")
    np.testing.assert_array_equal(_read(repo), np.arange(10))
    session = repo.writable_session()
    da.from_array(np.arange(12.0).reshape(3, 4), chunks=(1, 2)).to_zarr(
        session.store, overwrite=True
    )
    session.commit("dask")
    np.testing.assert_array_equal(_read(repo), np.arange(12.0).reshape(3, 4))


def test_virtual_refs_on_the_root(repo: iv.Repository, tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    values = np.arange(8, dtype="<i4")
    source.write_bytes(b"header" + values.tobytes())
    repo.authorize_virtual_source(f"file://{tmp_path}/")
    session = repo.writable_session()
    zarr.create_array(session.store, shape=(8,), chunks=(4,), dtype="<i4", compressors=None)
    session.set_virtual_refs(
        "/",
        {"coord": [[0], [1]], "location": [f"file://{source}"] * 2, "offset": [6, 22],
         "length": [16, 16]},
    )  # fmt: skip
    np.testing.assert_array_equal(zarr.open_array(session.store)[:], values)
    session.commit("virtual root")
    np.testing.assert_array_equal(_read(repo), values)
