"""fsck: a clean repository passes; each kind of damage is reported, naming the object."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import zarr

import icechunk_virtual as iv

from .test_maintenance import commit_values


@pytest.fixture
def damaged(tmp_path: Path) -> tuple[iv.Repository, Path, list[iv.SnapshotId]]:
    """A local repository with three commits of native chunks, one branch and one tag."""
    root = tmp_path / "repo"
    repo = iv.Repository.create(str(root))
    commits = [commit_values(repo, float(v)) for v in (1, 2, 3)]
    repo.create_branch("dev", commits[0])
    repo.create_tag("v2", commits[1])
    return repo, root, commits


def problems(root: Path, *, check_sources: bool = False) -> list[str]:
    report = iv.Repository.open(str(root)).fsck(check_sources=check_sources)
    assert report.ok == (not report.problems)
    return [str(p) for p in report.problems]


def test_clean_repository_passes(damaged) -> None:  # type: ignore[no-untyped-def]
    repo, _, _ = damaged
    report = repo.fsck()
    assert report.ok, report
    assert (report.refs, report.snapshots) == (3, 4)  # main, dev, v2; three commits + root
    assert report.manifests == 3
    assert report.native_chunks == 6
    assert "ok" in str(report)


def test_missing_native_chunk_is_named(damaged) -> None:  # type: ignore[no-untyped-def]
    _, root, _ = damaged
    victim = sorted((root / "chunks").iterdir())[0]
    victim.unlink()
    [problem] = problems(root)
    assert f"chunks/{victim.name}" in problem and "missing" in problem


def test_corrupt_manifest_is_named(damaged) -> None:  # type: ignore[no-untyped-def]
    _, root, _ = damaged
    victim = sorted((root / "manifests").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:40])
    [problem] = problems(root)
    assert f"manifests/{victim.name}" in problem and "Parquet" in problem


def test_unreadable_snapshot_in_the_middle_of_history(damaged) -> None:  # type: ignore[no-untyped-def]
    _, root, commits = damaged
    # commits[1] is tagged, so it is reached twice (tag and main's history); reported once.
    (root / "snapshots" / str(commits[1])).write_bytes(b'{"format": 1, "id": ')
    found = problems(root)
    assert len(found) == 1
    assert f"snapshots/{commits[1]}" in found[0] and "does not parse" in found[0]


def test_bad_ref_and_missing_transaction_log(damaged) -> None:  # type: ignore[no-untyped-def]
    _, root, commits = damaged
    [dev_version] = (root / "refs" / "branch.dev").glob("0*")
    dev_version.write_bytes(b"garbage")
    (root / "transactions" / str(commits[2])).unlink()
    found = problems(root)
    assert len(found) == 2
    assert any("refs/branch.dev/" in p and "ref does not parse" in p for p in found)
    assert any(f"transactions/{commits[2]}" in p for p in found)


def test_check_sources_reports_changed_and_missing_sources(tmp_path: Path) -> None:
    sources = tmp_path / "archive"
    sources.mkdir()
    files = []
    for i in range(3):
        path = sources / f"f{i}.bin"
        path.write_bytes(np.full(4, i, dtype="<f8").tobytes())
        files.append(path)
    repo = iv.Repository.create(str(tmp_path / "repo"))
    repo.authorize_virtual_source(f"file://{sources}/")
    session = repo.writable_session()
    zarr.open_group(session.store, mode="a").create_array(
        "v", shape=(12,), chunks=(4,), dtype="<f8", compressors=None
    )
    urls = [f"file://{p}" for p in files]
    session.set_virtual_refs(
        "/v",
        pa.table(
            {
                "c0": pa.array([0, 1, 2], pa.int32()),
                "location": urls,
                "offset": pa.array([0, 0, 0], pa.uint64()),
                "length": pa.array([32, 32, 32], pa.uint64()),
                "checksum": [iv.source_checksum(u) for u in urls],
            }
        ),
    )
    session.commit("virtual")
    assert problems(tmp_path / "repo", check_sources=True) == []
    assert iv.Repository.open(str(tmp_path / "repo")).fsck(check_sources=True).sources == 3

    files[0].write_bytes(np.full(4, 9, dtype="<f8").tobytes())
    stat = files[0].stat()
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    files[2].unlink()
    found = problems(tmp_path / "repo", check_sources=True)
    assert len(found) == 2
    assert any(urls[0] in p and "changed" in p for p in found)
    assert any(urls[2] in p and "does not exist" in p for p in found)
    assert problems(tmp_path / "repo") == []  # sources are only checked when asked
