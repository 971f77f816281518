"""Scan the 30-file NetCDF4 archive into chunk refs: files/s and refs/s side by side.

icechunk_virtual's ``readers.open_virtual`` (files in parallel threads) against kerchunk's
``SingleHdf5ToZarr`` and VirtualiZarr's HDF parser, in one process, warm page cache. Ours scans in
worker processes (``readers.parallel``); the table is the best of ``--repeats`` runs, and the first
call, which starts the workers, is printed apart.

    python benchmarks/scan.py [--dir /tmp/icv-archive] [--repeats 3]

Target (issue: HDF5 reader): >= 4x the faster of the two.

The GRIB case scans one synthetic GRIB2 file of 480 messages (written with ecCodes into ``--dir``)
against kerchunk's ``scan_grib``: messages/s. Target: >= 10x.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from archive import GRIB_MESSAGES, archive_from_command_line, build_grib_file

from readers.codecs.grib import GRIB_CODEC
from readers.parallel import scan_many
from readers.registry import open_virtual


def ours(paths: list[Path]) -> int:
    scans = list(scan_many([str(p) for p in paths]))
    return sum(a.refs.num_rows for s in scans for a in s.arrays.values())


def kerchunk(paths: list[Path]) -> int:
    from kerchunk.hdf import SingleHdf5ToZarr

    refs = [SingleHdf5ToZarr(str(p), inline_threshold=0).translate()["refs"] for p in paths]
    return sum(1 for r in refs for k in r if not k.endswith((".zarray", ".zattrs", ".zgroup")))


def virtualizarr(paths: list[Path]) -> int:
    from obstore.store import LocalStore
    from virtualizarr.parsers import HDFParser
    from virtualizarr.registry import ObjectStoreRegistry

    registry = ObjectStoreRegistry({"file://": LocalStore()})
    parser = HDFParser()
    total = 0
    for p in paths:
        store = parser(url=f"file://{p}", registry=registry)
        total += sum(len(m._manifest) for m in store._group.arrays.values())  # type: ignore[attr-defined]
    return total


def ours_grib(path: Path) -> int:
    scanned = open_virtual(str(path))
    return sum(
        a.refs.num_rows for a in scanned.arrays.values() if a.codecs[0]["name"] == GRIB_CODEC
    )


def kerchunk_grib(path: Path) -> int:
    from kerchunk.grib2 import scan_grib

    return len(scan_grib(str(path)))  # one reference set per message


def grib_case(args: argparse.Namespace) -> None:
    path = build_grib_file(args.dir / "messages.grib2")
    rows = []
    for name, run in (("icechunk_virtual", ours_grib), ("kerchunk scan_grib", kerchunk_grib)):
        try:
            rows.append((name, *best(lambda paths, run=run: run(paths[0]), [path], args.repeats)))
        except Exception as exc:  # an anchor failing is reported, not fatal
            print(f"{name}: failed: {exc!r}")
    print(f"scan: one GRIB2 file of {GRIB_MESSAGES} messages ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"{'scanner':<20}{'seconds':>9}{'messages':>10}{'messages/s':>12}{'ours is':>9}")
    for name, seconds, messages in rows:
        print(
            f"{name:<20}{seconds:>9.3f}{messages:>10}{messages / seconds:>12.0f}"
            f"{seconds / rows[0][1]:>8.1f}x"
        )


def best(run: Callable[[list[Path]], int], paths: list[Path], repeats: int) -> tuple[float, int]:
    seconds, refs = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        refs = run(paths)
        seconds = min(seconds, time.perf_counter() - start)
    return seconds, refs


def main() -> None:
    args, paths = archive_from_command_line(__doc__)
    start = time.perf_counter()
    ours(paths)
    cold = time.perf_counter() - start  # includes starting the worker processes
    rows = []
    for name, run in (
        ("icechunk_virtual", ours),
        ("kerchunk", kerchunk),
        ("VirtualiZarr", virtualizarr),
    ):
        try:
            rows.append((name, *best(run, paths, args.repeats)))
        except Exception as exc:  # an anchor failing is reported, not fatal
            print(f"{name}: failed: {exc!r}")
    ours_s = rows[0][1]
    print(f"scan: {len(paths)} files")
    print(f"{'scanner':<18}{'seconds':>9}{'refs':>7}{'files/s':>9}{'refs/s':>10}{'ours is':>9}")
    for name, seconds, refs in rows:
        print(
            f"{name:<18}{seconds:>9.3f}{refs:>7}{len(paths) / seconds:>9.0f}"
            f"{refs / seconds:>10.0f}{seconds / ours_s:>8.1f}x"
        )
    print(
        f"icechunk_virtual's first call, which starts its worker processes: {cold:.3f} s; the "
        "pool is kept for later calls (scheduled jobs scan again)"
    )
    print()
    grib_case(args)


if __name__ == "__main__":
    main()
