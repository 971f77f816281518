"""1 M virtual refs: build + set_virtual_refs + commit, bytes per ref, open, random lookup, memory.

Runs icechunk_virtual and (if installed, from the ``bench`` extra) the ``icechunk`` package on the
same refs in one process and prints the figures side by side with ratios.

    python benchmarks/commit_scale.py [--refs 1000000] [--files 100]

Targets (issue: repository core): set + commit <= 3 s, <= 8 bytes/ref, commit memory growth
<= 100 MB per 1 M refs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import zarr
from _measure import Measurement, best_of, directory_bytes, measure, ratio

import icechunk_virtual as iv
from icechunk_virtual._sync import sync


@dataclass
class Refs:
    grid: tuple[int, int]
    files: list[str]
    file_index: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray

    @property
    def n(self) -> int:
        return len(self.offsets)


def make_refs(n: int, n_files: int, seed: int = 0) -> Refs:
    """``n`` chunks on a square-ish grid, spread over ``n_files`` files, contiguous in each file."""
    rng = np.random.default_rng(seed)
    side = int(np.sqrt(n))
    grid = (n // side, side)
    n = grid[0] * grid[1]  # a full grid (Icechunk's flat API needs one): n rounded down
    lengths = rng.integers(50_000, 150_000, n, dtype=np.uint64)
    file_index = np.arange(n) * n_files // n
    offsets = np.zeros(n, dtype=np.uint64)
    for f in range(n_files):  # a loop over files, not chunks
        in_file = file_index == f
        file_lengths = lengths[in_file]
        offsets[in_file] = (
            np.concatenate([[0], np.cumsum(file_lengths)[:-1]]).astype(np.uint64) + 4096
        )
    files = [f"s3://archive/era5/{f:05d}.nc" for f in range(n_files)]
    return Refs(grid, files, file_index, offsets, lengths)


def lookup_times(refs: Refs, look_up: Callable[[tuple[int, int]], object]) -> tuple[float, float]:
    """Mean seconds per lookup of 50 random chunks right after open, then of the same 50 again."""
    rng = random.Random(1)
    coords = [(rng.randrange(refs.grid[0]), rng.randrange(refs.grid[1])) for _ in range(50)]
    passes = []
    for _ in range(2):
        start = time.perf_counter()
        for c in coords:
            look_up(c)
        passes.append((time.perf_counter() - start) / len(coords))
    return passes[0], passes[1]


def figures(
    set_m: Measurement,
    commit_m: Measurement,
    bytes_per_ref: float,
    open_seconds: float,
    cold: float,
    warm: float,
) -> dict[str, float]:
    return {
        "set+commit s": set_m.seconds + commit_m.seconds,
        "bytes/ref": bytes_per_ref,
        "set RSS growth MB": set_m.peak_rss_growth_mb,
        "commit RSS growth MB": commit_m.peak_rss_growth_mb,
        "open s": open_seconds,
        "random lookup ms": cold * 1e3,
        "cached lookup ms": warm * 1e3,
    }


def run_ours(refs: Refs, root: str) -> dict[str, float]:
    repo = iv.Repository.create(
        root, config=iv.RepositoryConfig(virtual_sources=("s3://archive/",))
    )
    session = repo.writable_session()
    zarr.open_group(session.store, mode="a").create_array(
        "big", shape=refs.grid, chunks=(1, 1), dtype="f4", compressors=None
    )
    session.commit("array")
    gc.collect()
    with measure() as set_m:
        i = np.arange(refs.n)
        table = {
            "coord": np.column_stack([i // refs.grid[1], i % refs.grid[1]]),
            "location": pa.DictionaryArray.from_arrays(
                pa.array(refs.file_index, pa.int32()), pa.array(refs.files)
            ),
            "offset": refs.offsets,
            "length": refs.lengths,
        }
        session.set_virtual_refs("/big", table)
        del table, i
    with measure() as commit_m:
        session.commit("1M virtual refs")
    size = directory_bytes(root)
    open_seconds = best_of(3, lambda: iv.Repository.open(root).readonly_session())
    fresh = iv.Repository.open(root).readonly_session()._async
    cold, warm = lookup_times(refs, lambda c: sync(fresh.chunks.chunk_ref("/big", c)))
    return figures(set_m, commit_m, size / refs.n, open_seconds, cold, warm)


def run_icechunk(refs: Refs, root: str) -> dict[str, float] | None:
    try:
        import icechunk  # the anchor, from the bench extra
    except ImportError:
        return None
    config = icechunk.RepositoryConfig.default()
    config.set_virtual_chunk_container(
        icechunk.VirtualChunkContainer("s3://archive/", icechunk.s3_store(region="us-east-1"))
    )
    storage = icechunk.local_filesystem_storage(root)
    repo = icechunk.Repository.create(
        storage, config, authorize_virtual_chunk_access={"s3://archive/": None}
    )
    session = repo.writable_session("main")
    zarr.open_group(session.store, mode="a").create_array(
        "big", shape=refs.grid, chunks=(1, 1), dtype="f4", compressors=None
    )
    session.commit("array")
    session = repo.writable_session("main")
    gc.collect()
    with measure() as set_m:
        locations = [refs.files[f] for f in refs.file_index]
        session.store.set_virtual_refs_arr(
            "/big", refs.grid, locations, refs.offsets, refs.lengths, validate_containers=False
        )
        del locations
    with measure() as commit_m:
        session.commit("1M virtual refs")
    size = directory_bytes(root)

    def open_repo() -> Any:
        return icechunk.Repository.open(storage).readonly_session("main")

    open_seconds = best_of(3, open_repo)
    store = open_repo().store
    cold, warm = lookup_times(refs, lambda c: asyncio.run(store.exists(f"big/c/{c[0]}/{c[1]}")))
    return figures(set_m, commit_m, size / refs.n, open_seconds, cold, warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=100)
    args = parser.parse_args()
    refs = make_refs(args.refs, args.files)
    with tempfile.TemporaryDirectory() as ours_dir, tempfile.TemporaryDirectory() as theirs_dir:
        ours = run_ours(refs, ours_dir)
        theirs = run_icechunk(refs, theirs_dir)
    print(f"commit_scale: {args.refs:,} virtual refs over {args.files} files")
    print(f"{'metric':<22}{'icechunk_virtual':>18}{'icechunk':>12}  ratio")
    for key, value in ours.items():
        other = theirs[key] if theirs else float("nan")
        shown = ratio(value, other) if theirs else "(icechunk not installed)"
        print(f"{key:<22}{value:>18.3f}{other:>12.3f}  {shown}")


if __name__ == "__main__":
    main()
