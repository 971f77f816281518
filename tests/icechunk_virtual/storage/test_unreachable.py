"""A dead object-storage endpoint is a ``StorageError`` (transient, safe to retry) naming the
repository and the object, from every storage operation and from the repository's entry points
— never botocore's ``EndpointConnectionError``."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

import icechunk_virtual as iv
from icechunk_virtual._sync import sync
from icechunk_virtual.storage import open_storage

from ...conftest import s3_options


@pytest.fixture
def dead_endpoint() -> dict[str, Any]:
    """Options for an S3 endpoint on 127.0.0.1 where nothing listens (failing fast)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    options = s3_options(f"http://127.0.0.1:{port}")
    options["config_kwargs"] = {"connect_timeout": 1, "retries": {"max_attempts": 1}}
    return options


def test_every_storage_operation_raises_storage_error(dead_endpoint: dict[str, Any]) -> None:
    storage = open_storage("s3://nowhere/repo", storage_options=dead_endpoint)
    operations = {
        "get": lambda: storage.get("config.json"),
        "get_range": lambda: storage.get_range("config.json", 0, 4),
        "put": lambda: storage.put("x", b"x"),
        "put_if_absent": lambda: storage.put_if_absent("refs/branch.main/000000000001", b"{}"),
        "list": lambda: storage.list("refs/"),
        "list_modified": lambda: storage.list_modified(""),
        "exists": lambda: storage.exists("x"),
        "delete": lambda: storage.delete(["x"]),
    }
    for name, operation in operations.items():
        started = time.monotonic()
        with pytest.raises(iv.StorageError, match="nowhere") as caught:
            sync(operation())
        assert caught.value.__cause__ is not None, name  # the backend's error, chained
        assert time.monotonic() - started < 60, name


def test_repository_entry_points_raise_storage_error(dead_endpoint: dict[str, Any]) -> None:
    with pytest.raises(iv.StorageError):
        iv.Repository.open("s3://nowhere/repo", storage_options=dead_endpoint)
    with pytest.raises(iv.StorageError):
        iv.Repository.create("s3://nowhere/repo", storage_options=dead_endpoint)


def test_reading_a_virtual_chunk_from_a_dead_source_raises_storage_error(
    dead_endpoint: dict[str, Any],
) -> None:
    from icechunk_virtual.format.manifest_file import ChunkKind
    from icechunk_virtual.io.read_path import ChunkRef, ReadPath
    from icechunk_virtual.storage import MemoryStorage

    reader = ReadPath(
        MemoryStorage("dead-source"),
        authorized=["s3://nowhere/"],
        source_options={"s3://nowhere/": dead_endpoint},
    )
    for checksum in (None, "etag:abc"):  # fetched straight away, or checked first
        ref = ChunkRef(ChunkKind.VIRTUAL, "s3://nowhere/f.nc", 0, 4, checksum=checksum)
        with pytest.raises(iv.StorageError, match=r"nowhere/f\.nc"):
            sync(reader.read_many([ref], where=["array '/a' chunk 0"]))
