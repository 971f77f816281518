"""Checksums of a whole list of sources: equal to each source's own (from ``os.stat`` and from S3's
``HEAD``, asked with boto3), in one listing per S3 directory rather than one request per file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import s3fs

from icechunk_virtual._sync import sync
from icechunk_virtual.errors import SourceNotFoundError
from icechunk_virtual.io.checksums import LIST_AT, fetch_checksums


def test_local_checksums_are_each_files_mtime_and_size(tmp_path: Path) -> None:
    paths = []
    for i in range(5):
        (path := tmp_path / f"f{i}.nc").write_bytes(b"x" * (i + 1))
        paths.append(path)
    urls = [f"file://{p}" for p in paths] + [str(paths[0])]
    expected = [
        f"mtime:{round(os.stat(p).st_mtime * 1e9)},size:{os.stat(p).st_size}" for p in paths
    ]
    assert sync(fetch_checksums(urls, {})) == [*expected, expected[0]]


def test_a_missing_local_source_is_named(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match=r"gone\.nc"):
        sync(fetch_checksums([f"file://{tmp_path}/gone.nc"], {}))


def test_a_directory_of_many_s3_sources_is_listed_once(
    s3_bucket: tuple[str, Any, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, client, options = s3_bucket
    many = [f"daily/{d:03d}.nc" for d in range(LIST_AT + 4)]
    few = ["other/a.nc", "other/b.nc"]
    for i, key in enumerate(many + few + ["daily/not-listed.nc"]):
        client.put_object(Bucket=name, Key=key, Body=os.urandom(10 + i))
    calls = count_requests(monkeypatch)
    urls = [f"s3://{name}/{k}" for k in many + few]
    found = sync(fetch_checksums(urls, options))
    heads = [client.head_object(Bucket=name, Key=k)["ETag"].strip('"') for k in many + few]
    assert found == [f"etag:{e}" for e in heads]
    assert sorted(calls) == ["_info", "_info", "_ls"]  # one listing, and one HEAD per few


def test_a_source_missing_from_a_listed_directory_is_named(
    s3_bucket: tuple[str, Any, dict[str, Any]],
) -> None:
    name, client, options = s3_bucket
    keys = [f"d/{i}.nc" for i in range(LIST_AT)]
    for key in keys:
        client.put_object(Bucket=name, Key=key, Body=b"abc")
    with pytest.raises(SourceNotFoundError, match=r"d/missing\.nc"):
        sync(fetch_checksums([f"s3://{name}/{k}" for k in [*keys, "d/missing.nc"]], options))


def test_of_several_missing_sources_the_first_listed_is_named(
    s3_bucket: tuple[str, Any, dict[str, Any]],
) -> None:
    name, client, options = s3_bucket
    client.put_object(Bucket=name, Key="few/here.nc", Body=b"abc")
    for order in (["b.nc", "a.nc"], ["a.nc", "b.nc"]):
        urls = [f"s3://{name}/few/here.nc", *(f"s3://{name}/few/gone-{k}" for k in order)]
        with pytest.raises(SourceNotFoundError, match=f"gone-{order[0]}"):
            sync(fetch_checksums(urls, options))


def count_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of s3fs's listing (``_ls``) and ``HEAD`` (``_info``) calls, as they are made."""
    calls: list[str] = []
    for method in ("_ls", "_info"):
        original = getattr(s3fs.S3FileSystem, method)

        async def counted(self: Any, path: str, *args: Any, _m: str = method, _f: Any = original,
                          **kwargs: Any) -> Any:  # fmt: skip
            calls.append(_m)
            return await _f(self, path, *args, **kwargs)

        monkeypatch.setattr(s3fs.S3FileSystem, method, counted)
    return calls
