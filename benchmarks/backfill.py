"""A scheduled daily backfill job: an archive of N daily files, then four one-file appends.

For N in ``--sizes`` (365, 3650, 36500 by default) the benchmark writes N + 4 small daily NetCDF4
files once (24 hourly steps of an 8 x 16 float32 ``t2m``, one zlib chunk per file, the time
unlimited and in units of "hours since <its own day>", as ``tests/.../test_combine.py``'s
``_write`` makes them) into ``--work``/files-N and reuses them on later runs. Then, in one
process, on the same files, warm page cache, each tool runs the job's steps from scratch:

- **initial**: the first N files into a repository (or reference set);
- **append 1-4**: each day's new file, as a cron job run once a day would add it;
- **no-op**: the job run again with nothing new (ours only: the anchors keep no ledger of what
  they ingested, so there is nothing for them to run);
- **read**: open the result and read the last day of ``t2m`` (no dask).

The tools:

- icechunk_virtual: ``ingest(repo, urls[:N], concat_dim="time")``, then each day ``ingest`` with
  the whole list so far (a glob in the cron job; the ledger finds the one new file), the repository
  reopened for each run; the no-op passes the same list again and must commit nothing;
- icechunk_virtual (cron): the same, each append and the no-op run as cron runs them, in a new
  Python process (its start-up and imports included), with ``check_ingested=False`` (only the
  new file is looked at);
- VirtualiZarr + Icechunk: ``open_virtual_mfdataset`` (HDF parser, coordinates loaded as
  VirtualiZarr advises for ``time``) + ``vz.to_icechunk`` + commit into a local Icechunk repository
  with a virtual chunk container for the file directory; each day ``open_virtual_dataset`` of the
  new file + ``to_icechunk(append_dim="time")`` + commit;
- kerchunk: ``SingleHdf5ToZarr`` per file (each file's references cached as a JSON file) +
  ``MultiZarrToZarr(concat_dims=["time"], coo_map={"time": "cf:time"})`` written to JSON; each day
  the new file translated and ``MultiZarrToZarr`` run again over every cached file (kerchunk's way
  to append); only up to ``--kerchunk-up-to`` files (3,650), as those appends grow with N.

Every step is measured for wall seconds, CPU seconds (this process's ``time.process_time()`` plus
its child processes': our scan runs in worker processes, whose CPU is read from psutil for the
live ones and from ``RUSAGE_CHILDREN`` for those that ended), peak RSS growth of this process
(``_measure.measure``; workers' memory is not in it) and the bytes on disk after the step (the
repository; for kerchunk the combined JSON and its cache of single-file references, which the
appends need) with the bytes each append added. The tools run one after another in the same
process, so before each step freed heap is handed back to the system (``malloc_trim``) and a
tool's RSS growth does not hide in memory an earlier one freed. Before anything is timed every
tool runs its path once on a few files (imports, our worker pool started), so no step pays a
start-up another avoided. The appends here run with our worker pool already started by the
initial ingest; a cron job in a fresh process each day would also pay its imports (and scans a
one-file job in-process, without starting the pool).

Every tool's result is checked after the last append, and the benchmark fails if one is wrong: a
time axis of (N + 4) x 24 hourly steps from the first file's first hour, and the last day's values
equal to those in the last file, read with h5py.

    python benchmarks/backfill.py [--sizes 365 3650 36500] [--work /tmp/icv-backfill]

It prints a table per N, the ratios anchor / ours of the initial ingest, the mean one-file append
and the read, and how our mean append grows with N (its time at each N over that at the smallest).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import psutil
import xarray as xr
from _measure import directory_bytes, measure, ratio

import icechunk_virtual as iv

SHAPE = (24, 8, 16)  # a day of hourly fields on a small grid: one chunk per file
APPENDS = 4
FIRST_DAY = np.datetime64("2000-01-01")
VARIABLE = "t2m"
WARM_UP_FILES = 4


# ---- the files ------------------------------------------------------------------------------


def write_day(directory: Path, day: int) -> None:
    """One daily file, written under a temporary name and renamed (a killed run leaves none
    half-written). Like ``test_combine._write``: unlimited time in hours since its own day."""
    import netCDF4

    date = FIRST_DAY + np.timedelta64(day, "D")
    path = directory / f"day_{day:05d}.nc"
    partial_path = directory / f".{path.name}.tmp"
    with netCDF4.Dataset(partial_path, "w") as nc:
        nc.createDimension("time", None)
        nc.createDimension("lat", SHAPE[1])
        nc.createDimension("lon", SHAPE[2])
        time_ = nc.createVariable("time", "f8", ("time",))
        time_.units = f"hours since {date}"
        time_.calendar = "standard"
        time_[:] = np.arange(SHAPE[0])
        nc.createVariable("lat", "f4", ("lat",))[:] = np.linspace(-60, 60, SHAPE[1])
        nc.createVariable("lon", "f4", ("lon",))[:] = np.linspace(0, 337.5, SHAPE[2])
        t2m = nc.createVariable(VARIABLE, "f4", ("time", "lat", "lon"), zlib=True, chunksizes=SHAPE)
        t2m.units = "K"
        t2m[:] = 280 + 10 * np.random.default_rng(day).standard_normal(SHAPE, dtype="f4")
    os.replace(partial_path, path)


def generate(directory: Path, count: int) -> list[Path]:
    """``count`` daily files in ``directory``, written once (in a pool of processes) and reused."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"day_{day:05d}.nc" for day in range(count)]
    present = {entry.name for entry in os.scandir(directory)}
    missing = [day for day, path in enumerate(paths) if path.name not in present]
    if missing:
        start = time.perf_counter()
        # spawn, not fork: by the second size this process runs threads (zarr's, Icechunk's)
        with multiprocessing.get_context("spawn").Pool(os.cpu_count() or 1) as pool:
            for _ in pool.imap_unordered(partial(write_day, directory), missing, chunksize=64):
                pass
        print(f"wrote {len(missing)} files in {directory} in {time.perf_counter() - start:.1f} s")
    return paths


def warm_page_cache(paths: list[Path]) -> None:
    for path in paths:
        path.read_bytes()


# ---- measuring ------------------------------------------------------------------------------


class CpuClock:
    """CPU seconds of this process and its children since the clock was made."""

    def __init__(self) -> None:
        self.own = time.process_time()
        self.live = self._children()
        self.ended = self._ended_children()

    @staticmethod
    def _children() -> dict[int, float]:
        seconds = {}
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                times = child.cpu_times()
                seconds[child.pid] = times.user + times.system
        return seconds

    @staticmethod
    def _ended_children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def seconds(self) -> float:
        live = self._children()
        # a child alive at the start that ended since is in RUSAGE_CHILDREN with its whole life
        before_gone = sum(s for pid, s in self.live.items() if pid not in live)
        children = sum(s - self.live.get(pid, 0.0) for pid, s in live.items())
        ended = self._ended_children() - self.ended - before_gone
        return time.process_time() - self.own + children + max(ended, 0.0)


@dataclass
class Step:
    name: str
    seconds: float
    cpu: float
    rss_mb: float
    bytes_on_disk: int
    added: int | None = None  # bytes the step added (appends)


def release_freed_memory() -> None:
    """Give freed heap back to the system (glibc), so RSS growth starts from what is in use."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextmanager
def timed(name: str, steps: list[Step], on_disk: Callable[[], int]) -> Iterator[None]:
    """Measure the block and append its :class:`Step` to ``steps``."""
    release_freed_memory()
    before = on_disk()
    clock = CpuClock()
    with measure() as m:
        yield
    cpu = clock.seconds()
    after = on_disk()
    added = after - before if name.startswith("append") else None
    steps.append(Step(name, m.seconds, cpu, m.peak_rss_growth_mb, after, added))


# ---- the tools ------------------------------------------------------------------------------


class Tool(Protocol):
    name: str
    ledger: bool  # whether the tool knows what it ingested (and can be run again as a no-op)

    def initial(self, n: int) -> None: ...

    def append(self, n: int) -> None:
        """The cron job on the day the ``n``-th file arrived."""

    def noop(self, n: int) -> None:
        """The job again with the same ``n`` files (tools with a ledger)."""

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """Open the result: its whole time axis and the last day's values."""

    def on_disk(self) -> int: ...


def last_day(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    try:
        return ds["time"].values, ds[VARIABLE].isel(time=slice(-SHAPE[0], None)).values
    finally:
        ds.close()


class Ours:
    name = "icechunk_virtual"
    ledger = True

    def __init__(self, paths: list[Path], work: Path) -> None:
        self.urls = [str(p) for p in paths]
        self.path = str(work / "ours")

    def initial(self, n: int) -> None:
        report = iv.ingest(iv.Repository.create(self.path), self.urls[:n], concat_dim="time",
                           progress=False)  # fmt: skip
        expect(report.snapshot_id is not None and len(report.added) == n,
               f"{self.name}: the initial ingest added {len(report.added)} of {n} files")  # fmt: skip

    def append(self, n: int) -> None:
        report = iv.ingest(iv.Repository.open(self.path), self.urls[:n], concat_dim="time",
                           progress=False)  # fmt: skip
        expect(report.snapshot_id is not None and len(report.added) == 1,
               f"{self.name}: an append added {report.added} (one file expected)")  # fmt: skip

    def noop(self, n: int) -> None:
        report = iv.ingest(iv.Repository.open(self.path), self.urls[:n], concat_dim="time",
                           progress=False)  # fmt: skip
        expect(report.snapshot_id is None and not report.added,
               f"{self.name}: the re-run committed {report.snapshot_id} ({report.added})")  # fmt: skip

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        return last_day(xr.open_dataset(self.path, engine="icechunk_virtual"))

    def on_disk(self) -> int:
        return directory_bytes(self.path) if os.path.exists(self.path) else 0


class OursCron(Ours):
    """The job as cron runs it: every append a new process (interpreter start, imports and
    all), passing the whole list with ``check_ingested=False`` (only the new file is looked at:
    the plan costs nothing per archived file; a changed old file is still refused when read)."""

    name = "icechunk_virtual (cron)"
    SCRIPT = (
        "import sys, icechunk_virtual as iv\n"
        "urls = sys.stdin.read().split('\\n')\n"
        "r = iv.ingest(iv.Repository.open(sys.argv[1]), urls, concat_dim='time', progress=False,"
        " check_ingested=False)\n"
        "print(len(r.added), r.snapshot_id is not None)\n"
    )

    def __init__(self, paths: list[Path], work: Path) -> None:
        super().__init__(paths, work)
        self.path = str(work / "ours-cron")

    def _job(self, n: int) -> tuple[int, bool]:
        done = subprocess.run([sys.executable, "-c", self.SCRIPT, self.path],
                              input="\n".join(self.urls[:n]), capture_output=True, text=True,
                              check=False)  # fmt: skip
        expect(done.returncode == 0, f"{self.name}: the job failed: {done.stderr[-2000:]}")
        added, committed = done.stdout.split()
        return int(added), committed == "True"

    def append(self, n: int) -> None:
        added, committed = self._job(n)
        expect(committed and added == 1, f"{self.name}: an append added {added} files")

    def noop(self, n: int) -> None:
        added, committed = self._job(n)
        expect(not committed and not added, f"{self.name}: the re-run committed {added} files")


class VirtualiZarr:
    name = "VirtualiZarr + Icechunk"
    ledger = False
    LOADED = ("time", "lat", "lon")  # loaded, as VirtualiZarr advises for time

    def __init__(self, paths: list[Path], work: Path) -> None:
        import icechunk
        from icechunk.credentials import LocalFileSystemAccess

        try:
            from obspec_utils.registry import ObjectStoreRegistry
        except ImportError:  # older VirtualiZarr: its own, deprecated since
            from virtualizarr.registry import ObjectStoreRegistry
        from obstore.store import LocalStore

        icechunk.set_logs_filter("error")  # not its warning on every open of local storage
        self.icechunk = icechunk
        self.urls = [f"file://{p}" for p in paths]
        self.path = str(work / "vz-icechunk")
        prefix = f"file://{paths[0].parent}/"
        self.config = icechunk.RepositoryConfig.default()
        self.config.set_virtual_chunk_container(icechunk.VirtualChunkContainer(
            prefix, icechunk.local_filesystem_store(str(paths[0].parent))
        ))  # fmt: skip
        self.credentials = icechunk.containers_credentials({prefix: LocalFileSystemAccess})
        self.registry = ObjectStoreRegistry({"file://": LocalStore()})

    def _open(self) -> Any:
        storage = self.icechunk.local_filesystem_storage(self.path)
        return self.icechunk.Repository.open(
            storage, authorize_virtual_chunk_access=self.credentials
        )

    def initial(self, n: int) -> None:
        from virtualizarr import open_virtual_mfdataset
        from virtualizarr.parsers import HDFParser

        vds = open_virtual_mfdataset(
            self.urls[:n], registry=self.registry, parser=HDFParser(), combine="nested",
            concat_dim="time", coords="minimal", compat="override",
            loadable_variables=list(self.LOADED),
        )  # fmt: skip
        repo = self.icechunk.Repository.create(
            self.icechunk.local_filesystem_storage(self.path), self.config,
            authorize_virtual_chunk_access=self.credentials,
        )  # fmt: skip
        session = repo.writable_session("main")
        vds.vz.to_icechunk(session.store)
        session.commit(f"{n} files")

    def append(self, n: int) -> None:
        from virtualizarr import open_virtual_dataset
        from virtualizarr.parsers import HDFParser

        vds = open_virtual_dataset(self.urls[n - 1], registry=self.registry, parser=HDFParser(),
                                   loadable_variables=list(self.LOADED))  # fmt: skip
        session = self._open().writable_session("main")
        vds.vz.to_icechunk(session.store, append_dim="time")
        session.commit(f"append {self.urls[n - 1]}")

    def noop(self, n: int) -> None:
        raise NotImplementedError("no ledger: the job cannot know it has nothing to do")

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        store = self._open().readonly_session(branch="main").store
        return last_day(xr.open_dataset(store, engine="zarr", consolidated=False))

    def on_disk(self) -> int:
        return directory_bytes(self.path) if os.path.exists(self.path) else 0


class Kerchunk:
    name = "kerchunk"
    ledger = False

    def __init__(self, paths: list[Path], work: Path) -> None:
        self.paths = paths
        self.root = work / "kerchunk"
        self.singles = self.root / "singles"
        self.combined = self.root / "combined.json"

    def _translate(self, path: Path) -> None:
        from kerchunk.hdf import SingleHdf5ToZarr

        refs = SingleHdf5ToZarr(str(path), inline_threshold=300).translate()
        (self.singles / f"{path.stem}.json").write_text(json.dumps(refs))

    def _combine(self, n: int) -> None:
        from kerchunk.combine import MultiZarrToZarr

        singles = [str(self.singles / f"{p.stem}.json") for p in self.paths[:n]]
        combined = MultiZarrToZarr(singles, concat_dims=["time"], identical_dims=["lat", "lon"],
                                   coo_map={"time": "cf:time"}).translate()  # fmt: skip
        self.combined.write_text(json.dumps(combined))

    def initial(self, n: int) -> None:
        self.singles.mkdir(parents=True)
        for path in self.paths[:n]:
            self._translate(path)
        self._combine(n)

    def append(self, n: int) -> None:
        self._translate(self.paths[n - 1])
        self._combine(n)

    def noop(self, n: int) -> None:
        raise NotImplementedError("no ledger: the job cannot know it has nothing to do")

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        options = {"consolidated": False, "storage_options": {"fo": str(self.combined)}}
        return last_day(xr.open_dataset("reference://", engine="zarr", backend_kwargs=options))

    def on_disk(self) -> int:
        return directory_bytes(str(self.root)) if self.root.exists() else 0


TOOLS: tuple[Callable[[list[Path], Path], Tool], ...] = (Ours, OursCron, Kerchunk, VirtualiZarr)


# ---- checking -------------------------------------------------------------------------------


class WrongResult(AssertionError):
    """A tool's dataset is not what its files hold."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise WrongResult(message)


def check(name: str, times: np.ndarray, values: np.ndarray, paths: list[Path]) -> None:
    """The whole time axis is hourly from the first file's first hour, and the last day's values
    are the last file's, read with h5py."""
    import h5py

    expect(len(times) == len(paths) * SHAPE[0],
           f"{name}: time has length {len(times)}, not {len(paths)} x {SHAPE[0]}")  # fmt: skip
    hours = FIRST_DAY.astype("datetime64[h]") + np.arange(len(times))
    expect(np.array_equal(np.asarray(times, dtype="datetime64[h]"), hours),
           f"{name}: the time axis is not hourly from {FIRST_DAY}")  # fmt: skip
    with h5py.File(paths[-1], "r") as f:
        expected = f[VARIABLE][:]
    expect(values.shape == expected.shape and np.array_equal(values, expected),
           f"{name}: the last day's {VARIABLE} differs from {paths[-1].name}")  # fmt: skip


# ---- running --------------------------------------------------------------------------------


def run_tool(tool: Tool, n: int, paths: list[Path]) -> list[Step]:
    steps: list[Step] = []
    with timed("initial", steps, tool.on_disk):
        tool.initial(n)
    for k in range(1, APPENDS + 1):
        with timed(f"append {k}", steps, tool.on_disk):
            tool.append(n + k)
    if tool.ledger:
        with timed("no-op re-run", steps, tool.on_disk):
            tool.noop(n + APPENDS)
    result: list[tuple[np.ndarray, np.ndarray]] = []
    with timed("read last day", steps, tool.on_disk):
        result.append(tool.read())
    check(tool.name, *result[0], paths)
    return steps


def warm_up(paths: list[Path], work: Path) -> float:
    """Each tool's path once on a few files, into throwaway outputs: imports done, our worker
    pool started. Returns the seconds of our ingest there (most of it starting the pool)."""
    import importlib

    for name in ("h5py", "netCDF4", "cftime", "pandas", "kerchunk.combine", "kerchunk.hdf",
                 "virtualizarr", "virtualizarr.parsers", "icechunk"):  # fmt: skip
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    directory = work / "warm-up"
    shutil.rmtree(directory, ignore_errors=True)
    start = time.perf_counter()
    ours = Ours(paths, directory)
    ours.initial(WARM_UP_FILES)  # the pool starts a worker per task, up to one per core
    seconds = time.perf_counter() - start
    ours.read()
    kerchunk = Kerchunk(paths, directory)
    kerchunk.initial(1)
    kerchunk.read()
    vz = VirtualiZarr(paths, directory)
    vz.initial(1)
    vz.read()
    shutil.rmtree(directory)
    return seconds


def mean_append(steps: list[Step]) -> Step:
    appends = [s for s in steps if s.name.startswith("append")]
    return Step(
        "append mean",
        float(np.mean([s.seconds for s in appends])),
        float(np.mean([s.cpu for s in appends])),
        float(np.mean([s.rss_mb for s in appends])),
        appends[-1].bytes_on_disk,
        int(np.mean([s.added or 0 for s in appends])),
    )


def step_named(steps: list[Step], name: str) -> Step:
    return mean_append(steps) if name == "append mean" else next(s for s in steps if s.name == name)


def print_size(n: int, results: dict[str, list[Step]]) -> None:
    print(f"\nbackfill: N = {n:,} daily files of {' x '.join(map(str, SHAPE))} float32, then "
          f"{APPENDS} one-file appends (warm page cache, imports and our worker pool warm)")  # fmt: skip
    print(f"{'tool':<25}{'step':<15}{'wall s':>9}{'CPU s':>9}{'RSS MB':>8}"
          f"{'on disk B':>13}{'added B':>11}")  # fmt: skip
    for tool, steps in results.items():
        rows = [*steps[: 1 + APPENDS], mean_append(steps), *steps[1 + APPENDS :]]
        for i, s in enumerate(rows):
            if s.name == "read last day" and rows[i - 1].name != "no-op re-run":
                print(f"{'':<25}{'no-op re-run':<15}{'n/a (no ledger)':>18}")
            added = f"{s.added:,}" if s.added is not None else ""
            print(f"{tool if i == 0 else '':<25}{s.name:<15}{s.seconds:>9.3f}{s.cpu:>9.3f}"
                  f"{s.rss_mb:>8.1f}{s.bytes_on_disk:>13,}{added:>11}")  # fmt: skip
    ours = results[Ours.name]
    for unit, field in (("wall s", "seconds"), ("CPU s", "cpu")):
        print(f"{f'anchor / ours ({unit})':<25}"
              f"{'initial':>18}{'append mean':>18}{'read last day':>18}")  # fmt: skip
        for tool, steps in results.items():
            if tool in (Ours.name, OursCron.name):
                continue
            cells = [ratio(getattr(step_named(ours, name), field),
                           getattr(step_named(steps, name), field))
                     for name in ("initial", "append mean", "read last day")]  # fmt: skip
            print(f"{tool:<25}" + "".join(f"{c:>18}" for c in cells))


def print_flatness(by_size: dict[int, dict[str, list[Step]]]) -> None:
    smallest = min(by_size)
    print(f"\nmean one-file append at each N over that at N = {smallest:,} (flat is 1.0)")
    print(f"{'N':>8}" + "".join(f"{tool:>26}" for tool in by_size[smallest]))
    for n, results in sorted(by_size.items()):
        cells = []
        for tool in by_size[smallest]:
            if tool not in results:
                cells.append("failed")
                continue
            seconds = mean_append(results[tool]).seconds
            base = mean_append(by_size[smallest][tool]).seconds
            cells.append(f"{seconds:.3f} s ({seconds / base:.2f})")
        print(f"{n:>8,}" + "".join(f"{c:>26}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[365, 3650, 36500])
    parser.add_argument("--work", type=Path, default=Path("/tmp/icv-backfill"))
    parser.add_argument("--kerchunk-up-to", type=int, default=3650, metavar="N",
                        help="run kerchunk only for N up to this (its appends re-combine every "
                             "file: 45 s each at N = 3,650, some 7 min at 36,500)")  # fmt: skip
    args = parser.parse_args()
    sizes = sorted(set(args.sizes))
    files = {n: generate(args.work / f"files-{n}", n + APPENDS) for n in sizes}
    pool_start = warm_up(files[sizes[0]], args.work)
    print(f"warm-up: our first ingest ({WARM_UP_FILES} files, starting the worker pool): "
          f"{pool_start:.2f} s")  # fmt: skip
    by_size: dict[int, dict[str, list[Step]]] = {}
    for n in sizes:
        paths = files[n]
        warm_page_cache(paths)
        work = args.work / f"run-{n}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        by_size[n] = {}
        for make in TOOLS:
            if make is Kerchunk and n > args.kerchunk_up_to:
                print(f"N = {n:,}, kerchunk: skipped (--kerchunk-up-to {args.kerchunk_up_to:,})")
                continue
            start = time.perf_counter()
            tool = make(paths, work)
            try:
                by_size[n][tool.name] = run_tool(tool, n, paths)
            except WrongResult:
                raise
            except Exception as exc:  # an anchor failing is reported, not fatal
                if make in (Ours, OursCron):
                    raise
                print(f"N = {n:,}, {tool.name}: failed: {exc!r}")
                continue
            print(
                f"N = {n:,}, {tool.name}: done in {time.perf_counter() - start:.1f} s", flush=True
            )
        print_size(n, by_size[n])
    if len(by_size) > 1:
        print_flatness(by_size)


if __name__ == "__main__":
    main()
