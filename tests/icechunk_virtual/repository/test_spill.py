"""Streaming refs: a session writes an array's refs to manifest files once too many are held, so
memory stays bounded; reads, commits and conflicts behave as if nothing had been spilled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import zarr

import icechunk_virtual as iv
from icechunk_virtual._sync import sync
from icechunk_virtual.repository.session import AsyncSession

SOURCE = "s3://archive/big.nc"
N = 6000


@pytest.fixture(autouse=True)
def small_spills(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AsyncSession, "spill_rows", 1000)


def batch(start: int, stop: int, *, offset_base: int = 0) -> pa.Table:
    i = np.arange(start, stop)
    return pa.table(
        {
            "c0": pa.array(i, pa.int32()),
            "location": [SOURCE] * len(i),
            "offset": pa.array(offset_base + 100 * i, pa.uint64()),
            "length": pa.array(np.full(len(i), 100), pa.uint64()),
        }
    )


def new_repo(path: Path) -> iv.Repository:
    repo = iv.Repository.create(
        str(path),
        config=iv.RepositoryConfig(virtual_sources=("s3://archive/",), manifest_split_rows=700),
    )
    session = repo.writable_session()
    group = zarr.open_group(session.store, mode="a")
    group.create_array("big", shape=(N,), chunks=(1,), dtype="f4", compressors=None)
    group.create_array("other", shape=(4,), chunks=(1,), dtype="f4", compressors=None)
    session.commit("arrays")
    return repo


def offsets(session: iv.Session, coords: list[int]) -> list[int | None]:
    refs = [sync(session._async.chunks.chunk_ref("/big", (c,))) for c in coords]
    return [None if r is None else r.offset for r in refs]


def test_streamed_refs_read_and_commit_as_if_held_in_memory(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    session = repo.writable_session()
    for start in range(0, N, 750):  # eight batches; spills after every second one
        session.set_virtual_refs("/big", batch(start, min(start + 750, N)))
    session.set_virtual_refs("/big", batch(10, 20, offset_base=1_000_000))  # rewrites spilled ones
    spilled = session._async._changes.chunks["/big"].manifests
    assert spilled is not None and len(spilled) >= 6
    assert offsets(session, [0, 15, 5999]) == [0, 1_000_000 + 1500, 599_900]
    snapshot = session.commit("6000 refs, streamed")
    log = sync(repo._async.objects.load_transaction(snapshot))
    assert log.bulk == frozenset({"/big"})
    fresh = repo.readonly_session()
    assert offsets(fresh, [0, 15, 19, 20, 5999]) == [0, 1_001_500, 1_001_900, 2000, 599_900]
    node = sync(repo._async.load_snapshot(snapshot)).nodes["/big"]
    assert sum(m.rows for m in node.manifests) == N
    assert max(m.rows for m in node.manifests) <= 700
    assert repo.fsck().ok


def test_streaming_on_top_of_committed_refs(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    session = repo.writable_session()
    session.set_virtual_refs("/big", batch(0, 3000))
    session.commit("first half")
    session = repo.writable_session()
    for start in range(3000, N, 500):
        session.set_virtual_refs("/big", batch(start, start + 500, offset_base=7))
    session.commit("second half")
    assert offsets(repo.readonly_session(), [0, 2999, 3000, 5999]) == [0, 299_900, 300_007, 599_907]


def test_a_concurrent_change_to_a_streamed_array_conflicts(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    streaming = repo.writable_session()
    for start in range(0, 3000, 750):
        streaming.set_virtual_refs("/big", batch(start, start + 750))
    rival = repo.writable_session()
    rival.set_virtual_refs("/big", batch(5000, 5001))
    rival.commit("one chunk elsewhere in the array")
    with pytest.raises(iv.ConflictError, match="too many to compare"):
        streaming.commit("streamed")

    streaming = repo.writable_session()
    for start in range(0, 3000, 750):
        streaming.set_virtual_refs("/big", batch(start, start + 750))
    rival = repo.writable_session()
    zarr.open_array(rival.store, path="other")[:] = 1.0
    rival.commit("another array")
    streaming.commit("streamed")  # rebased: the rival touched another array
    assert offsets(repo.readonly_session(), [2999, 5000]) == [299_900, 500_000]
    np.testing.assert_array_equal(
        zarr.open_array(repo.readonly_session().store, path="other", mode="r")[:], 1.0
    )
