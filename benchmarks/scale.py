"""Scale: N virtual refs streamed into one array and committed; open; random reads; memory.

    python benchmarks/scale.py --refs 10000000 [--batch 1000000] [--dir DIR]

The refs point into one local 64 MB source file (so reads are real), on a grid of N/1000 x 1000
chunks, and are set in batches (as a scan of many files would produce them): the session spills
them to manifest files as they come, so memory does not grow with N. Prints the time to set and
commit (and per million refs), repository bytes per ref, open time, the latency of a random chunk
read right after open (ref lookup + byte read through the read path, and through zarr), and the
process's peak RSS.

Targets (issue: reliability and scale): peak RSS < 1 GB at N = 10 M and 100 M, commit time linear
in N, random chunk read < 2 ms after open. For comparison, Icechunk 2.3 caps a commit at 50 M refs
and used about 0.9 GB of RSS per 1 M refs on this machine (benchmarks/commit_scale.py).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas  # noqa: F401  # loaded in any xarray session; else its import lands in the first read
import pyarrow as pa
import zarr
from _measure import directory_bytes

import icechunk_virtual as iv
from icechunk_virtual._sync import sync

COLUMNS = 1000
SOURCE_BYTES = 64 << 20
CHUNK_BYTES = 4000  # 1000 float32


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def batch(start: int, stop: int, source_url: str) -> dict[str, pa.Array]:
    """Refs of chunks ``start:stop`` in row-major order over the N/1000 x 1000 grid."""
    i = np.arange(start, stop, dtype=np.int64)
    lengths = np.full(len(i), CHUNK_BYTES)  # what zarr expects of an uncompressed chunk
    gaps = np.random.default_rng(start).integers(0, 96, len(i))  # headers between chunks
    offsets = (i * 4096 + gaps) % (SOURCE_BYTES - CHUNK_BYTES)
    return {
        "c0": pa.array((i // COLUMNS).astype(np.int32)),
        "c1": pa.array((i % COLUMNS).astype(np.int32)),
        "location": pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(len(i), np.int32)), pa.array([source_url])
        ),
        "offset": pa.array(offsets, pa.uint64()),  # irregular, as real files' are
        "length": pa.array(lengths, pa.uint64()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    n = args.refs // COLUMNS * COLUMNS
    work = Path(args.dir or tempfile.mkdtemp(prefix="icv-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / "source.bin"
    source.write_bytes(np.random.default_rng(0).integers(0, 255, SOURCE_BYTES, np.uint8).tobytes())
    root = work / "repo"
    shutil.rmtree(root, ignore_errors=True)

    repo = iv.Repository.create(
        str(root), config=iv.RepositoryConfig(virtual_sources=(work.as_uri() + "/",))
    )
    session = repo.writable_session()
    zarr.open_group(session.store, mode="a").create_array(
        "big", shape=(n // COLUMNS, COLUMNS * 1000), chunks=(1, 1000), dtype="f4",
        compressors=None, fill_value=0,
    )  # fmt: skip
    session.commit("array")
    baseline = peak_rss_mb()

    session = repo.writable_session()
    started = time.perf_counter()
    for start in range(0, n, args.batch):
        session.set_virtual_refs("/big", batch(start, min(start + args.batch, n), source.as_uri()))
    set_seconds = time.perf_counter() - started
    started = time.perf_counter()
    session.commit(f"{n} refs")
    commit_seconds = time.perf_counter() - started
    del session
    total = set_seconds + commit_seconds
    peak = peak_rss_mb()
    size = directory_bytes(str(root))

    started = time.perf_counter()
    fresh = iv.Repository.open(str(root)).readonly_session()
    open_seconds = time.perf_counter() - started
    rng = random.Random(1)
    coords = [(rng.randrange(n // COLUMNS), rng.randrange(COLUMNS)) for _ in range(200)]
    store = fresh.store
    started = time.perf_counter()
    for r, c in coords:
        store.get_sync(f"big/c/{r}/{c}")  # zarr's synchronous surface: what its readers call
    read_ms = (time.perf_counter() - started) / len(coords) * 1e3

    async def read_async() -> float:
        from icechunk_virtual.repository.repository import AsyncRepository

        session = await (await AsyncRepository.open(str(root))).readonly_session()
        other = [(r, (c + 500) % COLUMNS) for r, c in coords]  # chunks not read above
        begun = time.perf_counter()
        for c in other:
            await session.chunks.read_chunk("/big", c)
        return (time.perf_counter() - begun) / len(other) * 1e3

    async_ms = asyncio.run(read_async())
    array = zarr.open_array(iv.Repository.open(str(root)).readonly_session().store, path="big")
    started = time.perf_counter()
    for r, c in coords:
        array[r, c * 1000]
    zarr_ms = (time.perf_counter() - started) / len(coords) * 1e3
    ref = sync(fresh._async.chunks.chunk_ref("/big", coords[0]))
    assert ref is not None
    data = sync(fresh._async.chunks.read_chunk("/big", coords[0]))
    assert data == source.read_bytes()[ref.offset : ref.offset + ref.length]

    print(f"refs                         {n:,}")
    print(f"set_virtual_refs (streamed)  {set_seconds:.1f} s")
    print(f"commit                       {commit_seconds:.1f} s")
    print(f"set + commit per 1 M refs    {total / n * 1e6:.2f} s")
    print(f"repository bytes per ref     {size / n:.2f}")
    print(
        f"peak RSS                     {peak:.0f} MB (after creating the array: {baseline:.0f} MB)"
    )
    print(f"open repository + session    {open_seconds * 1e3:.1f} ms")
    print(f"random chunk read after open {read_ms:.2f} ms (store.get_sync: lookup + bytes, 200)")
    print(f"  through the async API      {async_ms:.2f} ms (no hop to the IO thread)")
    print(f"  through zarr               {zarr_ms:.2f} ms (one value of a random chunk)")
    if args.dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
