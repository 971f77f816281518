"""Branches, tags, history, time travel, rollback and diff."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import zarr

import icechunk_virtual as iv


@pytest.fixture
def repo(location) -> iv.Repository:  # type: ignore[no-untyped-def]
    return iv.Repository.create(location.url, storage_options=location.storage_options)


def _write(
    repo: iv.Repository, values: list[int], *, branch: str = "main", message: str = ""
) -> iv.SnapshotId:
    session = repo.writable_session(branch)
    group = zarr.open_group(session.store, mode="a")
    if "x" not in group:
        group.create_array("x", shape=(len(values),), chunks=(2,), dtype="i8", fill_value=0)
    zarr.open_array(session.store, path="x")[:] = values
    return session.commit(message or f"write {values}")


def _read(session: iv.Session) -> list[int]:
    return list(zarr.open_array(session.store, path="x", mode="r")[:])


def test_create_open_and_open_or_create(location) -> None:  # type: ignore[no-untyped-def]
    opts = location.storage_options
    with pytest.raises(iv.RepositoryNotFoundError, match="no repository"):
        iv.Repository.open(location.url, storage_options=opts)
    repo = iv.Repository.open_or_create(location.url, storage_options=opts)
    with pytest.raises(iv.AlreadyExistsError, match="already exists"):
        iv.Repository.create(location.url, storage_options=opts)
    again = iv.Repository.open_or_create(location.url, storage_options=opts)
    assert again.lookup_branch("main") == repo.lookup_branch("main")
    assert repo.list_branches() == ["main"]
    [initial] = list(repo.ancestry(branch="main"))
    assert initial.message == "Repository initialized" and initial.parent_id is None


def test_config_round_trips(location) -> None:  # type: ignore[no-untyped-def]
    config = iv.RepositoryConfig(manifest_split_rows=7, inline_chunk_threshold_bytes=0)
    iv.Repository.create(location.url, storage_options=location.storage_options, config=config)
    assert (
        iv.Repository.open(location.url, storage_options=location.storage_options).config == config
    )
    with pytest.raises(iv.InvalidInputError, match="manifest_split_rows"):
        iv.RepositoryConfig(manifest_split_rows=0)


def test_ancestry_is_newest_first_with_messages_and_metadata(repo: iv.Repository) -> None:
    first = _write(repo, [1, 2, 3])
    session = repo.writable_session()
    zarr.open_array(session.store, path="x")[0] = 9
    second = session.commit("second", metadata={"author": "test", "n": 2})
    history = list(repo.ancestry(branch="main"))
    assert [h.id for h in history[:2]] == [second, first]
    assert history[0].parent_id == first
    assert history[0].message == "second" and dict(history[0].metadata) == {
        "author": "test",
        "n": 2,
    }
    assert history[0].written_at >= history[1].written_at
    assert [h.id for h in repo.ancestry(snapshot_id=first)] == [h.id for h in history[1:]]


def test_branches_are_independent_and_deletable(repo: iv.Repository) -> None:
    base = _write(repo, [1, 1])
    repo.create_branch("dev", base)
    _write(repo, [2, 2], branch="dev")
    assert _read(repo.readonly_session("main")) == [1, 1]
    assert _read(repo.readonly_session("dev")) == [2, 2]
    assert repo.list_branches() == ["dev", "main"]
    with pytest.raises(iv.AlreadyExistsError, match="dev"):
        repo.create_branch("dev", base)
    repo.delete_branch("dev")
    assert repo.list_branches() == ["main"]
    with pytest.raises(iv.RefNotFoundError, match="dev"):
        repo.lookup_branch("dev")
    repo.create_branch("dev", base)  # a deleted branch's name may be reused
    assert _read(repo.readonly_session("dev")) == [1, 1]
    with pytest.raises(iv.InvalidInputError):
        repo.delete_branch("main")
    with pytest.raises(iv.InvalidInputError, match="invalid"):
        repo.create_branch("a/b", base)
    with pytest.raises(iv.SnapshotNotFoundError):
        repo.create_branch("other", "0" * 20)


def test_tags_are_immutable_and_names_never_reused(repo: iv.Repository) -> None:
    first = _write(repo, [1, 1])
    second = _write(repo, [2, 2])
    repo.create_tag("v1", first)
    assert repo.lookup_tag("v1") == first
    assert _read(repo.readonly_session(tag="v1")) == [1, 1]
    with pytest.raises(iv.AlreadyExistsError):
        repo.create_tag("v1", second)
    repo.delete_tag("v1")
    assert repo.list_tags() == []
    with pytest.raises(iv.RefNotFoundError, match="deleted"):
        repo.lookup_tag("v1")
    with pytest.raises(iv.AlreadyExistsError, match="never reused"):
        repo.create_tag("v1", second)
    with pytest.raises(iv.ReadOnlyError):
        repo.readonly_session(snapshot_id=first).commit("x")


def test_time_travel_by_snapshot_and_as_of(repo: iv.Repository) -> None:
    first = _write(repo, [1, 1])
    time.sleep(0.01)
    between = datetime.now(UTC)
    time.sleep(0.01)
    _write(repo, [2, 2])
    assert _read(repo.readonly_session(snapshot_id=first)) == [1, 1]
    assert repo.readonly_session("main", as_of=between).snapshot_id == first
    assert _read(repo.readonly_session("main", as_of=datetime.now(UTC))) == [2, 2]
    with pytest.raises(iv.SnapshotNotFoundError, match="at or before"):
        repo.readonly_session("main", as_of=datetime(2000, 1, 1, tzinfo=UTC))
    with pytest.raises(iv.InvalidInputError, match="timezone"):
        repo.readonly_session("main", as_of=datetime(2030, 1, 1))


def test_reset_branch_rolls_back(repo: iv.Repository) -> None:
    first = _write(repo, [1, 1])
    _write(repo, [2, 2])
    repo.reset_branch("main", first)
    assert repo.lookup_branch("main") == first
    assert _read(repo.readonly_session()) == [1, 1]
    third = _write(repo, [3, 3])  # commits continue from the rolled-back tip
    assert [h.id for h in repo.ancestry(branch="main")][:2] == [third, first]


def test_a_session_opened_before_a_reset_cannot_commit_over_it(repo: iv.Repository) -> None:
    first = _write(repo, [1, 1])
    _write(repo, [2, 2])
    stale = repo.writable_session()
    zarr.open_array(stale.store, path="x")[0] = 5
    repo.reset_branch("main", first)
    with pytest.raises(iv.ConflictError, match="reset"):
        stale.commit("over the reset")
    assert repo.lookup_branch("main") == first


def test_diff_reports_exactly_what_changed(repo: iv.Repository) -> None:
    session = repo.writable_session()
    root = zarr.open_group(session.store, mode="a")
    root.create_group("g").attrs["a"] = 1
    root.create_group("gone")
    root.create_array("x", shape=(6, 6), chunks=(2, 2), dtype="i4", fill_value=0)[:] = 1
    root.create_array("y", shape=(4,), chunks=(2,), dtype="i4")[:] = 1
    before = session.commit("before")
    session = repo.writable_session()
    root = zarr.open_group(session.store, mode="a")
    x = root["x"]
    x[0:2, 2:4] = 5  # chunk (0, 1)
    x[4:6, 4:6] = 0  # chunk (2, 2): rewritten with fill values (zarr deletes it)
    root["g"].attrs["a"] = 2
    del root["gone"]
    root.create_array("z", shape=(2,), chunks=(2,), dtype="i4")[:] = 3
    root["y"].attrs["units"] = "m"
    after = session.commit("after")
    diff = repo.diff(before, after)
    assert diff.new_arrays == {"/z"} and diff.new_groups == set()
    assert diff.deleted_groups == {"/gone"} and diff.deleted_arrays == set()
    assert diff.updated_groups == {"/g"}
    assert diff.updated_arrays == {"/y"}
    assert diff.chunk_set("/x") == {(0, 1), (2, 2)}
    assert diff.chunk_set("/z") == {(0,)}
    assert set(diff.updated_chunks) == {"/x", "/z"}
    assert repo.diff(after, after).is_empty()
    assert repo.diff(after, before).chunk_set("/x") == diff.chunk_set("/x")


def test_transaction_log_of_a_zero_dimensional_array_round_trips() -> None:
    import numpy as np

    from icechunk_virtual.format.transaction import TransactionLog

    log = TransactionLog(chunks={"/scalar": np.zeros((1, 0), dtype="<i4"), "/v": np.ones((2, 1))})
    back = TransactionLog.from_bytes(log.to_bytes(), where="test")
    assert back.chunks["/scalar"].shape == (1, 0)
    assert back.chunks["/v"].tolist() == [[1], [1]]
