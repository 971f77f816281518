"""365 small daily NetCDF4 files, end to end: scan + combine along time + commit.

icechunk_virtual's ``ingest(..., concat_dim="time")`` against kerchunk (``SingleHdf5ToZarr`` per
file + ``MultiZarrToZarr``, references written to JSON) and VirtualiZarr (``open_virtual_mfdataset``
+ ``to_icechunk`` into a local Icechunk repository), in one process, warm page cache. Then the
scheduled-job case: ours run again with the same list (it must commit nothing).

    python benchmarks/ingest.py [--dir /tmp/icv-daily] [--files 365]

Targets (issue: ingest): >= 4x both anchors; the re-run < 5 % of the first run. Each tool's
combined dataset must have the files' full time length (365 x 24), or the benchmark fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

import icechunk_virtual as iv

SHAPE = (24, 32, 64)  # a day of hourly fields on a small grid


def build(directory: Path, count: int) -> list[Path]:
    """Daily files (written once), each with its own time units, as many archives do."""
    import netCDF4

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for day in range(count):
        path = directory / f"day_{day:03d}.nc"
        paths.append(path)
        if path.exists():
            continue
        date = np.datetime64("2023-01-01") + np.timedelta64(day, "D")
        with netCDF4.Dataset(path, "w") as nc:
            for name, size in zip(("time", "lat", "lon"), SHAPE, strict=True):
                nc.createDimension(name, size)
            time_ = nc.createVariable("time", "f8", ("time",))
            time_.units = f"hours since {date}"
            time_[:] = np.arange(SHAPE[0])
            nc.createVariable("lat", "f4", ("lat",))[:] = np.linspace(-90, 90, SHAPE[1])
            nc.createVariable("lon", "f4", ("lon",))[:] = np.linspace(0, 354, SHAPE[2])
            t2m = nc.createVariable("t2m", "f4", ("time", "lat", "lon"), zlib=True,
                                    chunksizes=(1, *SHAPE[1:]))  # fmt: skip
            t2m.units = "K"
            t2m[:] = rng.normal(280, 10, SHAPE).astype("f4")
    return paths


Tool = tuple[Callable[[], None], Callable[[], int]]
"""A tool's run, and a function giving the time length of the dataset the run made."""


def time_length(ds: xr.Dataset) -> int:
    with ds:
        return int(ds.sizes["time"])


def ours(paths: list[Path], work: Path) -> Tool:
    repo = iv.Repository.create(str(work / "ours"))

    def run() -> None:
        iv.ingest(repo, [str(p) for p in paths], concat_dim="time", progress=False)

    return run, lambda: time_length(xr.open_dataset(repo, engine="icechunk_virtual"))


def kerchunk(paths: list[Path], work: Path) -> Tool:
    refs = work / "kerchunk.json"

    def run() -> None:
        from kerchunk.combine import MultiZarrToZarr
        from kerchunk.hdf import SingleHdf5ToZarr

        singles = [SingleHdf5ToZarr(str(p), inline_threshold=300).translate() for p in paths]
        # coo_map: each file's time values (in its own units), not its index along time
        combined = MultiZarrToZarr(singles, concat_dims=["time"],
                                   coo_map={"time": "cf:time"}).translate()  # fmt: skip
        refs.write_text(json.dumps(combined))

    def length() -> int:
        options = {"consolidated": False, "storage_options": {"fo": str(refs)}}
        return time_length(xr.open_dataset("reference://", engine="zarr", backend_kwargs=options))

    return run, length


def virtualizarr(paths: list[Path], work: Path) -> Tool:
    made: list[Any] = []  # the repository, once run

    def run() -> None:
        import icechunk
        from obstore.store import LocalStore
        from virtualizarr import open_virtual_mfdataset
        from virtualizarr.parsers import HDFParser
        from virtualizarr.registry import ObjectStoreRegistry

        registry = ObjectStoreRegistry({"file://": LocalStore()})
        ds = open_virtual_mfdataset(
            [f"file://{p}" for p in paths], parser=HDFParser(), registry=registry,
            combine="nested", concat_dim="time", coords="minimal", compat="override",
        )  # fmt: skip
        config = icechunk.RepositoryConfig.default()
        config.set_virtual_chunk_container(
            icechunk.VirtualChunkContainer(f"file://{paths[0].parent}/",
                                           icechunk.local_filesystem_store(str(paths[0].parent)))
        )  # fmt: skip
        repo = icechunk.Repository.create(
            icechunk.local_filesystem_storage(str(work / "vz-icechunk")), config
        )
        session = repo.writable_session("main")
        ds.vz.to_icechunk(session.store)
        session.commit("ingest")
        made.append(repo)

    def length() -> int:  # the time coordinate is loaded (native chunks): no container access
        store = made[0].readonly_session(branch="main").store
        return time_length(xr.open_dataset(store, engine="zarr", consolidated=False))

    return run, length


def import_everything() -> None:
    """Import what every tool uses before any is timed, so none pays for imports another did:
    xarray/pandas/cftime (all three decode CF time), h5py, and the anchors' own modules."""
    import importlib

    for name in ("xarray", "pandas", "cftime", "h5py", "netCDF4", "kerchunk.combine",
                 "kerchunk.hdf", "virtualizarr", "virtualizarr.parsers", "icechunk"):  # fmt: skip
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "icv-daily")
    parser.add_argument("--files", type=int, default=365)
    args = parser.parse_args()
    paths = build(args.dir, args.files)
    import_everything()
    rows: list[tuple[str, float]] = []
    rerun = float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, make in (("icechunk_virtual", ours), ("kerchunk", kerchunk),
                           ("VirtualiZarr + Icechunk", virtualizarr)):  # fmt: skip
            try:
                run, length = make(paths, work)
                start = time.perf_counter()
                run()
                rows.append((name, time.perf_counter() - start))
                if name == "icechunk_virtual":
                    start = time.perf_counter()
                    run()  # the scheduled job again, same list: nothing to commit
                    rerun = time.perf_counter() - start
            except Exception as exc:  # an anchor failing is reported, not fatal
                print(f"{name}: failed: {exc!r}")
                continue
            if (got := length()) != len(paths) * SHAPE[0]:  # a wrong result is fatal
                raise AssertionError(
                    f"{name}: time has length {got}, not {len(paths)} x {SHAPE[0]}"
                )
    print(
        f"ingest: {len(paths)} daily files, combined along time (first run, cold worker pool, imports warm)"
    )
    print(f"{'tool':<26}{'seconds':>9}{'files/s':>9}{'ours is':>9}")
    for name, seconds in rows:
        print(f"{name:<26}{seconds:>9.2f}{len(paths) / seconds:>9.0f}"
              f"{seconds / rows[0][1]:>8.1f}x")  # fmt: skip
    print(f"icechunk_virtual re-run, same list: {rerun:.3f} s "
          f"({100 * rerun / rows[0][1]:.1f} % of the first run)")  # fmt: skip


if __name__ == "__main__":
    main()
