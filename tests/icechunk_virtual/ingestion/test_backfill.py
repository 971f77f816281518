"""Backfill jobs that go wrong quietly elsewhere: a changed file rescanned under its old checksum,
files of one name overwriting each other, a changed single file leaving the root unreadable.
Expected values come from netCDF4/xarray reading the files themselves."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

import icechunk_virtual as iv

from .test_combine import _files, _write


def _repo() -> iv.Repository:
    return iv.Repository.create(f"memory://{uuid.uuid4().hex}")


def test_a_rebuild_never_records_a_changed_file_under_its_old_checksum(tmp_path: Path) -> None:
    """Day 2 changes; the job then passes only a late half day 3 (inside the extent and off the
    chunk grid: a rebuild that rescans day 2 without having been given it). The change is
    caught, never recorded stale."""
    one, two, four = (_write(tmp_path / f"2024-01-0{d}.nc", f"2024-01-0{d}", 24, chunk=24)
                      for d in (1, 2, 4))  # fmt: skip
    repo = _repo()
    iv.ingest(repo, [str(one), str(two), str(four)], concat_dim="time", progress=False)
    two.unlink()
    _write(two, "2024-01-02", 24, chunk=24, seed=99)  # new values, same name
    three = _write(tmp_path / "2024-01-03.nc", "2024-01-03", 12, chunk=12)
    before = repo.lookup_branch("main")
    with pytest.raises(iv.StaleSourceError, match=r"2024-01-02\.nc"):
        iv.ingest(repo, [str(three)], concat_dim="time", progress=False)
    assert repo.lookup_branch("main") == before
    report = iv.ingest(repo, [str(three)], concat_dim="time", progress=False, on_changed="reingest")
    assert [Path(u).name for u in report.changed] == ["2024-01-02.nc"]
    ours = xr.open_dataset(repo, engine="icechunk_virtual").load()  # no StaleSourceError
    theirs = _files([one, two, three, four])
    xr.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_an_insert_beside_a_changed_file_leaves_it_refused_when_read(tmp_path: Path) -> None:
    """The same, with a late day that fits the chunk grid: it is inserted without rescanning
    day 2, whose chunks then still refuse to be read as what was scanned."""
    one, two, four = (_write(tmp_path / f"2024-01-0{d}.nc", f"2024-01-0{d}", 24) for d in (1, 2, 4))
    repo = _repo()
    iv.ingest(repo, [str(one), str(two), str(four)], concat_dim="time", progress=False)
    two.unlink()
    _write(two, "2024-01-02", 24, seed=99)
    three = _write(tmp_path / "2024-01-03.nc", "2024-01-03", 24)
    report = iv.ingest(repo, [str(three)], concat_dim="time", progress=False)
    assert report.changed == []
    with pytest.raises(iv.StaleSourceError, match=r"2024-01-02\.nc"):
        _open(repo)
    iv.ingest(repo, [str(p) for p in (one, two, three, four)], concat_dim="time", progress=False,
              on_changed="reingest")  # fmt: skip
    xr.testing.assert_allclose(_open(repo), _files([one, two, three, four]), rtol=1e-6)


def test_files_of_one_name_get_groups_of_their_own_that_stay(tmp_path: Path) -> None:
    """``a/data.nc`` and ``b/data.nc`` never overwrite each other: each gets a group named by
    the directories that tell them apart, recorded in the ledger, so a later file of that name
    and a re-ingest of a changed one find the groups where they were."""
    for folder in "abc":
        (tmp_path / folder).mkdir()
    a = _write(tmp_path / "a" / "data.nc", "2024-01-01", 3)
    b = _write(tmp_path / "b" / "data.nc", "2024-01-02", 3)
    other = _write(tmp_path / "other.nc", "2024-01-04", 3)
    repo = _repo()
    iv.ingest(repo, [str(a), str(b), str(other)], progress=False)
    assert _groups(repo) == {"a-data", "b-data", "other"}
    c = _write(tmp_path / "c" / "data.nc", "2024-01-03", 3)
    iv.ingest(repo, [str(a), str(b), str(c), str(other)], progress=False)
    assert _groups(repo) == {"a-data", "b-data", "c-data", "other"}
    a.unlink()
    _write(a, "2024-01-01", 3, seed=11)
    iv.ingest(repo, [str(a)], progress=False, on_changed="reingest")
    assert _groups(repo) == {"a-data", "b-data", "c-data", "other"}  # replaced where it was
    for group, path in (("a-data", a), ("b-data", b), ("c-data", c), ("other", other)):
        ours = xr.open_dataset(repo, engine="icechunk_virtual", group=group).load()
        xr.testing.assert_allclose(ours, _files([path]), rtol=1e-6)


def test_a_file_of_a_taken_name_goes_beside_it(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    first = _write(tmp_path / "data.nc", "2024-01-01", 3)
    repo = _repo()
    iv.ingest(repo, [str(first), str(_write(tmp_path / "x.nc", "2024-01-02", 3))], progress=False)
    later = _write(tmp_path / "b" / "data.nc", "2024-01-03", 3)
    iv.ingest(repo, [str(later)], progress=False)
    assert _groups(repo) == {"data", "x", "b-data"}
    ours = xr.open_dataset(repo, engine="icechunk_virtual", group="b-data").load()
    xr.testing.assert_allclose(ours, _files([later]), rtol=1e-6)


def _groups(repo: iv.Repository) -> set[str]:
    return {name.strip("/") for name in xr.open_groups(repo, engine="icechunk_virtual")} - {""}


def test_a_changed_single_file_is_replaced_at_the_root(tmp_path: Path) -> None:
    path = _write(tmp_path / "only.nc", "2024-01-01", 5)
    repo = _repo()
    iv.ingest(repo, [str(path)], progress=False)
    path.unlink()
    _write(path, "2024-01-01", 5, seed=7)
    iv.ingest(repo, [str(path)], progress=False, on_changed="reingest")
    ours = xr.open_dataset(repo, engine="icechunk_virtual").load()  # the root, readable
    xr.testing.assert_allclose(ours, _files([path]), rtol=1e-6)
    assert "only" not in ours.attrs and set(ours.data_vars) == {"t2m"}


def test_new_only_plans_look_at_no_source_ingested_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``check_ingested=False``: only the new file is asked for its checksum; a source that
    changed meanwhile is not looked at then, and is still refused when read (here already by
    the next ingest: the new file's ``lat`` cannot be compared with the stored one, day 1's)."""
    import icechunk_virtual.ingestion.plan as plan

    days = [_write(tmp_path / f"2024-01-0{d}.nc", f"2024-01-0{d}", 24) for d in (1, 2, 3, 4)]
    repo = _repo()
    iv.ingest(repo, [str(p) for p in days[:2]], concat_dim="time", progress=False)
    asked: list[str] = []
    fetch = plan.fetch_checksums

    async def counting(urls: Any, options: Any) -> Any:
        asked.extend(Path(u).name for u in urls)
        return await fetch(urls, options)

    monkeypatch.setattr(plan, "fetch_checksums", counting)
    report = iv.ingest(repo, [str(p) for p in days[:3]], concat_dim="time", progress=False,
                       check_ingested=False)  # fmt: skip
    assert asked == ["2024-01-03.nc"] and len(report.skipped) == 2
    xr.testing.assert_allclose(_open(repo), _files(days[:3]), rtol=1e-6)
    days[0].unlink()
    _write(days[0], "2024-01-01", 24, seed=5)  # changed, not looked at by the next job
    asked.clear()
    before = repo.lookup_branch("main")
    with pytest.raises(iv.StaleSourceError, match=r"2024-01-01\.nc"):
        iv.ingest(repo, [str(p) for p in days], concat_dim="time", progress=False,
                  check_ingested=False)  # fmt: skip
    # day 4 is asked; the append cannot check it against day 1's stored lat (day 1 changed), so
    # a rebuild is planned, which asks every file it would rescan and finds day 1 changed
    assert asked[0] == "2024-01-04.nc" and sorted(asked[1:]) == [p.name for p in days[:3]]
    assert repo.lookup_branch("main") == before
    with pytest.raises(iv.StaleSourceError, match=r"2024-01-01\.nc"):
        _open(repo)
    asked.clear()
    with pytest.raises(iv.StaleSourceError, match=r"2024-01-01\.nc"):  # the default looks
        iv.ingest(repo, [str(p) for p in days], concat_dim="time", progress=False)
    assert sorted(asked) == [p.name for p in days]
    report = iv.ingest(repo, [str(p) for p in days], concat_dim="time", progress=False,
                       on_changed="reingest")  # fmt: skip
    assert [Path(u).name for u in report.changed] == ["2024-01-01.nc"]
    xr.testing.assert_allclose(_open(repo), _files(days), rtol=1e-6)


def test_a_new_only_rebuild_still_checks_every_file_it_rescans(tmp_path: Path) -> None:
    one, two, four = (_write(tmp_path / f"2024-01-0{d}.nc", f"2024-01-0{d}", 24, chunk=24)
                      for d in (1, 2, 4))  # fmt: skip
    repo = _repo()
    iv.ingest(repo, [str(one), str(two), str(four)], concat_dim="time", progress=False)
    two.unlink()
    _write(two, "2024-01-02", 24, chunk=24, seed=99)
    half = _write(tmp_path / "2024-01-03.nc", "2024-01-03", 12, chunk=12)  # a rebuild
    with pytest.raises(iv.StaleSourceError, match=r"2024-01-02\.nc"):
        iv.ingest(repo, [str(one), str(two), str(half), str(four)], concat_dim="time",
                  progress=False, check_ingested=False)  # fmt: skip


def _open(repo: iv.Repository) -> xr.Dataset:
    return xr.open_dataset(repo, engine="icechunk_virtual").load()
