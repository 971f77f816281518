"""A session's change set against plain-Python models, where a mutation run (mutmut) found gaps.

``ArrayChanges`` takes single-chunk writes and bulk batches in any interleaving; the model is a
list of the rows written, in order: ``merged``/``indexed`` must give the last row written for each
coordinate (tombstones included, sorted), ``pending_rows`` the number of rows held (de-duplicated
only by a merge), and ``take_for_spill`` must hand over exactly the merged rows and forget them.
``ChangeSet``'s node bookkeeping (a node deleted and created again *replaces* the old one, a
subtree delete drops pending changes below it and nothing beside it) is checked case by case.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from icechunk_virtual.chunk_refs.tables import native_refs
from icechunk_virtual.format.manifest_file import ChunkKind
from icechunk_virtual.repository.changeset import ArrayChanges, ChangeSet, is_under

Row = tuple[tuple[int, int], int, str | None, int]
"""(coord, kind, location, length)"""

coords = st.tuples(st.integers(0, 3), st.integers(0, 3))
rows = st.builds(
    lambda c, kind, n: (c, kind, None if kind == ChunkKind.DELETED else f"loc-{n}", n),
    coords,
    st.sampled_from([ChunkKind.NATIVE, ChunkKind.DELETED, ChunkKind.VIRTUAL]),
    st.integers(1, 50),
)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("chunk"), rows),
        st.tuples(st.just("batch"), st.lists(rows, max_size=4)),
        st.tuples(st.just("merged"), st.none()),
        st.tuples(st.just("spill"), st.none()),
    ),
    max_size=14,
)


def _batch(batch: list[Row]) -> pa.Table:
    return native_refs(
        2,
        [r[0] for r in batch],
        [r[1] for r in batch],
        [r[2] for r in batch],
        [r[3] for r in batch],
        [None] * len(batch),
    )


def _last_per_coord(written: list[Row]) -> list[Row]:
    last: dict[tuple[int, int], Row] = {}
    for row in written:
        last[row[0]] = row
    return [last[c] for c in sorted(last)]


def _as_rows(table: pa.Table) -> list[Row]:
    return [((r["c0"], r["c1"]), r["kind"], r["location"], r["length"]) for r in table.to_pylist()]


@given(ops)
def test_array_changes_match_a_list_model(program: list[tuple[str, Any]]) -> None:
    changes = ArrayChanges(2)
    written: list[Row] = []
    for op, arg in program:
        if op == "chunk":
            coord, kind, location, length = arg
            changes.add_chunk(coord, kind, location, length)
            written.append(arg)
        elif op == "batch":
            changes.add_batch(_batch(arg))
            written += arg
        elif op == "merged":
            assert _as_rows(changes.merged()) == _last_per_coord(written)
            written = _last_per_coord(written)
        else:
            assert _as_rows(changes.take_for_spill()) == _last_per_coord(written)
            written = []
        assert changes.pending_rows() == len(written)
    expected = _last_per_coord(written)
    indexed = changes.indexed()
    for coord, kind, location, length in expected:
        ref = indexed.lookup(coord)
        assert ref is not None and (ref.kind, ref.location, ref.length) == (kind, location, length)
    assert _as_rows(changes.merged()) == expected
    assert changes.pending_rows() == len(expected)


def test_a_merge_after_more_writes_sees_them() -> None:
    changes = ArrayChanges(1)
    changes.add_chunk((0,), ChunkKind.NATIVE, "a", 1)
    first = changes.merged()
    assert first.num_rows == 1
    index = changes.indexed()
    changes.add_chunk((1,), ChunkKind.NATIVE, "b", 2)
    assert changes.merged().column("c0").to_pylist() == [0, 1]
    assert changes.indexed() is not index and changes.indexed().lookup((1,)) is not None
    changes.add_batch(_batch_1d([(0, "c")]))
    assert changes.merged().column("location").to_pylist() == ["c", "b"]
    assert changes.indexed().lookup((0,)).location == "c"  # type: ignore[union-attr]


def _batch_1d(items: list[tuple[int, str]]) -> pa.Table:
    return native_refs(
        1,
        [(c,) for c, _ in items],
        [ChunkKind.NATIVE] * len(items),
        [loc for _, loc in items],
        [1] * len(items),
        [None] * len(items),
    )


def test_take_for_spill_forgets_the_refs_and_the_index() -> None:
    changes = ArrayChanges(1)
    changes.add_chunk((0,), ChunkKind.NATIVE, "a", 1)
    assert changes.indexed().lookup((0,)) is not None
    assert changes.take_for_spill().num_rows == 1
    assert changes.pending_rows() == 0 and changes.merged().num_rows == 0
    assert changes.indexed().lookup((0,)) is None


def test_inline_bytes_survive_the_flush() -> None:
    changes = ArrayChanges(1)
    changes.add_chunk((2,), ChunkKind.INLINE, None, 3, b"xyz")
    [row] = changes.merged().to_pylist()
    assert (row["c0"], row["kind"], row["length"], row["inline"]) == (
        2,
        ChunkKind.INLINE,
        3,
        b"xyz",
    )


def test_is_under() -> None:
    assert is_under("/a", "/a") and is_under("/a/b", "/a") and is_under("/a", "/")
    assert is_under("/", "/")
    assert not is_under("/ab", "/a") and not is_under("/a", "/a/b") and not is_under("/b", "/a")


def test_a_node_deleted_and_created_again_replaces_the_old_one() -> None:
    changes = ChangeSet()
    assert changes.is_empty()
    changes.set_node("/a", {"v": 1})
    assert not changes.nodes["/a"].replaces and not changes.is_empty()
    changes.delete_subtree("/a", iter(["/a"]))
    assert changes.deleted == {"/a"} and "/a" not in changes.nodes
    changes.set_node("/a", {"v": 2}, text="t")
    assert changes.deleted == set()
    assert (changes.nodes["/a"].replaces, changes.nodes["/a"].text) == (True, "t")
    changes.set_node("/a", {"v": 3})  # still replacing: the old node's chunks stay gone
    assert changes.nodes["/a"].replaces and changes.nodes["/a"].zarr_json == {"v": 3}
    changes.set_node("/b", {"v": 1})
    assert not changes.nodes["/b"].replaces


def test_a_subtree_delete_drops_what_is_below_and_nothing_beside() -> None:
    changes = ChangeSet()
    for path in ("/a", "/a/x", "/ab", "/b"):
        changes.set_node(path, {})
        changes.array(path, 1).add_chunk((0,), ChunkKind.NATIVE, "c", 1)
    changes.delete_subtree("/a", iter(["/a", "/a/y"]))
    assert set(changes.nodes) == set(changes.chunks) == {"/ab", "/b"}
    assert changes.deleted == {"/a", "/a/y"}
    assert changes.array("/b", 1) is changes.chunks["/b"]
    assert changes.array("/b", 1).lock is changes.lock
    changes.clear()
    assert changes.is_empty() and not changes.deleted


def test_is_empty_sees_each_kind_of_change() -> None:
    for change in ("node", "deleted", "chunks"):
        changes = ChangeSet()
        if change == "node":
            changes.set_node("/a", {})
        elif change == "deleted":
            changes.delete_subtree("/a", iter(["/a"]))
        else:
            changes.array("/a", 1)
        assert not changes.is_empty(), change
