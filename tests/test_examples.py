"""The examples run as ``make demo`` runs them, and produce what they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, directory: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), str(directory)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_archive_end_to_end(tmp_path: Path) -> None:
    out = run_example("archive_end_to_end.py", tmp_path)
    assert "backfill: 6 added (5 January among them), 9 skipped" in out
    assert "re-run: snapshot None, 15 skipped" in out
    assert "forecasts: {'step': 5, 'latitude': 91, 'longitude': 180}; variables ['z']" in out
    assert out.splitlines()[-2] == "ok"  # fsck, sources checked
    for png in ("t2m_map.png", "t2m_series.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quickstart(tmp_path: Path) -> None:
    assert "virtual array read from archive.bin" in run_example("quickstart.py", tmp_path)
