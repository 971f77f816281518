"""Survivors of ``make mutation`` in ``io/checksums.py``, each pinned by a test whose expected
values come from ``os.stat``, boto3's ``HEAD`` or the request count a listing should cost.

No test id contains ``s3``: ``make mutation`` runs with ``-k "not s3"``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import s3fs

from icechunk_virtual._sync import sync
from icechunk_virtual.errors import SourceNotFoundError, StorageError
from icechunk_virtual.io.checksums import LIST_AT, fetch_checksums

from .test_checksums import count_requests


def _etag(client: Any, bucket: str, key: str) -> str:
    return "etag:" + str(client.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')


def test_a_missing_remote_source_error_begins_with_its_url() -> None:
    """A source asked alone is named at the start of the error, as a local one is (``where``)."""
    url = f"memory://gone-{uuid.uuid4().hex}/a.nc"
    with pytest.raises(SourceNotFoundError) as caught:
        sync(fetch_checksums([url], {}))
    assert str(caught.value) == f"{url}: virtual source {url} does not exist"


def test_a_local_source_that_cannot_be_stat_ed_is_a_storage_error_naming_it(
    tmp_path: Path,
) -> None:
    """A path under a regular file fails ``stat`` with ENOTDIR: not missing, a storage failure,
    whose message names the source."""
    (tmp_path / "file").write_bytes(b"x")
    url = f"file://{tmp_path}/file/a.nc"
    with pytest.raises(OSError):
        os.stat(f"{tmp_path}/file/a.nc")  # the reference: the OS refuses it
    with pytest.raises(StorageError) as caught:
        sync(fetch_checksums([url], {}))
    assert not isinstance(caught.value, SourceNotFoundError)
    assert str(caught.value).startswith(f"{url}: could not stat virtual source {url}: ")


def test_a_directory_of_exactly_list_at_sources_is_listed_after_a_small_one(
    s3_bucket: tuple[str, Any, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``LIST_AT`` sources of a directory are enough for one listing (not ``LIST_AT + 1``), and a
    small directory met first does not stop the later ones from being listed."""
    name, client, options = s3_bucket
    few = ["a/0.nc", "a/1.nc"]
    exactly = [f"b/{i}.nc" for i in range(LIST_AT)]
    for i, key in enumerate(few + exactly):
        client.put_object(Bucket=name, Key=key, Body=os.urandom(5 + i))
    calls = count_requests(monkeypatch)
    found = sync(fetch_checksums([f"s3://{name}/{k}" for k in few + exactly], options))
    assert found == [_etag(client, name, k) for k in few + exactly]
    assert sorted(calls) == ["_info", "_info", "_ls"]  # a HEAD per few, one listing of b/


def test_a_directory_listed_again_shows_a_source_overwritten_since(
    s3_bucket: tuple[str, Any, dict[str, Any]],
) -> None:
    """Every call lists afresh: a daily job's second check sees today's object, not the listing
    cached by the first (the filesystem is shared on the IO loop)."""
    name, client, options = s3_bucket
    keys = [f"d/{i}.nc" for i in range(LIST_AT)]
    for key in keys:
        client.put_object(Bucket=name, Key=key, Body=b"first")
    urls = [f"s3://{name}/{k}" for k in keys]
    assert sync(fetch_checksums(urls, options)) == [_etag(client, name, k) for k in keys]
    client.put_object(Bucket=name, Key=keys[0], Body=b"second, longer")
    assert sync(fetch_checksums(urls, options)) == [_etag(client, name, k) for k in keys]


def test_a_failed_listing_is_a_storage_error_naming_the_directory(
    s3_bucket: tuple[str, Any, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing the store refuses (here a ``PermissionError``) names the directory listed."""
    name, _, options = s3_bucket

    async def refused(self: Any, path: str, *args: Any, **kwargs: Any) -> Any:
        raise PermissionError("access denied")

    monkeypatch.setattr(s3fs.S3FileSystem, "_ls", refused)
    urls = [f"s3://{name}/d/{i}.nc" for i in range(LIST_AT)]
    with pytest.raises(StorageError) as caught:
        sync(fetch_checksums(urls, options))
    assert str(caught.value) == (
        f"could not list virtual sources under s3://{name}/d/: access denied"
    )


def test_a_listed_source_takes_the_checksum_of_its_own_name_only(
    s3_bucket: tuple[str, Any, dict[str, Any]],
) -> None:
    """Objects whose names only add characters to a source's (``a.nc `` and ``a.ncX``, listed
    after ``a.nc``) never lend it their checksum."""
    name, client, options = s3_bucket
    keys = ["d/a.nc", *(f"d/{i}.nc" for i in range(LIST_AT))]
    for i, key in enumerate([*keys, "d/a.nc ", "d/a.ncX"]):
        client.put_object(Bucket=name, Key=key, Body=os.urandom(20 + i))
    found = sync(fetch_checksums([f"s3://{name}/{k}" for k in keys], options))
    assert found == [_etag(client, name, k) for k in keys]
