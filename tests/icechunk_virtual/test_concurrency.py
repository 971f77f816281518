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


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_eight_processes_five_commits_each_lose_nothing(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    location = request.getfixturevalue(f"{backend}_location")
    repo = iv.Repository.create(location.url, storage_options=location.storage_options)
    go = tmp_path / "go"
    workers, commits = 8, 5
    procs = [
        start_worker(
            {
                "url": location.url,
                "storage_options": location.storage_options,
                "worker": w,
                "commits": commits,
                "go_file": str(go),
            }
        )
        for w in range(workers)
    ]
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
