"""The ``icechunk-virtual`` command, run as users run it: a subprocess, exit codes, one-line
errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
AIR = CORPUS / "hdf5" / "air.nc"
pytestmark = pytest.mark.skipif(
    not AIR.exists(), reason="../shared/corpus is not beside the checkout"
)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "icechunk_virtual.cli", *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip


def test_a_session_from_the_shell(tmp_path: Path) -> None:
    repo = str(tmp_path / "repo")
    assert cli("init", repo).returncode == 0
    first = cli("--quiet", "ingest", repo, str(AIR))
    assert first.returncode == 0, first.stderr
    again = cli("ingest", repo, str(AIR))
    assert again.returncode == 0 and "nothing new: 0 added, 1 skipped" in again.stdout
    assert cli("tag", repo, "v1").returncode == 0
    assert "v1" in cli("tag", repo).stdout
    assert cli("branch", repo, "dev", "--at", "v1").returncode == 0
    assert "dev" in cli("branch", repo).stdout
    log = cli("log", repo).stdout.splitlines()
    assert len(log) == 2 and "ingest 1 new" in log[0]
    first_id, initial_id = log[0].split()[0], log[1].split()[0]
    diff = cli("diff", repo, initial_id, first_id).stdout
    assert "new array: /air" in diff
    info = cli("info", repo).stdout
    assert "air  (124, 11, 21)" in info and "virtual sources: file://" in info


def test_errors_are_one_line_and_exit_non_zero(tmp_path: Path) -> None:
    missing = cli("log", str(tmp_path / "nothing"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: ") and len(missing.stderr.strip().splitlines()) == 1
    repo = str(tmp_path / "repo")
    cli("init", repo)
    bad = cli("ingest", repo, str(tmp_path / "absent.nc"))
    assert bad.returncode == 1 and "absent.nc" in bad.stderr
    debug = cli("--debug", "log", str(tmp_path / "nothing"))
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert cli("frobnicate", repo).returncode == 2
    unknown = cli("diff", repo, "nosuchbranch", "main")
    assert unknown.returncode == 1 and "nosuchbranch" in unknown.stderr


def test_maintenance_from_the_shell(tmp_path: Path) -> None:
    repo = str(tmp_path / "repo")
    cli("init", repo)
    assert cli("ingest", repo, str(AIR)).returncode == 0
    assert cli("branch", repo, "scratch").returncode == 0
    clean = cli("fsck", repo, "--check-sources")
    assert clean.returncode == 0, clean.stderr
    assert "1 virtual sources" in clean.stdout and clean.stdout.strip().endswith("ok")

    expire = cli("expire", repo, "--older-than", "0s", "--delete-expired-branches")
    assert expire.returncode == 0, expire.stderr
    assert "expired 0 snapshots" in expire.stdout  # only the tip and the first snapshot exist
    assert "deleted branch scratch" in expire.stdout
    gc = cli("gc", repo, "--older-than", "0s")
    assert gc.returncode == 0 and gc.stdout.startswith("deleted 2 objects"), gc.stdout
    assert (
        "2 old branch versions" in gc.stdout
    )  # the first version of main and of scratch (tips stay)
    assert cli("gc", repo, "--older-than", "yesterday-ish").returncode == 2

    manifest = sorted((tmp_path / "repo" / "manifests").iterdir())[0]
    manifest.write_bytes(b"PAR1 truncated")
    broken = cli("fsck", repo)
    assert broken.returncode == 1
    assert f"manifests/{manifest.name}" in broken.stderr and "1 problem(s)" in broken.stderr
