"""Splitting one contiguous block of values into chunks of whole rows.

Contiguous HDF5 datasets and NetCDF3 fixed-size variables are one block of bytes, row after row. A
block larger than twice ``SLAB_BYTES`` is referenced as slabs of about ``SLAB_BYTES`` along the
first axis, so a reader fetches only the rows it needs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SLAB_BYTES", "rows_per_slab"]

SLAB_BYTES = 8 << 20


def rows_per_slab(rows: int, row_bytes: int) -> int:
    """How many rows one slab holds: all of them for small blocks; else about ``SLAB_BYTES``,
    preferring a count that divides ``rows`` (within half of it) so no slab is partial."""
    if rows * row_bytes <= 2 * SLAB_BYTES:
        return max(rows, 1)
    target = max(SLAB_BYTES // max(row_bytes, 1), 1)
    candidates = np.arange(target // 2 + 1, target + 1)
    divisors = candidates[rows % candidates == 0]
    return int(divisors[-1]) if len(divisors) else target
