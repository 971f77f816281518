"""A commit killed (SIGKILL) before or after each of its storage writes leaves the branch readable,
at the old snapshot or at the new one, and the repository accepts further commits."""

from __future__ import annotations

import signal

import numpy as np
import pytest
import zarr

import icechunk_virtual as iv

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
