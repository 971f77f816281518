"""Small measuring helpers shared by the benchmarks: wall time, peak RSS growth, directory size."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_rss_growth_mb: float = 0.0
    samples: list[int] = field(default_factory=list)


@contextmanager
def measure(interval: float = 0.005) -> Iterator[Measurement]:
    """Time a block and sample this process's RSS while it runs (peak minus start)."""
    process = psutil.Process()
    result = Measurement()
    start_rss = process.memory_info().rss
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            result.samples.append(process.memory_info().rss)
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - start
        stop.set()
        sampler.join()
        peak = max([*result.samples, process.memory_info().rss])
        result.peak_rss_growth_mb = (peak - start_rss) / 2**20


def directory_bytes(path: str) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """The fastest of ``repeats`` runs of ``fn``, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def ratio(ours: float, theirs: float, *, lower_is_better: bool = True) -> str:
    if ours == 0 or theirs == 0:
        return "n/a"
    value = theirs / ours if lower_is_better else ours / theirs
    return f"{value:.1f}x better" if value >= 1 else f"{1 / value:.1f}x worse"
