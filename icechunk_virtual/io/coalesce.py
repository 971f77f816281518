"""Plan merged reads: byte ranges of one file closer than a gap become one request.

Vectorised with numpy: sorting, gap detection and size capping are array operations, so planning a
read of thousands of chunks costs microseconds per file, not a Python loop per chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["CoalescePlan", "plan_reads"]

type Int64s = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class CoalescePlan:
    """Merged ranges and, per input range, which merged range holds it and where."""

    starts: Int64s
    """Start byte of each merged range."""
    ends: Int64s
    """End byte (exclusive) of each merged range."""
    group: Int64s
    """For each input range, the index of its merged range."""
    offset_in_group: Int64s
    """For each input range, its start relative to its merged range's start."""


def plan_reads(
    offsets: Int64s, lengths: Int64s, *, max_gap_bytes: int, max_coalesced_bytes: int
) -> CoalescePlan:
    """Merge ranges of one file whose gaps are at most ``max_gap_bytes``.

    A merged range grows past ``max_coalesced_bytes`` only when a single input range is larger.
    Overlapping and duplicate ranges are allowed.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    ends = offsets + np.asarray(lengths, dtype=np.int64)
    order = np.argsort(offsets, kind="stable")
    s_start, s_end = offsets[order], ends[order]
    reach = np.maximum.accumulate(s_end)
    # A new merged range starts where the gap to everything before exceeds the threshold...
    breaks = np.ones(len(order), dtype=bool)
    breaks[1:] = s_start[1:] > reach[:-1] + max_gap_bytes
    gap_group = np.cumsum(breaks) - 1
    # ...or where the merged range would grow past the size cap.
    first_start = s_start[np.flatnonzero(breaks)][gap_group]
    size_slot = (s_end - first_start) // max(max_coalesced_bytes, 1)
    key = gap_group * (int(size_slot.max(initial=0)) + 1) + size_slot
    _, sorted_group = np.unique(key, return_inverse=True)
    n_groups = int(sorted_group.max(initial=-1)) + 1
    starts = np.full(n_groups, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(starts, sorted_group, s_start)
    group_ends = np.zeros(n_groups, dtype=np.int64)
    np.maximum.at(group_ends, sorted_group, s_end)
    group = np.empty(len(order), dtype=np.int64)
    group[order] = sorted_group
    return CoalescePlan(starts, group_ends, group, offsets - starts[group])
