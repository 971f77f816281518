"""Each step of an ingest, alone: planning against a ledger, the ledger's record, scanning as our
errors, locations, and writing a scanned dataset into a session."""

from __future__ import annotations

import os
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import zarr

import icechunk_virtual as iv
from icechunk_virtual._sync import sync
from icechunk_virtual.errors import (
    CorruptSourceError,
    InvalidInputError,
    SourceNotFoundError,
    StaleSourceError,
)
from icechunk_virtual.format.snapshot import LEDGER_KEY
from icechunk_virtual.ingestion.ledger import Ledger, read_ledgers
from icechunk_virtual.ingestion.locations import join, location, locations, source_prefix
from icechunk_virtual.ingestion.plan import OnChanged, checksums, plan_ingest
from icechunk_virtual.ingestion.scan import scan_sources
from icechunk_virtual.ingestion.write import write_dataset
from icechunk_virtual.zarr.store import IcechunkVirtualStore
from readers.registry import open_virtual


def _files(tmp_path: Path, names: list[str]) -> list[str]:
    paths = []
    for name in names:
        path = tmp_path / name
        path.write_bytes(name.encode() * 10)
        paths.append(str(path))
    return paths


def _netcdf(path: Path, values: list[float]) -> str:
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", len(values))
        ds.createVariable("v", "f8", ("x",), zlib=True)[:] = values
    return str(path)


def test_locations() -> None:
    assert location("/a/b.nc") == "file:///a/b.nc"
    assert location("s3://bucket/b.nc") == "s3://bucket/b.nc"
    assert source_prefix("s3://bucket/day/b.nc") == "s3://bucket/day/"
    assert join("", "/x/") == "x" and join("g", "") == "g" and join("g/h", "/x") == "g/h/x"


@pytest.mark.parametrize("odd", [None, "rel/c.nc", "/q/./r.nc", "/t//u.nc", "/v/../w.nc"])
def test_a_whole_lists_locations_are_each_ones_once_in_order(odd: str | None) -> None:
    """The vectorised path and the fallback agree with ``os.path.abspath``."""
    given: list[str | Path] = ["/a/b.nc", "s3://x/y.nc", Path("/a/c.nc"), "/a/b.nc", "s3://x/y.nc"]
    if odd is not None:
        given.insert(2, odd)
    expected = ["file:///a/b.nc", "s3://x/y.nc", "file:///a/c.nc"]
    if odd is not None:
        expected.insert(2, "file://" + os.path.abspath(odd))
    assert locations(given).to_pylist() == expected
    assert locations([]).to_pylist() == []


def test_plan_sorts_sources_against_the_ledger(tmp_path: Path) -> None:
    old, same, new = _files(tmp_path, ["old.nc", "same.nc", "new.nc"])
    sums = checksums([old, same, new], {})
    ledger = {location(old): "a checksum it no longer has", location(same): sums[location(same)]}
    plan = plan_ingest([old, same, new], ledger=Ledger.from_dict("g", ledger), concatenated=False,
                       on_changed=OnChanged.REINGEST, options={})  # fmt: skip
    assert plan.added == [location(new)]
    assert plan.changed == [location(old)]
    assert plan.skipped == [location(same)]
    assert plan.scan == [location(new), location(old)]  # only what is new or changed
    assert plan.checksums == {u: sums[u] for u in plan.scan}
    assert not plan.is_empty
    # concatenated: every source of the group, old ones included, in order
    joined = plan_ingest([new], ledger=Ledger.from_dict("g", ledger), concatenated=True,
                         on_changed=OnChanged.ERROR, options={})  # fmt: skip
    assert joined.scan == sorted([location(old), location(same), location(new)])
    assert joined.checksum(location(old)) == "a checksum it no longer has"  # from the ledger
    assert joined.checksum(location(new)) == sums[location(new)]


def test_plan_refuses_changed_sources_and_bad_input(tmp_path: Path) -> None:
    (path,) = _files(tmp_path, ["a.nc"])
    ledger = {location(path): "stale"}
    with pytest.raises(StaleSourceError, match=r"a\.nc changed since it was ingested"):
        plan_ingest([path], ledger=Ledger.from_dict("", ledger), concatenated=False,
                    on_changed=OnChanged.ERROR, options={})  # fmt: skip
    for bad in ("a.nc", []):
        with pytest.raises(InvalidInputError, match="non-empty list"):
            plan_ingest(bad, ledger=Ledger(""), concatenated=False,  # type: ignore[arg-type]
                        on_changed=OnChanged.ERROR, options={})  # fmt: skip
    assert OnChanged.parse("reingest") is OnChanged.REINGEST
    with pytest.raises(InvalidInputError, match="'error', 'reingest'"):
        OnChanged.parse("ignore")


def test_unchanged_sources_make_an_empty_plan(tmp_path: Path) -> None:
    (path,) = _files(tmp_path, ["a.nc"])
    ledger = {location(path): checksums([path], {})[location(path)]}
    plan = plan_ingest([path], ledger=Ledger.from_dict("", ledger), concatenated=True,
                       on_changed=OnChanged.ERROR, options={})  # fmt: skip
    assert plan.is_empty and plan.skipped == [location(path)]


def test_ledgers_of_repositories_written_before_the_tree_come_from_commit_metadata(
    tmp_path: Path,
) -> None:
    """Before the ledger tree, each ingest commit held the whole ledger in its metadata."""
    repo = iv.Repository.create(str(tmp_path / "repo"))
    core = repo.async_repository
    assert read_ledgers(core, "main") == {}
    assert read_ledgers(core, "no-such-branch") == {}
    records = [{"": {"file:///a": "1"}}, {"": {"file:///a": "1", "file:///b": "2"}}]
    for i, record in enumerate(records):
        session = repo.writable_session()
        zarr.open_group(session.store, path=f"g{i}", mode="a")
        session.commit("ingest", metadata={LEDGER_KEY: {"groups": record}})
    session = repo.writable_session()  # a later commit without a ledger does not hide it
    zarr.open_group(session.store, path="other", mode="a")
    session.commit("not an ingest")
    assert read_ledgers(core, "main") == {"": {"file:///a": "1", "file:///b": "2"}}
    assert LEDGER_KEY not in next(repo.ancestry(branch="main")).metadata  # it walked back


def test_scan_raises_our_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)  # an HDF5 signature and nothing after
    with pytest.raises(CorruptSourceError) as caught:
        scan_sources([str(junk)], None, progress=False, client=None)
    assert caught.value.__cause__ is not None  # chained to the reader's error
    with pytest.raises(SourceNotFoundError):
        scan_sources([str(tmp_path / "missing.nc")], None, progress=False, client=None)


def test_write_dataset_creates_arrays_and_returns_their_refs(tmp_path: Path) -> None:
    source = _netcdf(tmp_path / "f.nc", [1.0, 2.0, 3.0])
    dataset = open_virtual(source)
    repo = iv.Repository.create(str(tmp_path / "repo"))
    repo.authorize_virtual_source(source_prefix(source))
    session = sync(repo.async_repository.writable_session("main"))
    store = IcechunkVirtualStore(session)
    pending = write_dataset(store, dataset, "g", {location(source): "sum"})
    assert [path for path, _ in pending] == ["/g/v"]
    (_, refs) = pending[0]
    assert refs["location"].dictionary.to_pylist() == [location(source)]
    assert refs["checksum"].to_pylist() == ["sum"]
    for path, columns in pending:
        sync(session.set_virtual_refs(path, {**columns, "checksum": [None]}))
    np.testing.assert_array_equal(zarr.open_array(store, path="g/v")[:], [1.0, 2.0, 3.0])
