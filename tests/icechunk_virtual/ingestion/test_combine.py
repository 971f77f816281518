"""``ingest(..., concat_dim=...)``: files laid end to end in coordinate order, checked first."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr
import zarr

import icechunk_virtual as iv

LAT, LON = np.linspace(-60, 60, 7), np.linspace(0, 350, 8)


def _write(path: Path, start: str, steps: int, *, chunk: int | None = 1, **changes: Any) -> Path:
    """A file of ``steps`` hourly (daily for monthly files) fields from ``start``; its time
    units are relative to its own start, as many archives write them."""
    step = changes.pop("step", "hours")
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", steps if chunk is None else None)
        nc.createDimension("lat", len(LAT))
        nc.createDimension("lon", len(LON))
        time = nc.createVariable("time", "f8", ("time",))
        time.units = f"{step} since {start}"
        time.calendar = "standard"
        time[:] = np.arange(steps)
        lat = nc.createVariable("lat", "f4", ("lat",))
        lat[:] = changes.pop("lat", LAT)
        nc.createVariable("lon", "f4", ("lon",))[:] = LON
        dtype = changes.pop("dtype", "i2")
        chunks = None if chunk is None else (chunk, len(LAT), len(LON))
        t2m = nc.createVariable("t2m", dtype, ("time", "lat", "lon"), zlib=chunk is not None, chunksizes=chunks,
                                contiguous=chunk is None, fill_value=-999)  # fmt: skip
        t2m.scale_factor = changes.pop("scale_factor", 0.01)
        t2m.add_offset = 273.15
        t2m.units = changes.pop("units", "K")
        rng = np.random.default_rng(changes.pop("seed", sum(map(ord, start))))
        values = 273.15 + rng.normal(0, 10, (steps, len(LAT), len(LON)))
        mask = np.zeros(values.shape, dtype=bool)
        mask[0, 0, 0] = True  # a masked point per file
        t2m[:] = np.ma.array(values, mask=mask)
    return path


def _files(paths: list[Path]) -> xr.Dataset:
    """The oracle: xarray (netCDF4) reading the files themselves, combined by coordinates."""
    with xr.open_mfdataset(sorted(paths), combine="by_coords") as ds:
        return ds.load()


def _ingest(paths: list[Path], **options: Any) -> xr.Dataset:
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    iv.ingest(repo, [str(p) for p in paths], progress=False, **options)
    return xr.open_dataset(repo, engine="icechunk_virtual").load()


def test_daily_files_combine_in_time_order_like_open_mfdataset(tmp_path: Path) -> None:
    days = [f"2024-01-{d:02d}" for d in (3, 1, 4, 2, 5)]  # listed out of order on purpose
    paths = [_write(tmp_path / f"{d}.nc", d, 24) for d in days]
    ours = _ingest(paths, concat_dim="time")
    theirs = xr.open_mfdataset(sorted(paths), combine="by_coords").load()
    assert ours.sizes == {"time": 120, "lat": 7, "lon": 8}
    xr.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert ours["t2m"].attrs == theirs["t2m"].attrs
    assert pd_index_is_hourly(ours)


def pd_index_is_hourly(ds: xr.Dataset) -> bool:
    steps = np.diff(ds["time"].values).astype("timedelta64[h]").astype(int)
    return bool((steps == 1).all())


def test_files_of_different_lengths_give_a_rectilinear_grid(tmp_path: Path) -> None:
    months = [("2023-02-01", 28), ("2023-01-01", 31), ("2023-03-01", 31), ("2023-04-01", 30)]
    paths = [_write(tmp_path / f"{m}.nc", m, n, chunk=n, step="days") for m, n in months]
    ours = _ingest(paths, concat_dim="time")
    theirs = xr.open_mfdataset(paths, combine="by_coords").load()
    assert ours.sizes["time"] == 120
    xr.testing.assert_allclose(ours, theirs, rtol=1e-6)
    contiguous = [_write(tmp_path / f"c{m}.nc", m, n, chunk=None, step="days") for m, n in months]
    xr.testing.assert_allclose(_ingest(contiguous, concat_dim="time"), theirs, rtol=1e-6)
    # chunked differently along time only: still whole chunks, so still combinable
    mixed = [_write(tmp_path / "m1.nc", "2023-01-01", 24, chunk=1),
             _write(tmp_path / "m2.nc", "2023-01-02", 24, chunk=4)]  # fmt: skip
    expected = xr.open_mfdataset(mixed, combine="by_coords").load()
    xr.testing.assert_allclose(_ingest(mixed, concat_dim="time"), expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"dtype": "i4"}, "dtype"),
        ({"units": "degC"}, "attribute 'units'"),
        ({"scale_factor": 0.02}, "attribute 'scale_factor'"),
        ({"lat": LAT + 1}, "the values of '/lat'"),
    ],
)
def test_each_mismatch_names_both_files_and_what_differs(
    tmp_path: Path, change: dict[str, Any], what: str
) -> None:
    good = _write(tmp_path / "a.nc", "2024-01-01", 24)
    bad = _write(tmp_path / "b.nc", "2024-01-02", 24, **change)
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    before = repo.lookup_branch("main")
    with pytest.raises(iv.IncompatibleSourcesError, match=what) as caught:
        iv.ingest(repo, [str(good), str(bad)], concat_dim="time", progress=False)
    assert "a.nc" in str(caught.value) and "b.nc" in str(caught.value)
    assert repo.lookup_branch("main") == before  # nothing committed


def test_overlaps_and_partial_chunks_are_refused(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.nc", "2024-01-01", 24)
    b = _write(tmp_path / "b.nc", "2024-01-01T12:00", 24)
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    with pytest.raises(iv.IncompatibleSourcesError, match="overlap"):
        iv.ingest(repo, [str(a), str(b)], concat_dim="time", progress=False)
    c = _write(tmp_path / "c.nc", "2024-02-01", 5, chunk=2)
    d = _write(tmp_path / "d.nc", "2024-03-01", 5, chunk=2)
    with pytest.raises(iv.IncompatibleSourcesError, match="partial chunk"):
        iv.ingest(repo, [str(c), str(d)], concat_dim="time", progress=False)


def test_rerunning_a_backfill_job_commits_only_what_is_new(tmp_path: Path) -> None:
    days = {d: _write(tmp_path / f"{d}.nc", d, 24) for d in
            ("2024-01-01", "2024-01-02", "2024-01-04", "2024-01-05", "2024-01-03")}  # fmt: skip
    paths = list(days.values())
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    first = iv.ingest(repo, [str(p) for p in paths[:2]], concat_dim="time", progress=False)
    assert len(first.added) == 2 and first.snapshot_id == repo.lookup_branch("main")

    again = iv.ingest(repo, [str(p) for p in paths[:2]], concat_dim="time", progress=False)
    assert again.snapshot_id is None and len(again.skipped) == 2 and not again.added
    assert repo.lookup_branch("main") == first.snapshot_id  # nothing committed

    later = iv.ingest(repo, [str(p) for p in paths[:4]], concat_dim="time", progress=False)
    assert len(later.added) == 2 and len(later.skipped) == 2
    gap = iv.ingest(repo, [str(p) for p in paths], concat_dim="time", progress=False)  # 3rd day
    assert [Path(u).name for u in gap.added] == ["2024-01-03.nc"]
    ours = xr.open_dataset(repo, engine="icechunk_virtual").load()
    theirs = xr.open_mfdataset(sorted(paths), combine="by_coords").load()
    xr.testing.assert_allclose(ours, theirs, rtol=1e-6)
    messages = [info.message for info in repo.ancestry(branch="main")]
    assert len(messages) == 4  # three ingests and the initial snapshot

    days["2024-01-02"].unlink()  # the archive replaces a file (xarray may still hold the old one)
    _write(days["2024-01-02"], "2024-01-02", 24, seed=99)  # new values
    with pytest.raises(iv.StaleSourceError, match=r"2024-01-02\.nc"):
        iv.ingest(repo, [str(p) for p in paths], concat_dim="time", progress=False)
    redone = iv.ingest(repo, [str(p) for p in paths], concat_dim="time", progress=False,
                       on_changed="reingest")  # fmt: skip
    assert [Path(u).name for u in redone.changed] == ["2024-01-02.nc"]
    fresh = xr.open_mfdataset(sorted(paths), combine="by_coords").load()
    xr.testing.assert_allclose(xr.open_dataset(repo, engine="icechunk_virtual").load(), fresh,
                               rtol=1e-6)  # fmt: skip


def test_files_ingested_one_group_each_are_not_ingested_twice(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.nc", "2024-01-01", 3)
    b = _write(tmp_path / "b.nc", "2024-01-02", 3)
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    iv.ingest(repo, [str(a)], progress=False)
    report = iv.ingest(repo, [str(a), str(b)], progress=False)
    assert [Path(u).name for u in report.added] == ["b.nc"] and len(report.skipped) == 1
    ds = xr.open_dataset(repo, engine="icechunk_virtual", group="b")
    assert ds.sizes["time"] == 3


def test_ingest_into_a_group(tmp_path: Path) -> None:
    paths = [str(_write(tmp_path / f"{d}.nc", d, 24)) for d in ("2024-01-01", "2024-01-02")]
    repo = iv.Repository.create(str(tmp_path / "repo"))
    repo.ingest(paths, concat_dim="time", group="reanalysis/t2m", progress=False)
    ds = xr.open_dataset(str(tmp_path / "repo"), engine="icechunk_virtual", group="reanalysis/t2m")
    assert ds.sizes["time"] == 48
    assert "reanalysis" in zarr.open_group(repo.readonly_session().store, mode="r")
