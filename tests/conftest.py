"""Shared fixtures: a real S3 API (moto server on 127.0.0.1) and repository URLs per backend."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings

settings.register_profile("default", max_examples=50, deadline=None)
settings.register_profile(
    "ci", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("nightly", max_examples=1000, deadline=None)
# checking that a mutation is caught: find a failure, do not spend minutes shrinking it
settings.register_profile(
    "mutation", deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate]
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default")
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RepoLocation:
    """Where a test repository lives: URL plus the storage options to reach it."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, stopped after the session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_options(endpoint: str) -> dict[str, Any]:
    return {
        "endpoint_url": endpoint,
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": "us-east-1"},
    }


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> tuple[str, Any, dict[str, Any]]:
    """A fresh bucket on the moto server: its name, a boto3 client and the fsspec options."""
    import boto3

    name = f"src-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return name, client, s3_options(s3_endpoint)


@pytest.fixture
def s3_location(s3_endpoint: str) -> RepoLocation:
    """A fresh bucket on the moto server."""
    import boto3

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket
    )
    return RepoLocation(f"s3://{bucket}/repo", s3_options(s3_endpoint))


@pytest.fixture
def local_location(tmp_path: Any) -> RepoLocation:
    return RepoLocation(str(tmp_path / "repo"))


@pytest.fixture
def memory_location() -> RepoLocation:
    return RepoLocation(f"memory://{uuid.uuid4().hex}")


@pytest.fixture(params=["local", "memory", "s3"])
def location(request: pytest.FixtureRequest) -> RepoLocation:
    """A repository location on each backend in turn."""
    return request.getfixturevalue(f"{request.param}_location")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    """A dask ``LocalCluster`` of 2 worker processes (one thread each) and its client, per module."""
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=":0",  # any free port: never collide
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        yield client
