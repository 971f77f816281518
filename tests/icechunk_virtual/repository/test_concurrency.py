"""Uncoordinated writers in separate OS processes on one branch, on local disk and on S3."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import icechunk_virtual as iv

WORKER = Path(__file__).with_name("commit_worker.py")


def start_worker(spec: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_workers(
    location: Any, workers: int, commits: int, go: Path, **extra: Any
) -> list[subprocess.Popen[str]]:
    """``workers`` commit workers on ``location``, waiting for the file ``go`` to appear."""
    return [
        start_worker(
            {
                "url": location.url,
                "storage_options": location.storage_options,
                "worker": w,
                "commits": commits,
                "go_file": str(go),
                **extra,
            }
        )
        for w in range(workers)
    ]


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_eight_processes_five_commits_each_lose_nothing(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    location = request.getfixturevalue(f"{backend}_location")
    repo = iv.Repository.create(location.url, storage_options=location.storage_options)
    go = tmp_path / "go"
    workers, commits = 8, 5
    procs = start_workers(location, workers, commits, go)
    go.touch()
    committed: list[str] = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        committed += out.split()
    assert len(committed) == workers * commits
    history = [info.id for info in repo.ancestry(branch="main")]
    assert set(committed) <= set(history)
    assert len(history) == workers * commits + 1  # plus the initial snapshot
    group = zarr.open_group(repo.readonly_session().store, mode="r")
    for w in range(workers):
        expected = np.repeat(1000 * w + np.arange(commits), 2)
        np.testing.assert_array_equal(group[f"w{w}"][:], expected)


def run_contention(location: Any, tmp_path: Path, workers: int, commits: int) -> None:
    """``workers`` processes x ``commits`` commits on one branch: every worker rewrites its own
    chunk of ``/shared`` (rebased past rivals) and every fourth worker also chunk 0 of ``/hot``
    (conflicts with rivals). Checks that the branch's history holds exactly the commits that
    reported success, that only ``/hot`` writers saw conflicts, and that fsck is clean."""
    repo = iv.Repository.create(location.url, storage_options=location.storage_options)
    session = repo.writable_session()
    group = zarr.open_group(session.store, mode="a")
    group.create_array("shared", shape=(workers,), chunks=(1,), dtype="i8", fill_value=-1)
    group.create_array("hot", shape=(1,), chunks=(1,), dtype="i8", fill_value=-1)
    setup = session.commit("arrays")
    go = tmp_path / "go"
    procs = start_workers(location, workers, commits, go, contend=True)
    go.touch()
    landed: dict[str, int] = {}  # snapshot id -> value written
    conflicts: dict[int, int] = {}  # worker -> conflicts seen
    last_ok: dict[int, int] = {}
    for w, proc in enumerate(procs):
        out, err = proc.communicate(timeout=1800)
        assert proc.returncode == 0, err
        lines = out.split("\n")[:-1]
        assert len(lines) == commits
        for line in lines:
            word, *rest = line.split()
            if word == "ok":
                landed[rest[0]] = int(rest[1])
                last_ok[w] = int(rest[1])
            else:
                assert word == "conflict", line
                conflicts[w] = conflicts.get(w, 0) + 1
    history = [str(info.id) for info in repo.ancestry(branch="main")]
    assert set(landed) <= set(history)
    assert len(history) == len(landed) + 2  # plus the array-creating and the first snapshot
    assert history[-2] == str(setup)
    assert all(w % 4 == 0 for w in conflicts), conflicts
    total_conflicts = sum(conflicts.values())
    assert len(landed) + total_conflicts == workers * commits

    final = zarr.open_group(repo.readonly_session().store, mode="r")
    expected_shared = [last_ok.get(w, -1) for w in range(workers)]
    np.testing.assert_array_equal(final["shared"][:], expected_shared)
    hot_writes = [landed[s] for s in history if s in landed and (landed[s] // 1000) % 4 == 0]
    assert final["hot"][0] == (hot_writes[0] if hot_writes else -1)  # the newest one wins
    report = repo.fsck()
    assert report.ok, report
    print(
        f"\n{location.url}: {workers} processes x {commits} commits: {len(landed)} landed, "
        f"{total_conflicts} ConflictError, {len(history)} snapshots in history, fsck clean"
    )


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_contending_writers_rebase_or_conflict(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run_contention(request.getfixturevalue(f"{backend}_location"), tmp_path, 8, 4)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "s3"])
def test_sixteen_processes_twenty_commits_each(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    run_contention(request.getfixturevalue(f"{backend}_location"), tmp_path, 16, 20)
