"""Shifting refs along an axis, against a model: a dict of coordinate -> ref, moved by hand."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icechunk_virtual.chunk_refs.shift import shifted_refs
from icechunk_virtual.chunk_refs.tables import (
    apply_changes,
    coords_of,
    empty_refs,
    keep_last,
    virtual_refs,
)
from icechunk_virtual.format.manifest_file import ChunkKind

Coord = tuple[int, int]


def _table(refs: dict[Coord, int]) -> pa.Table:
    if not refs:
        return empty_refs(2)
    coords = sorted(refs)
    return virtual_refs(
        {"coord": coords, "location": [f"file:///f{refs[c]}.nc" for c in coords],
         "offset": [refs[c] for c in coords], "length": [1] * len(coords)},
        ndim=2, grid=None, where="test",
    )  # fmt: skip


def _as_model(table: pa.Table) -> dict[Coord, int]:
    live = [k != ChunkKind.DELETED for k in table.column("kind").to_pylist()]
    coords = [tuple(int(v) for v in c) for c in coords_of(table, 2)]
    offsets = table.column("offset").to_pylist()
    return {c: o for c, o, keep in zip(coords, offsets, live, strict=True) if keep}  # type: ignore[misc]


@settings(max_examples=200, deadline=None)
@given(
    refs=st.dictionaries(st.tuples(st.integers(0, 9), st.integers(0, 3)), st.integers(0, 99)),
    axis=st.sampled_from([0, 1]),
    start=st.integers(0, 10),
    by=st.integers(1, 4),
)
def test_shifted_refs_move_the_tail_and_vacate_the_gap(
    refs: dict[Coord, int], axis: int, start: int, by: int
) -> None:
    def moved(c: Coord) -> Coord:
        return (c[0] + by, c[1]) if axis == 0 else (c[0], c[1] + by)

    expected = {c: o for c, o in refs.items() if c[axis] < start}
    expected.update({moved(c): o for c, o in refs.items() if c[axis] >= start})
    base = _table(refs)
    changes = keep_last(shifted_refs(base, 2, axis, start, by), 2)
    assert _as_model(apply_changes(base, changes, 2)) == expected


def test_a_shift_backwards_is_refused() -> None:
    with pytest.raises(ValueError, match="forward"):
        shifted_refs(_table({(0, 0): 1}), 2, 0, 0, 0)
