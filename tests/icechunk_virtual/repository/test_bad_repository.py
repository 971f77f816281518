"""Damaged repository objects give typed errors naming the object, on the normal read paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zarr

import icechunk_virtual as iv
from icechunk_virtual._sync import sync
from icechunk_virtual.format.snapshot import ManifestRef

from ..maintenance.test_maintenance import commit_values


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    repo = iv.Repository.create(str(root))
    commit_values(repo, 1.0)
    commit_values(repo, 2.0)
    return root


def tip_manifest(root: Path) -> Path:
    """The manifest file of ``/a`` at main's tip."""
    repo = iv.Repository.open(str(root))
    node = sync(repo._async.load_snapshot(repo.lookup_branch("main"))).nodes["/a"]
    [manifest] = node.manifests
    assert isinstance(manifest, ManifestRef)
    return root / "manifests" / f"{manifest.id}.parquet"


def read_all(root: Path) -> np.ndarray:
    repo = iv.Repository.open(str(root))
    return zarr.open_array(repo.readonly_session().store, path="a", mode="r")[:]


@pytest.mark.parametrize(
    "damage",
    [b"", b"{", b'{"format": 1}', b'{"format": 99}', b"\x00\xff" * 10, b'{"snapshot": 3}'],
    ids=["empty", "truncated", "fields-missing", "unknown-format", "binary", "wrong-types"],
)
def test_damaged_tip_snapshot(repo_dir: Path, damage: bytes) -> None:
    tip = iv.Repository.open(str(repo_dir)).lookup_branch("main")
    (repo_dir / "snapshots" / str(tip)).write_bytes(damage)
    with pytest.raises(iv.FormatError, match=f"snapshots/{tip}"):
        read_all(repo_dir)


@pytest.mark.parametrize("keep", [0, 4, 100, -8], ids=["empty", "magic", "head", "no-footer"])
def test_damaged_manifest(repo_dir: Path, keep: int) -> None:
    path = tip_manifest(repo_dir)
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(iv.FormatError, match=f"manifests/{path.name}"):
        read_all(repo_dir)


def test_damaged_or_missing_manifest_schema(repo_dir: Path) -> None:
    path = tip_manifest(repo_dir)
    pq.write_table(pa.table({"c0": pa.array([0], pa.int64())}), path)
    with pytest.raises(iv.FormatError, match=r"schema|column"):
        read_all(repo_dir)
    path.unlink()
    with pytest.raises(iv.NotFoundError, match=f"manifests/{path.name}"):
        read_all(repo_dir)


DAMAGE = [b"", b"not json", b'{"snapshot": "nope"}', b"[]", b'{"version": -1}']


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_branch_version(repo_dir: Path, damage: bytes) -> None:
    """The tip is found from the hint; with no hint, from the listing, which reads the record."""
    branch_dir = repo_dir / "refs" / "branch.main"
    (branch_dir / "tip.json").unlink()
    latest = sorted(branch_dir.iterdir())[-1]
    latest.write_bytes(damage)
    with pytest.raises(iv.FormatError, match=f"refs/branch\\.main/{latest.name}"):
        iv.Repository.open(str(repo_dir)).lookup_branch("main")


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_tip_hint_is_only_a_hint(repo_dir: Path, damage: bytes) -> None:
    repo = iv.Repository.open(str(repo_dir))
    tip = repo.lookup_branch("main")
    (repo_dir / "refs" / "branch.main" / "tip.json").write_bytes(damage)
    assert iv.Repository.open(str(repo_dir)).lookup_branch("main") == tip
    assert any("tip.json" in str(p) for p in repo.fsck().problems)


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_branch_floor(repo_dir: Path, damage: bytes) -> None:
    """The floor decides whether a hint can be trusted, so a damaged one is an error."""
    (repo_dir / "refs" / "branch.main" / "floor.json").write_bytes(damage)
    with pytest.raises(iv.FormatError, match=r"refs/branch\.main/floor\.json"):
        iv.Repository.open(str(repo_dir)).lookup_branch("main")


def test_damaged_tag_and_config(repo_dir: Path) -> None:
    repo = iv.Repository.open(str(repo_dir))
    repo.create_tag("v1", repo.lookup_branch("main"))
    (repo_dir / "refs" / "tag.v1" / "ref.json").write_bytes(b"{}")
    with pytest.raises(iv.FormatError, match=r"refs/tag\.v1/ref\.json"):
        repo.lookup_tag("v1")
    (repo_dir / "config.json").write_bytes(b"\x89PNG")
    with pytest.raises(iv.FormatError, match=r"config\.json"):
        iv.Repository.open(str(repo_dir))


def test_truncated_or_missing_native_chunk(repo_dir: Path) -> None:
    chunks = sorted((repo_dir / "chunks").iterdir(), key=lambda p: p.stat().st_mtime)
    newest = chunks[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.raises(iv.FormatError, match=f"chunks/{newest.name}"):
        read_all(repo_dir)
    newest.unlink()
    with pytest.raises(iv.NotFoundError, match=f"chunks/{newest.name}"):
        read_all(repo_dir)
