"""Survivors of ``make mutation`` in ``ingestion/locations.py``, each pinned by a test whose
expected values come from ``os.path.abspath`` or from how a node path is spelled by hand."""

from __future__ import annotations

import os

import pytest

import icechunk_virtual.ingestion.locations as locations_module
from icechunk_virtual.ingestion.locations import join, location, locations


def test_a_path_ending_in_a_slash_loses_it_as_abspath_does() -> None:
    """``/a/b/`` is not normal: it is made absolute by ``abspath`` (one at a time and in a whole
    list), never recorded with its trailing slash."""
    expected = "file://" + os.path.abspath("/a/b/")
    assert expected == "file:///a/b"
    assert location("/a/b/") == expected
    assert locations(["/a/c.nc", "/a/b/"]).to_pylist() == ["file:///a/c.nc", expected]


def test_a_list_of_urls_and_normal_paths_never_goes_through_location_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the docstring promises a daily job's whole list: URLs and absolute normal paths are
    done in Arrow (the slow per-path fallback is never called)."""

    def refused(url: str) -> str:
        raise AssertionError(f"location({url!r}) called for a list Arrow handles")

    monkeypatch.setattr(locations_module, "location", refused)
    given = ["/data/2024-01-01.nc", "s3://bucket/day/2024-01-02.nc", "/data/2024-01-03.nc"]
    expected = ["file:///data/2024-01-01.nc", "s3://bucket/day/2024-01-02.nc",
                "file:///data/2024-01-03.nc"]  # fmt: skip
    assert locations(given).to_pylist() == expected


def test_join_strips_only_slashes_from_a_node_name() -> None:
    """A name made of other characters (``X``, ``Xwind``) is kept whole under its base."""
    assert join("g", "/Xwind/") == "g/Xwind"
    assert join("", "X") == "X"
