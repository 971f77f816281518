from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from icechunk_virtual.io.coalesce import plan_reads

ranges = st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 500)), min_size=1, max_size=80)


@given(ranges, st.integers(0, 2000), st.integers(1, 5000))
def test_merged_reads_return_exactly_the_requested_bytes(
    requests: list[tuple[int, int]], gap: int, cap: int
) -> None:
    source = np.random.default_rng(0).integers(0, 255, 11_000, dtype=np.uint8).tobytes()
    offsets = np.array([r[0] for r in requests])
    lengths = np.array([r[1] for r in requests])
    plan = plan_reads(offsets, lengths, max_gap_bytes=gap, max_coalesced_bytes=cap)
    fetched = [source[s:e] for s, e in zip(plan.starts, plan.ends, strict=True)]
    for i, (offset, length) in enumerate(requests):
        buf = fetched[plan.group[i]]
        start = plan.offset_in_group[i]
        assert buf[start : start + length] == source[offset : offset + length]
    # no merged range is larger than the cap unless one request alone is
    sizes = plan.ends - plan.starts
    assert (sizes <= max(cap, int(lengths.max())) + cap).all()


def test_close_ranges_merge_and_far_ranges_do_not() -> None:
    plan = plan_reads(
        np.array([0, 110, 5000]),
        np.array([100, 100, 10]),
        max_gap_bytes=50,
        max_coalesced_bytes=1 << 20,
    )
    assert plan.starts.tolist() == [0, 5000] and plan.ends.tolist() == [210, 5010]
    assert plan.group.tolist() == [0, 0, 1] and plan.offset_in_group.tolist() == [0, 110, 0]
