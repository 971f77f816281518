"""End to end: an archive of NetCDF4 daily files and a GRIB file becomes one versioned dataset.

Run with ``make demo`` (which keeps everything in ``demo-output/``) or
``python examples/archive_end_to_end.py [DIR]``. In DIR (default: a temporary directory) it

1. writes an "archive": 10 daily NetCDF4 files of 2 m temperature (hourly, 1-degree grid, packed
   int16 with scale_factor/add_offset, zlib) and one GRIB2 file of 500 hPa geopotential forecasts;
2. ingests the daily files along ``time`` into a local repository (one commit), and the GRIB file
   into the group ``forecasts`` (a second commit) — no bytes are copied, only chunk references;
3. opens the result with ``xr.open_dataset(..., engine="icechunk_virtual")``, plots a map and a
   time series to PNG files;
4. runs the "scheduled backfill job" twice: with 5 more days (appended in time order, including a
   gap that is filled), then again with the same list (nothing to do);
5. prints the history, the ledger's view (what is skipped) and fsck's report.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import netCDF4
import numpy as np
import xarray as xr

import icechunk_virtual as iv

LAT = np.arange(60.0, 30.0, -1.0)  # 30 x 60 points over the North Atlantic and Europe
LON = np.arange(-40.0, 20.0, 1.0)


def write_day(path: Path, day: str) -> Path:
    """One day of hourly 2 m temperature, as many archives hold it (time units per file)."""
    hours = np.arange(24)
    doy = np.datetime64(day).astype("datetime64[D]").astype(int) % 365
    lat, lon = np.meshgrid(LAT, LON, indexing="ij")
    seasonal = 8 * np.cos(2 * np.pi * (doy - 200) / 365)
    field = 288 - 0.6 * (lat - 45) + seasonal + 3 * np.sin(np.radians(lon * 3))
    diurnal = 4 * np.sin(2 * np.pi * (hours - 9) / 24)[:, None, None]
    rng = np.random.default_rng(doy)
    values = field[None] + diurnal + rng.normal(0, 0.5, (24, *field.shape))
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", None)
        nc.createDimension("lat", len(LAT))
        nc.createDimension("lon", len(LON))
        time = nc.createVariable("time", "f8", ("time",))
        time.units, time.calendar = f"hours since {day}", "standard"
        time[:] = hours
        nc.createVariable("lat", "f4", ("lat",))[:] = LAT
        nc.createVariable("lon", "f4", ("lon",))[:] = LON
        t2m = nc.createVariable(
            "t2m", "i2", ("time", "lat", "lon"), zlib=True, chunksizes=(1, len(LAT), len(LON)),
            fill_value=-32767,
        )  # fmt: skip
        t2m.scale_factor, t2m.add_offset = 0.002, 280.0
        t2m.units, t2m.long_name = "K", "2 metre temperature"
        t2m[:] = values
    return path


def write_grib(path: Path) -> Path:
    """500 hPa geopotential forecasts (steps 0-48 h) on a 2-degree global grid, with ecCodes."""
    import eccodes

    template = eccodes.codes_grib_new_from_samples("regular_ll_pl_grib2")
    eccodes.codes_set_key_vals(
        template,
        "Ni=180,Nj=91,iDirectionIncrementInDegrees=2,jDirectionIncrementInDegrees=2,"
        "latitudeOfFirstGridPointInDegrees=90,latitudeOfLastGridPointInDegrees=-90,"
        "longitudeOfFirstGridPointInDegrees=0,longitudeOfLastGridPointInDegrees=358,"
        "shortName=z,level=500,dataDate=20240101,dataTime=0",
    )
    lat = np.linspace(90, -90, 91)[:, None]
    with path.open("wb") as f:
        for step in range(0, 49, 12):
            message = eccodes.codes_clone(template)
            eccodes.codes_set(message, "step", step)
            wave = np.cos(np.radians(np.arange(0, 360, 2) * 4 + step * 3))[None, :]
            values = 9.81 * (5500 + 300 * np.cos(np.radians(lat)) + 60 * wave)
            eccodes.codes_set_values(message, values.ravel())
            eccodes.codes_write(message, f)
            eccodes.codes_release(message)
    eccodes.codes_release(template)
    return path


def main(root: Path) -> None:
    archive = root / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    days = [f"2024-01-{d:02d}" for d in range(1, 16)]
    files = {d: write_day(archive / f"t2m_{d}.nc", d) for d in days}
    grib = write_grib(archive / "z500_fc_20240101.grib2")
    first_batch = [str(files[d]) for d in days[:10] if d != "2024-01-05"]  # a day is missing

    shutil.rmtree(root / "repo", ignore_errors=True)  # this script's own output from a past run
    repo = iv.Repository.create(str(root / "repo"))
    print(f"created {repo}")
    report = repo.ingest(first_batch, concat_dim="time", progress=False)
    print(f"ingested {len(report.added)} daily files in {report.seconds:.2f} s")
    repo.ingest([str(grib)], group="forecasts", progress=False, message="z500 forecasts")

    ds = xr.open_dataset(str(root / "repo"), engine="icechunk_virtual")
    print(ds)
    fig, ax = plt.subplots(figsize=(7, 4))
    ds.t2m.isel(time=12).plot(ax=ax, cmap="RdYlBu_r")
    ax.set_title(f"2 m temperature, {str(ds.time.values[12])[:16]}")
    fig.savefig(root / "t2m_map.png", dpi=80, bbox_inches="tight")
    fig, ax = plt.subplots(figsize=(7, 3))
    ds.t2m.sel(lat=50, lon=0, method="nearest").plot(ax=ax)
    ax.set_title("2 m temperature at 50N 0E (hourly; 5 January missing)")
    fig.savefig(root / "t2m_series.png", dpi=80, bbox_inches="tight")
    forecasts = xr.open_dataset(str(root / "repo"), engine="icechunk_virtual", group="forecasts")
    print(f"forecasts: {dict(forecasts.sizes)}; variables {sorted(forecasts.data_vars)}")
    plt.close("all")

    # The scheduled job: the full list, every day (old and new) each time it runs.
    backfill = repo.ingest([str(files[d]) for d in days], concat_dim="time", progress=False)
    print(
        f"backfill: {len(backfill.added)} added (5 January among them), "
        f"{len(backfill.skipped)} skipped, in {backfill.seconds:.2f} s"
    )
    again = repo.ingest([str(files[d]) for d in days], concat_dim="time", progress=False)
    print(f"re-run: snapshot {again.snapshot_id}, {len(again.skipped)} skipped")

    ds = xr.open_dataset(str(root / "repo"), engine="icechunk_virtual")
    assert ds.sizes["time"] == 15 * 24 and bool(
        (np.diff(ds.time.values) > np.timedelta64(0, "ns")).all()
    )
    with netCDF4.Dataset(files["2024-01-05"]) as nc:  # the backfilled day reads as netCDF4 reads it
        np.testing.assert_allclose(ds.t2m.sel(time="2024-01-05").values, nc["t2m"][:], rtol=1e-6)

    print("history:")
    for info in repo.ancestry(branch="main"):
        print(f"  {info.id}  {info.written_at:%H:%M:%S}  {info.message}")
    print(repo.fsck(check_sources=True))
    print(f"plots: {root / 't2m_map.png'}, {root / 't2m_series.png'}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
