"""The engine's preferred chunks: groups of whole stored chunks, checked against brute force."""

from __future__ import annotations

import itertools
import math

from hypothesis import given
from hypothesis import strategies as st

from icechunk_virtual.zarr.task_chunks import grouped_chunks


def _best_by_brute_force(
    shape: tuple[int, ...], chunks: tuple[int, ...], itemsize: int, target: int
) -> tuple[int, ...]:
    """Among the groups contiguous in C order — whole dimensions after one axis, some whole
    number of chunks along it, one chunk before it — the largest within ``target`` bytes (one
    stored chunk if none fits)."""
    counts = [-(-n // c) for n, c in zip(shape, chunks, strict=True)]
    best, best_bytes = tuple(chunks), -1
    for axis in range(len(shape)):
        for factor in range(1, counts[axis] + 1):
            group = list(chunks)
            group[axis] = chunks[axis] * factor
            for after in range(axis + 1, len(shape)):
                group[after] = chunks[after] * counts[after]
            nbytes = math.prod(group) * itemsize
            if nbytes <= target and nbytes > best_bytes:
                best, best_bytes = (
                    tuple(min(g, n) for g, n in zip(group, shape, strict=True)),
                    nbytes,
                )
    return best


dims = st.integers(1, 4).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(1, 30), min_size=n, max_size=n),
        st.lists(st.integers(1, 8), min_size=n, max_size=n),
    )
)


@given(dims, st.sampled_from([1, 2, 4, 8]), st.integers(0, 40_000))
def test_groups_are_the_largest_contiguous_whole_chunk_groups_within_the_target(
    shape_chunks: tuple[list[int], list[int]], itemsize: int, target: int
) -> None:
    shape, chunks = (
        tuple(shape_chunks[0]),
        tuple(min(c, n) for c, n in zip(*shape_chunks, strict=True)),
    )
    group = grouped_chunks(shape, chunks, itemsize, target)
    if target <= 0:
        assert group == chunks
        return
    for size, stored, grouped in zip(shape, chunks, group, strict=True):
        assert isinstance(grouped, int)
        assert grouped == size or grouped % stored == 0  # whole stored chunks only
    assert group == _best_by_brute_force(shape, chunks, itemsize, target)


def test_rectilinear_dimensions_merge_consecutive_chunks() -> None:
    # chunks of 3, 3, 4 rows of 4 values of 4 bytes: 48-64 B each, sized by the longest (64)
    assert grouped_chunks((10, 4), ((3, 3, 4), 4), 4, 40) == ((3, 3, 4), 4)
    assert grouped_chunks((10, 4), ((3, 3, 4), 4), 4, 128) == ((6, 4), 4)
    assert grouped_chunks((10, 4), ((3, 3, 4), 4), 4, 1 << 20) == (10, 4)
    assert grouped_chunks((0, 4), (1, 4), 4, 1 << 20) == (1, 4)
    for shape, chunks in itertools.product([(5,), (7,)], [(2,), (5,)]):
        assert grouped_chunks(shape, chunks, 8, 0) == chunks
