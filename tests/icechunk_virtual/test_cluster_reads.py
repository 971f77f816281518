"""Reading on a cluster: datasets opened from a repository go to dask workers and compute there.

On a ``LocalCluster`` of 2 worker processes, with ``chunks={}``: a mean over a virtual variable of
an ingested archive (sources on local disk, and on S3 through moto) equals the mean netCDF4 reads
from the source files; the same for a native repository on S3 (equal to numpy's mean of what was
written) and for a dataset opened at a tag. Each worker reopens the read-only session once. Also:
what a pickle carries and refuses (writable sessions, in-memory repositories in other processes).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import netCDF4
import numpy as np
import pytest
import xarray as xr

import icechunk_virtual as iv
from icechunk_virtual.repository import reopen

from .ingestion.test_combine import _write

DAYS = ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"]


def _archive(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [_write(folder / f"{day}.nc", day, 24) for day in DAYS]


def _netcdf4_mean(paths: list[Path]) -> float:
    """The oracle: netCDF4 decodes (mask, scale, offset) every file; numpy averages the valid points."""
    values = []
    for path in paths:
        with netCDF4.Dataset(path) as nc:
            values.append(nc["t2m"][:])
    return float(np.ma.concatenate(values).mean())


def _worker_sessions(client: Any) -> dict[str, int]:
    """How many sessions each worker has reopened (its process's cache)."""
    return client.run(lambda: len(reopen._here().sessions))  # type: ignore[no-any-return]


def test_virtual_mean_on_the_cluster_equals_netcdf4(client: Any, tmp_path: Path) -> None:
    paths = _archive(tmp_path / "archive")
    url = str(tmp_path / "repo")
    iv.ingest(iv.Repository.create(url), [str(p) for p in paths], concat_dim="time", progress=False)
    ds = xr.open_dataset(url, engine="icechunk_virtual", chunks={}, task_bytes=1024)
    assert ds["t2m"].data.npartitions > 2  # several tasks, so both workers read
    mean = ds["t2m"].mean().compute()
    np.testing.assert_allclose(float(mean), _netcdf4_mean(paths), rtol=1e-6)
    assert all(n >= 1 for n in _worker_sessions(client).values())


def test_s3_sources_on_the_cluster(client: Any, tmp_path: Path, s3_endpoint: str) -> None:
    from ..conftest import s3_options

    paths = _archive(tmp_path / "archive")
    bucket = f"archive-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    for path in paths:
        s3.upload_file(str(path), bucket, f"daily/{path.name}")
    options = s3_options(s3_endpoint)
    url = str(tmp_path / "repo")
    repo = iv.Repository.create(url, source_options={f"s3://{bucket}/": options})
    urls = [f"s3://{bucket}/daily/{p.name}" for p in paths]
    iv.ingest(repo, urls, concat_dim="time", storage_options=options, progress=False)
    ds = xr.open_dataset(
        url, engine="icechunk_virtual", chunks={}, task_bytes=1024,
        source_options={f"s3://{bucket}/": options},
    )  # fmt: skip
    np.testing.assert_allclose(float(ds["t2m"].mean().compute()), _netcdf4_mean(paths), rtol=1e-6)


def test_native_repository_on_s3_on_the_cluster(client: Any, s3_location: Any) -> None:
    values = np.random.default_rng(7).normal(size=(40, 30))
    repo = iv.Repository.create(s3_location.url, storage_options=s3_location.storage_options)
    session = repo.writable_session()
    written = xr.Dataset({"v": (("y", "x"), values)})
    written.to_zarr(session.store, consolidated=False, encoding={"v": {"chunks": (5, 30)}})
    session.commit("native data")
    ds = xr.open_dataset(
        s3_location.url, engine="icechunk_virtual", chunks={}, task_bytes=2400,
        storage_options=s3_location.storage_options,
    )  # fmt: skip
    assert ds["v"].chunks == ((10,) * 4, (30,))  # two stored chunks (1,200 B each) per task
    assert float(ds["v"].mean().compute()) == pytest.approx(values.mean(), rel=1e-12)


def test_a_dataset_at_a_tag_computes_on_the_cluster(client: Any, tmp_path: Path) -> None:
    paths = _archive(tmp_path / "archive")
    url = str(tmp_path / "repo")
    repo = iv.Repository.create(url)
    first = iv.ingest(repo, [str(p) for p in paths[:2]], concat_dim="time", progress=False)
    assert first.snapshot_id is not None
    repo.create_tag("two-days", first.snapshot_id)
    iv.ingest(repo, [str(p) for p in paths], concat_dim="time", progress=False)
    then = xr.open_dataset(url, engine="icechunk_virtual", tag="two-days", chunks={})
    assert then.sizes["time"] == 48
    np.testing.assert_allclose(
        float(then["t2m"].mean().compute()), _netcdf4_mean(paths[:2]), rtol=1e-6
    )


# ---- what a pickle carries ----------------------------------------------------------------------
def test_a_read_only_session_reopens_once_per_process(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    repo = iv.Repository.open_or_create(url, source_options={"file:///data/": {"anon": True}})
    session = repo.readonly_session("main")
    first, second = pickle.dumps(session.async_session), pickle.dumps(session.store)
    reopened = pickle.loads(first)
    assert reopened is not session.async_session
    assert pickle.loads(second).session is reopened  # the store's copy shares it
    assert pickle.loads(first) is reopened
    assert reopened.snapshot_id == session.snapshot_id and reopened.read_only
    assert reopened.repository_url == url
    assert reopened._repo.source_options == {"file:///data/": {"anon": True}}
    copy = pickle.loads(pickle.dumps(session))  # the sync Session too
    assert copy.read_only and copy.snapshot_id == session.snapshot_id


def test_writable_sessions_and_their_stores_refuse_pointing_to_fork(tmp_path: Path) -> None:
    repo = iv.Repository.create(str(tmp_path / "repo"))
    writable = repo.writable_session()
    for thing in (writable, writable.async_session, writable.store):
        with pytest.raises(iv.NotPicklableError, match=r"fork\(\)") as caught:
            pickle.dumps(thing)
        assert isinstance(caught.value, TypeError)  # pickle's convention


def test_an_in_memory_repository_cannot_reach_another_process() -> None:
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    pickled = pickle.dumps(repo.readonly_session("main").store)
    assert pickle.loads(pickled).read_only  # this process: fine
    code = (
        "import pickle, sys\n"
        "try:\n    pickle.loads(sys.stdin.buffer.read())\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=pickled, capture_output=True, check=True, timeout=120
    ).stdout.decode()
    assert out.startswith("InvalidInputError") and "in-memory repository" in out, out
