"""A commit killed (SIGKILL) before or after each of its storage writes leaves the branch readable,
at the old snapshot or at the new one, and the repository accepts further commits."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import zarr

import icechunk_virtual as iv
from icechunk_virtual._sync import sync
from icechunk_virtual.format.refs import parse_branch_version_key

from .test_concurrency import start_worker

# A commit of one small (inline) chunk writes: manifest, transaction log, snapshot, branch ref.
WRITES_PER_COMMIT = 4


@pytest.mark.parametrize("backend", ["local", "s3"])
@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("call", range(1, WRITES_PER_COMMIT + 1))
def test_killed_commit_leaves_previous_or_new_state(
    backend: str, when: str, call: int, request: pytest.FixtureRequest
) -> None:
    location = request.getfixturevalue(f"{backend}_location")
    repo = iv.Repository.create(location.url, storage_options=location.storage_options)
    proc = start_worker(
        {
            "url": location.url,
            "storage_options": location.storage_options,
            "worker": 3,
            "commits": 2,
            "crash_at": [call, when],
        }
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    [first] = out.split()  # the first commit finished; the second was killed

    reopened = iv.Repository.open(location.url, storage_options=location.storage_options)
    tip = reopened.lookup_branch("main")
    values = zarr.open_array(reopened.readonly_session().store, path="w3", mode="r")[:]
    landed = call == WRITES_PER_COMMIT and when == "after"
    if landed:
        assert next(reopened.ancestry(branch="main")).parent_id == first
        np.testing.assert_array_equal(values, [3000, 3000, 3001, 3001])
    else:
        assert tip == first
        np.testing.assert_array_equal(values, [3000, 3000, -1, -1])
    session = reopened.writable_session()
    zarr.open_array(session.store, path="w3")[2:4] = [7, 7]
    session.commit("after the crash")
    np.testing.assert_array_equal(
        zarr.open_array(repo.readonly_session().store, path="w3", mode="r")[:], [3000, 3000, 7, 7]
    )


def kill_at_random_moments(location: Any, trials: int, seed: int) -> None:
    """``trials`` times: start a process committing in a loop, SIGKILL it after a random delay;
    the branch must name a complete commit (the last one reported or the one after it), fsck must
    be clean, and GC must leave exactly what the history needs."""
    rng = random.Random(seed)
    repo = iv.Repository.create(location.url, storage_options=location.storage_options)
    session = repo.writable_session()
    zarr.open_group(session.store, mode="a").create_array(
        "a", shape=(4, 1000), chunks=(1, 1000), dtype="i8", compressors=None
    )
    session.commit("0")
    spec = {"url": location.url, "storage_options": location.storage_options, "forever": True}
    outcomes = {"old": 0, "new": 0}
    for _ in range(trials):
        before = int(next(repo.ancestry(branch="main")).message)
        proc = start_worker(spec)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 0.25))
        proc.kill()
        out, _ = proc.communicate(timeout=60)
        reported = [before, *map(int, out.split())]
        reopened = iv.Repository.open(location.url, storage_options=location.storage_options)
        tip = int(next(reopened.ancestry(branch="main")).message)
        assert tip in (reported[-1], reported[-1] + 1), (reported, tip)
        outcomes["old" if tip == reported[-1] else "new"] += 1
        values = zarr.open_array(reopened.readonly_session().store, path="a", mode="r")[:]
        np.testing.assert_array_equal(values, tip)
        messages = [i.message for i in reopened.ancestry(branch="main")][:-1]
        assert messages == [str(n) for n in range(tip, -1, -1)]
        report = reopened.fsck()
        assert report.ok, report
    collected = repo.garbage_collect(datetime.now(UTC) + timedelta(seconds=1))
    history = len(list(repo.ancestry(branch="main")))
    counts = Counter(k.partition("/")[0] for k in sync(repo._async.storage.list_modified("")))
    assert counts["snapshots"] == counts["transactions"] == history
    assert counts["chunks"] == 4 * (history - 2)  # commits "1".. each wrote four chunks
    assert not [k for k in sync(repo._async.storage.list_modified("")) if ".tmp-" in k]
    assert repo.fsck().ok
    print(
        f"\n{location.url}: {trials} commits killed at random moments: branch at the last "
        f"reported commit {outcomes['old']} times, at the unreported next one {outcomes['new']} "
        f"times; GC removed {collected.total} leftover objects ({collected})"
    )


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_commits_killed_at_random_moments(backend: str, request: pytest.FixtureRequest) -> None:
    kill_at_random_moments(request.getfixturevalue(f"{backend}_location"), trials=4, seed=7)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "s3"])
def test_one_hundred_commits_killed_at_random_moments(
    backend: str, request: pytest.FixtureRequest
) -> None:
    kill_at_random_moments(request.getfixturevalue(f"{backend}_location"), trials=100, seed=100)


@pytest.mark.parametrize(
    "client_sees",
    [
        ConnectionResetError("connection reset by peer"),  # the response never arrived
        FileExistsError("412 Precondition Failed"),  # an SDK retry of our own successful PUT
    ],
    ids=["reset", "retry-412"],
)
def test_lost_response_to_the_branch_ref_put(
    client_sees: Exception, s3_location: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The S3 server creates the branch ref but the client gets an error: the commit is resolved
    by reading the ref back, so it is neither lost nor made twice."""
    import s3fs

    repo = iv.Repository.create(s3_location.url, storage_options=s3_location.storage_options)
    session = repo.writable_session()
    zarr.open_group(session.store, mode="a").create_array("x", shape=(4,), chunks=(2,), dtype="i4")
    first = session.commit("array")

    original = s3fs.S3FileSystem._pipe_file
    lost: list[str] = []

    async def pipe_then_lose_response(self: Any, path: str, data: bytes, **kwargs: Any) -> Any:
        result = await original(self, path, data, **kwargs)
        if "/refs/branch.main/" in path and kwargs.get("mode") == "create" and not lost:
            lost.append(path)
            raise client_sees
        return result

    monkeypatch.setattr(s3fs.S3FileSystem, "_pipe_file", pipe_then_lose_response)
    session = repo.writable_session()
    zarr.open_array(session.store, path="x")[:] = [1, 2, 3, 4]
    second = session.commit("values")
    assert lost, "the injected failure did not happen"

    history = [info.id for info in repo.ancestry(branch="main")]
    assert history[:2] == [second, first] and len(history) == 3
    keys = sync(repo._async.storage.list("refs/branch.main/"))
    versions = [k for k in keys if parse_branch_version_key(k) is not None]
    assert len(versions) == 3  # one ref version per snapshot: nothing written twice
    session = repo.writable_session()
    zarr.open_array(session.store, path="x")[:2] = [9, 9]
    third = session.commit("after")
    assert next(repo.ancestry(branch="main")).parent_id == second != third
    np.testing.assert_array_equal(
        zarr.open_array(repo.readonly_session().store, path="x", mode="r")[:], [9, 9, 3, 4]
    )
