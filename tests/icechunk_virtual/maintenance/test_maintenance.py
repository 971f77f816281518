"""expire_snapshots and garbage_collect: history shortened, garbage deleted, nothing needed lost."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import zarr

import icechunk_virtual as iv
from icechunk_virtual._sync import sync
from icechunk_virtual.errors import InvalidInputError

# 1000 float64 values: above the inline threshold, so every chunk is a native chunk object.
CHUNK = 1000


def commit_values(repo: iv.Repository, value: float, *, branch: str = "main") -> iv.SnapshotId:
    """Overwrite the whole array ``/a`` (two native chunks) with ``value`` and commit."""
    session = repo.writable_session(branch)
    group = zarr.open_group(session.store, mode="a")
    if "a" not in group:
        group.create_array("a", shape=(2 * CHUNK,), chunks=(CHUNK,), dtype="f8", compressors=None)
    zarr.open_array(session.store, path="a")[:] = value
    return session.commit(f"a = {value}")


def count_objects(repo: iv.Repository) -> dict[str, int]:
    keys = sync(repo._async.storage.list(""))
    counts: dict[str, int] = {}
    for key in keys:
        kind = key.partition("/")[0]
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def values_at(repo: iv.Repository, snapshot_id: iv.SnapshotId) -> np.ndarray:
    store = repo.readonly_session(snapshot_id=snapshot_id).store
    return zarr.open_array(store, path="a", mode="r")[:]


def pause() -> datetime:
    """A moment strictly between the commits before and after it."""
    time.sleep(0.05)
    moment = datetime.now(UTC)
    time.sleep(0.05)
    return moment


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_expire_then_gc_keeps_tips_tags_and_recent_history(
    backend: str, request: pytest.FixtureRequest
) -> None:
    location = request.getfixturevalue(f"{backend}_location")
    repo = iv.Repository.create(location.url, storage_options=location.storage_options)
    root = repo.lookup_branch("main")
    a = commit_values(repo, 1.0)
    repo.create_branch("old", a)
    b = commit_values(repo, 2.0)
    repo.create_tag("keep", b)
    c = commit_values(repo, 3.0)
    cutoff = pause()
    d = commit_values(repo, 4.0)
    e = commit_values(repo, 5.0)

    report = repo.expire_snapshots(cutoff, delete_expired_branches=True)

    assert report.deleted_branches == ("old",)
    assert report.expired_snapshots == 2  # a and c
    assert report.rewritten_snapshots == 2  # d skips c, b skips a
    assert [i.id for i in repo.ancestry(branch="main")] == [e, d, b, root]
    assert repo.list_branches() == ["main"]

    before = count_objects(repo)
    gc = repo.garbage_collect(datetime.now(UTC))
    assert (gc.snapshots, gc.transactions) == (2, 2)
    assert gc.chunks == 4  # a's and c's two chunks each
    assert gc.manifests == 2
    assert count_objects(repo)["chunks"] == before["chunks"] - 4
    for snapshot_id, value in ((e, 5.0), (d, 4.0), (b, 2.0)):
        np.testing.assert_array_equal(values_at(repo, snapshot_id), value)
    with pytest.raises(iv.SnapshotNotFoundError):
        repo.readonly_session(snapshot_id=c)
    assert repo.fsck().ok
    assert repo.garbage_collect(datetime.now(UTC)).total == 0  # nothing left to collect


def test_expired_tags_are_deleted_only_when_asked(tmp_path: Path) -> None:
    repo = iv.Repository.create(str(tmp_path / "repo"))
    a = commit_values(repo, 1.0)
    repo.create_tag("v1", a)
    cutoff = pause()
    commit_values(repo, 2.0)
    assert repo.expire_snapshots(cutoff).deleted_tags == ()
    assert a in [i.id for i in repo.ancestry(branch="main")]  # tagged: kept in history
    report = repo.expire_snapshots(cutoff, delete_expired_tags=True)
    assert report.deleted_tags == ("v1",)
    assert a not in [i.id for i in repo.ancestry(branch="main")]


def test_gc_never_deletes_objects_newer_than_the_cutoff(tmp_path: Path) -> None:
    repo = iv.Repository.create(str(tmp_path / "repo"))
    commit_values(repo, 1.0)
    commit_values(repo, 2.0)
    repo.reset_branch("main", next(repo.ancestry(branch="main")).parent_id)  # 2.0 unreachable
    assert repo.garbage_collect(datetime.now(UTC) - timedelta(hours=1)).total == 0
    collected = repo.garbage_collect(datetime.now(UTC))
    assert (collected.snapshots, collected.chunks) == (1, 2)
    np.testing.assert_array_equal(values_at(repo, repo.lookup_branch("main")), 1.0)


def test_gc_removes_old_leftovers_of_interrupted_writes(tmp_path: Path) -> None:
    repo = iv.Repository.create(str(tmp_path / "repo"))
    commit_values(repo, 1.0)
    leftover = tmp_path / "repo" / "chunks" / ".tmp-abandoned"
    leftover.write_bytes(b"half a chunk")
    fresh = tmp_path / "repo" / "chunks" / ".tmp-in-flight"
    fresh.write_bytes(b"being written")
    an_hour_ago = time.time() - 3600
    os.utime(leftover, (an_hour_ago, an_hour_ago))
    report = repo.garbage_collect(datetime.now(UTC) - timedelta(minutes=5))
    assert report.leftovers == 1
    assert not leftover.exists()
    assert fresh.exists()


def test_cutoff_needs_a_timezone(tmp_path: Path) -> None:
    repo = iv.Repository.create(str(tmp_path / "repo"))
    with pytest.raises(InvalidInputError, match="timezone"):
        repo.garbage_collect(datetime.now())
    with pytest.raises(InvalidInputError, match="timezone"):
        repo.expire_snapshots(datetime.now())


def test_gc_refuses_to_run_when_a_reachable_snapshot_is_unreadable(tmp_path: Path) -> None:
    repo = iv.Repository.create(str(tmp_path / "repo"))
    tip = commit_values(repo, 1.0)
    (tmp_path / "repo" / "snapshots" / str(tip)).write_bytes(b"{not json")
    reopened = iv.Repository.open(str(tmp_path / "repo"))
    with pytest.raises(iv.FormatError, match=str(tip)):
        reopened.garbage_collect(datetime.now(UTC))
    assert count_objects(reopened)["chunks"] == 2


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_expire_and_gc_while_other_processes_commit(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from ..repository.test_concurrency import start_workers

    location = request.getfixturevalue(f"{backend}_location")
    repo = iv.Repository.create(location.url, storage_options=location.storage_options)
    for v in range(4):  # old history with garbage in it
        commit_values(repo, float(v))
    cutoff = pause()
    go = tmp_path / "go"
    workers, commits = 4, 4
    procs = start_workers(location, workers, commits, go)
    go.touch()
    expired = collected = 0
    while any(p.poll() is None for p in procs):
        expired += repo.expire_snapshots(cutoff).expired_snapshots
        collected += repo.garbage_collect(cutoff).total
    landed: list[str] = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        landed += out.split()
    expired += repo.expire_snapshots(cutoff).expired_snapshots
    collected += repo.garbage_collect(cutoff).total
    # Every commit before the cutoff left the history: 0.0-2.0 at once, 3.0 once not the tip.
    assert expired == 4 and collected > 0
    history = {str(i.id) for i in repo.ancestry(branch="main")}
    assert set(landed) <= history
    assert len(history) == workers * commits + 1  # and the first snapshot
    group = zarr.open_group(repo.readonly_session().store, mode="r")
    np.testing.assert_array_equal(group["a"][:], 3.0)
    for w in range(workers):
        np.testing.assert_array_equal(
            group[f"w{w}"][:], np.repeat(1000 * w + np.arange(commits), 2)
        )
    report = repo.fsck()
    assert report.ok, report


def test_expiry_keeps_the_ingest_ledger_so_backfill_jobs_stay_idempotent(tmp_path: Path) -> None:
    from ..ingestion.test_combine import _write

    paths = [str(_write(tmp_path / f"{d}.nc", d, 24)) for d in ("2024-01-01", "2024-01-02")]
    repo = iv.Repository.create(str(tmp_path / "repo"))
    ingested = repo.ingest(paths, concat_dim="time", progress=False).snapshot_id
    session = repo.writable_session()
    zarr.open_group(session.store, mode="a").attrs["note"] = "edited after the ingest"
    session.commit("edit")
    report = repo.expire_snapshots(datetime.now(UTC))
    assert report.expired_snapshots == 0  # the ingest commit carries the ledger: kept
    assert ingested in [i.id for i in repo.ancestry(branch="main")]
    again = repo.ingest(paths, concat_dim="time", progress=False)
    assert again.snapshot_id is None
    assert (len(again.skipped), again.added) == (2, [])
