"""The synthetic NetCDF4 archive shared by the read and scan benchmarks.

30 files, each with 3 float32 variables of 24 x 181 x 360 (a day of hourly 1-degree fields), chunks
1 x 181 x 360, zlib level 4 + shuffle: the layout of many reanalysis archives.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

N_FILES = 30
VARIABLES = ("t2m", "u10", "v10")
SHAPE = (24, 181, 360)
CHUNKS = (1, 181, 360)


def build_archive(directory: Path, n_files: int = N_FILES) -> list[Path]:
    """Write the archive (once; existing files are kept) and return the file paths."""
    import netCDF4

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    rng = np.random.default_rng(42)
    lat = np.linspace(-90, 90, SHAPE[1])
    lon = np.linspace(0, 359, SHAPE[2])
    base = 250 + 40 * np.cos(np.deg2rad(lat))[:, None] + 0 * lon[None, :]
    for i in range(n_files):
        path = directory / f"day_{i:03d}.nc"
        paths.append(path)
        if path.exists():
            continue
        with netCDF4.Dataset(path, "w") as ds:
            ds.createDimension("time", SHAPE[0])
            ds.createDimension("lat", SHAPE[1])
            ds.createDimension("lon", SHAPE[2])
            time = ds.createVariable("time", "f8", ("time",))
            time.units = "hours since 2024-01-01"
            time[:] = np.arange(SHAPE[0]) + 24 * i
            ds.createVariable("lat", "f4", ("lat",))[:] = lat
            ds.createVariable("lon", "f4", ("lon",))[:] = lon
            for name in VARIABLES:
                var = ds.createVariable(
                    name,
                    "f4",
                    ("time", "lat", "lon"),
                    zlib=True,
                    complevel=4,
                    shuffle=True,
                    chunksizes=CHUNKS,
                )
                noise = rng.normal(0, 2, SHAPE).astype("f4")
                var[:] = (base[None, :, :] + noise).astype("f4")
    return paths


GRIB_MESSAGES = 480  # 4 parameters x 10 pressure levels x 12 steps
GRIB_SHAPE = (91, 180)  # 2-degree global grid


def build_grib_file(path: Path) -> Path:
    """A multi-message GRIB2 file written with ecCodes (once): 4 parameters x 10 levels x 12
    steps on a 2-degree grid, 16-bit simple packing."""
    if path.exists():
        return path
    import eccodes

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    template = eccodes.codes_grib_new_from_samples("regular_ll_pl_grib2")
    eccodes.codes_set_key_vals(
        template,
        "Ni=180,Nj=91,iDirectionIncrementInDegrees=2,jDirectionIncrementInDegrees=2,"
        "latitudeOfFirstGridPointInDegrees=90,latitudeOfLastGridPointInDegrees=-90,"
        "longitudeOfFirstGridPointInDegrees=0,longitudeOfLastGridPointInDegrees=358",
    )
    with path.open("wb") as f:
        for short_name in ("t", "u", "v", "z"):
            for level in (1000, 925, 850, 700, 500, 400, 300, 250, 200, 100):
                for step in range(0, 72, 6):
                    message = eccodes.codes_clone(template)
                    eccodes.codes_set(message, "shortName", short_name)
                    eccodes.codes_set(message, "level", level)
                    eccodes.codes_set(message, "step", step)
                    eccodes.codes_set_values(message, rng.normal(280, 10, GRIB_SHAPE).ravel())
                    eccodes.codes_write(message, f)
                    eccodes.codes_release(message)
    eccodes.codes_release(template)
    return path


def archive_from_command_line(doc: str | None) -> tuple[argparse.Namespace, list[Path]]:
    """Parse ``--dir`` and ``--repeats`` and build (or reuse) the archive in ``--dir``."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "icv-archive")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    return args, build_archive(args.dir)
