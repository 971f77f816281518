"""Survivors of ``make mutation`` in ``ingestion/plan.py``, each pinned by a test whose expected
values come from ``os.stat`` (a local file's checksum is its mtime in ns and size), boto3's
``HEAD`` or the ledger given, never from the plan's own checksums.

Plans are made directly (no scan): the ingest tests that scan several files hang in mutmut's
forked workers. No test id contains ``s3``: ``make mutation`` runs with ``-k "not s3"``.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import fsspec
import pytest

import icechunk_virtual.ingestion.plan as plan_module
from icechunk_virtual.errors import InvalidInputError, StaleSourceError
from icechunk_virtual.ingestion.ledger import Ledger
from icechunk_virtual.ingestion.plan import OnChanged, checksums, plan_ingest, recheck_unlisted
from icechunk_virtual.io.checksums import fetch_checksums


def _stat_sum(path: str) -> str:
    stat = os.stat(path)
    return f"mtime:{round(stat.st_mtime * 1e9)},size:{stat.st_size}"


def _files(tmp_path: Path, *names: str) -> list[str]:
    paths = []
    for name in names:
        (path := tmp_path / name).write_bytes(name.encode() * 7)
        paths.append(str(path))
    return paths


def _url(path: str) -> str:
    return "file://" + path


def _asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL whose checksum the plan asks for, in the order asked."""
    asked: list[str] = []

    async def counting(urls: Any, options: Any) -> Any:
        asked.extend(urls)
        return await fetch_checksums(urls, options)

    monkeypatch.setattr(plan_module, "fetch_checksums", counting)
    return asked


def test_an_empty_or_string_url_list_is_refused_in_these_words(tmp_path: Path) -> None:
    """The refusal says what ``ingest`` needs, word for word."""
    bad: list[Any] = [[], "a.nc"]
    for urls in bad:
        with pytest.raises(InvalidInputError) as caught:
            plan_ingest(urls, ledger=Ledger(""), concatenated=False, on_changed=OnChanged.ERROR,
                        options={})  # fmt: skip
        assert str(caught.value) == "ingest needs a non-empty list of URLs"


def test_a_new_only_plan_asks_only_the_new_sources_and_skips_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``check_ingested=False``: sources in the ledger are skipped unasked (even one whose file
    changed), none is changed, and each new one gets its ``os.stat`` checksum."""
    old, new = _files(tmp_path, "old.nc", "new.nc")
    asked = _asked(monkeypatch)
    ledger = Ledger.from_dict("g", {_url(old): "a checksum it no longer has"})
    plan = plan_ingest([old, new], ledger=ledger, concatenated=False,
                       on_changed=OnChanged.ERROR, options={}, check_ingested=False)  # fmt: skip
    assert asked == [_url(new)]
    assert (plan.added, plan.changed, plan.skipped) == ([_url(new)], [], [_url(old)])
    assert plan.checksums == {_url(new): _stat_sum(new)}
    assert plan.skipped_checked is False


def test_a_source_without_identity_is_recorded_as_none_and_stays_unchanged() -> None:
    """A source whose storage gives no checksum (fsspec's memory filesystem has no mtime) is
    recorded as ``None``, and a ledger holding ``None`` for it sees it unchanged."""
    url = f"memory://plan-{uuid.uuid4().hex}/a.nc"
    with fsspec.open(url, "wb") as f:
        f.write(b"abc")
    fresh = plan_ingest([url], ledger=Ledger(""), concatenated=False,
                        on_changed=OnChanged.ERROR, options={})  # fmt: skip
    assert fresh.checksums == {url: None}
    again = plan_ingest([url], ledger=Ledger.from_dict("", {url: None}), concatenated=False,
                        on_changed=OnChanged.ERROR, options={})  # fmt: skip
    assert again.skipped == [url] and again.is_empty


def test_a_rebuild_rechecks_only_the_sources_it_did_not_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``check_ingested=True`` the listed sources (new or skipped) were checked by the plan:
    the recheck asks only the group's other sources, and records their current checksums; a
    plan with nothing unchecked is returned as it is."""
    a, b, c, d = _files(tmp_path, "a.nc", "b.nc", "c.nc", "d.nc")
    ledger = Ledger.from_dict("g", {_url(a): _stat_sum(a), _url(b): "old", _url(c): _stat_sum(c)})
    plan = plan_ingest([c, d], ledger=ledger, concatenated=True,
                       on_changed=OnChanged.REINGEST, options={})  # fmt: skip
    assert plan.skipped_checked is True and plan.skipped == [_url(c)]
    asked = _asked(monkeypatch)
    rechecked = recheck_unlisted(plan, OnChanged.REINGEST, {})
    assert asked == [_url(a), _url(b)]
    assert rechecked.changed == [_url(b)]
    assert rechecked.added == [_url(d)] and rechecked.skipped == [_url(c)]
    assert rechecked.checksums == {_url(d): _stat_sum(d), _url(a): _stat_sum(a),
                                   _url(b): _stat_sum(b)}  # fmt: skip
    asked.clear()
    assert recheck_unlisted(rechecked, OnChanged.ERROR, {}) is rechecked  # all checked now
    assert asked == []


def test_a_new_only_rebuild_rechecks_the_skipped_sources_too(tmp_path: Path) -> None:
    """With ``check_ingested=False`` a skipped source was never looked at: the recheck finds it
    changed and keeps the changes the plan already had."""
    a, b, c = _files(tmp_path, "a.nc", "b.nc", "c.nc")
    ledger = Ledger.from_dict("g", {_url(a): "old", _url(b): _stat_sum(b)})
    plan = plan_ingest([a, c], ledger=ledger, concatenated=True, on_changed=OnChanged.REINGEST,
                       options={}, check_ingested=False)  # fmt: skip
    plan = replace(plan, changed=["file:///earlier.nc"])  # one it already had
    rechecked = recheck_unlisted(plan, OnChanged.REINGEST, {})
    assert rechecked.changed == ["file:///earlier.nc", _url(a)]
    assert rechecked.checksums[_url(a)] == _stat_sum(a)


def test_a_rebuild_refuses_the_first_changed_source_naming_both_checksums(
    tmp_path: Path,
) -> None:
    """``OnChanged.ERROR``: of two changed unlisted sources the first in scan order is named,
    with the checksum recorded and the one it has now; an unchanged group raises nothing."""
    a, b, c = _files(tmp_path, "a.nc", "b.nc", "c.nc")
    ledger = Ledger.from_dict("g", {_url(a): "was-a", _url(b): "was-b"})
    plan = plan_ingest([c], ledger=ledger, concatenated=True, on_changed=OnChanged.ERROR,
                       options={})  # fmt: skip
    with pytest.raises(StaleSourceError) as caught:
        recheck_unlisted(plan, OnChanged.ERROR, {})
    assert str(caught.value) == (
        f"{_url(a)} changed since it was ingested (checksum was-a -> {_stat_sum(a)}); "
        "rebuilding this dataset rescans it: pass on_changed='reingest'"
    )
    same = Ledger.from_dict("g", {_url(a): _stat_sum(a), _url(b): _stat_sum(b)})
    plan = plan_ingest([c], ledger=same, concatenated=True, on_changed=OnChanged.ERROR,
                       options={})  # fmt: skip
    assert recheck_unlisted(plan, OnChanged.ERROR, {}).changed == []


def test_every_checksum_of_a_plan_is_asked_with_the_given_options(
    s3_bucket: tuple[str, Any, dict[str, Any]],
) -> None:
    """Object-store sources are reached only with the caller's options (the endpoint): each
    checksum the plan and its recheck take equals boto3's ``HEAD`` ETag."""
    name, client, options = s3_bucket
    keys = ["x/a.nc", "x/b.nc", "x/c.nc"]
    for i, key in enumerate(keys):
        client.put_object(Bucket=name, Key=key, Body=os.urandom(8 + i))
    urls = [f"s3://{name}/{k}" for k in keys]
    etags = {u: "etag:" + client.head_object(Bucket=name, Key=k)["ETag"].strip('"')
             for u, k in zip(urls, keys, strict=True)}  # fmt: skip
    assert checksums(urls, options) == etags
    ledger = Ledger.from_dict("", {urls[0]: "old"})
    checked = plan_ingest(urls[1:], ledger=ledger, concatenated=True,
                          on_changed=OnChanged.REINGEST, options=options)  # fmt: skip
    assert checked.checksums == {u: etags[u] for u in urls[1:]}
    assert recheck_unlisted(checked, OnChanged.REINGEST, options).checksums == etags
    new_only = plan_ingest(urls, ledger=ledger, concatenated=False,
                           on_changed=OnChanged.REINGEST, options=options,
                           check_ingested=False)  # fmt: skip
    assert new_only.checksums == {u: etags[u] for u in urls[1:]}
