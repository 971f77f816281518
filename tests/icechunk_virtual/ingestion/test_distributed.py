"""Ingest on a dask ``LocalCluster`` (2 worker processes): scanned on the workers, refs set in
forked sessions there, merged into one commit equal to the local one; and forks by themselves."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

import icechunk_virtual as iv

from .test_combine import _write


def test_cluster_ingest_equals_local_ingest(client: object, tmp_path: Path) -> None:
    days = [f"2024-02-{d:02d}" for d in (5, 1, 3, 2, 4, 6)]
    paths = [str(_write(tmp_path / f"{d}.nc", d, 24)) for d in days]
    local = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    local.ingest(paths, concat_dim="time", progress=False)
    cluster = iv.Repository.create(str(tmp_path / "repo"))
    report = cluster.ingest(paths[:4], concat_dim="time", client=client, progress=False)
    assert len(report.added) == 4 and report.snapshot_id is not None
    report = cluster.ingest(paths, concat_dim="time", client=client, progress=False)
    assert (len(report.added), len(report.skipped)) == (2, 4)
    ours = xr.open_dataset(str(tmp_path / "repo"), engine="icechunk_virtual").load()
    theirs = xr.open_dataset(local, engine="icechunk_virtual").load()
    xr.testing.assert_identical(ours, theirs)
    assert ours.sizes["time"] == 144
    assert len(list(cluster.ancestry(branch="main"))) == 3  # one commit per ingest call


def test_cluster_scan_errors_are_typed_and_commit_nothing(client: object, tmp_path: Path) -> None:
    good = _write(tmp_path / "good.nc", "2024-01-01", 24)
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"CDF\x01" + b"\xff" * 40)
    repo = iv.Repository.create(str(tmp_path / "repo"))
    before = repo.lookup_branch("main")
    with pytest.raises(iv.CorruptSourceError, match=r"bad\.nc"):
        repo.ingest([str(good), str(bad)], client=client, progress=False)
    assert repo.lookup_branch("main") == before


def test_forks_travel_and_merge_once(tmp_path: Path) -> None:
    source = tmp_path / "raw.bin"
    source.write_bytes(np.arange(8, dtype="<i4").tobytes())
    repo = iv.Repository.create(str(tmp_path / "repo"))
    repo.authorize_virtual_source(f"file://{tmp_path}/")
    session = repo.writable_session()
    zarr.open_group(session.store, mode="a").create_array(
        "v", shape=(8,), chunks=(4,), dtype="<i4", compressors=None
    )
    forks = [pickle.loads(pickle.dumps(session.fork())) for _ in range(2)]  # as to a worker
    for i, fork in enumerate(forks):
        fork.set_virtual_refs(
            "/v", {"c0": [i], "location": [f"file://{source}"], "offset": [16 * i], "length": [16]}
        )
    with pytest.raises(iv.NodeNotFoundError, match="/missing"):
        forks[0].set_virtual_refs(
            "/missing", {"c0": [0], "location": [f"file://{source}"], "offset": [0], "length": [4]}
        )
    with pytest.raises(iv.UnauthorizedSourceError):
        forks[0].set_virtual_refs(
            "/v", {"c0": [0], "location": ["s3://elsewhere/x"], "offset": [0], "length": [4]}
        )
    session.merge(*forks)
    with pytest.raises(iv.InvalidInputError, match="merged already"):
        session.merge(forks[0])
    session.commit("from forks")
    np.testing.assert_array_equal(
        zarr.open_array(repo.readonly_session().store, path="v", mode="r")[:], np.arange(8)
    )
    stale = session.fork()
    zarr.open_group(session.store, mode="a").create_array(
        "v", shape=(4,), chunks=(4,), dtype="<i4", overwrite=True
    )
    stale.set_virtual_refs(
        "/v", {"c0": [1], "location": [f"file://{source}"], "offset": [0], "length": [16]}
    )
    with pytest.raises(iv.InvalidInputError, match="changed or deleted"):
        session.merge(stale)
