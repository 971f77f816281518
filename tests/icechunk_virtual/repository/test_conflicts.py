"""Two sessions on one branch: rebase where changes are disjoint, ConflictError where they meet."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import icechunk_virtual as iv


@pytest.fixture
def repo(location) -> iv.Repository:  # type: ignore[no-untyped-def]
    repo = iv.Repository.create(location.url, storage_options=location.storage_options)
    session = repo.writable_session()
    root = zarr.open_group(session.store, mode="a")
    root.create_array("a", shape=(8,), chunks=(2,), dtype="i4", fill_value=0)
    root.create_array("b", shape=(8,), chunks=(2,), dtype="i4", fill_value=0)
    session.commit("two arrays")
    return repo


def _array(session: iv.Session, name: str) -> zarr.Array:
    return zarr.open_array(session.store, path=name)


def test_same_chunk_conflicts_and_names_array_and_chunk(repo: iv.Repository) -> None:
    first, second = repo.writable_session(), repo.writable_session()
    _array(first, "a")[2:4] = [1, 1]
    _array(second, "a")[2:4] = [2, 2]
    winner = first.commit("first")
    with pytest.raises(iv.ConflictError) as caught:
        second.commit("second")
    error = caught.value
    assert error.winner == winner and error.branch == "main"
    assert [(c.path, c.kind, c.chunks) for c in error.conflicts] == [("/a", "chunks", ((1,),))]
    assert "'/a' chunks c/1" in str(error)
    assert repo.lookup_branch("main") == winner
    np.testing.assert_array_equal(_array(repo.readonly_session(), "a")[2:4], [1, 1])
    assert second.has_uncommitted_changes  # nothing was lost; the caller decides


def test_disjoint_chunks_of_one_array_rebase(repo: iv.Repository) -> None:
    first, second = repo.writable_session(), repo.writable_session()
    _array(first, "a")[0:2] = [1, 1]
    _array(second, "a")[6:8] = [2, 2]
    one = first.commit("first")
    two = second.commit("second")
    assert [h.id for h in repo.ancestry(branch="main")][:2] == [two, one]
    np.testing.assert_array_equal(_array(repo.readonly_session(), "a")[:], [1, 1, 0, 0, 0, 0, 2, 2])


def test_different_arrays_rebase(repo: iv.Repository) -> None:
    first, second = repo.writable_session(), repo.writable_session()
    _array(first, "a")[:] = 1
    _array(second, "b")[:] = 2
    zarr.open_group(second.store, mode="a").create_array("c", shape=(2,), dtype="i4")[:] = 3
    first.commit("a")
    second.commit("b and c")
    group = zarr.open_group(repo.readonly_session().store, mode="r")
    assert group["a"][:].tolist() == [1] * 8 and group["b"][:].tolist() == [2] * 8
    assert group["c"][:].tolist() == [3, 3]


@pytest.mark.parametrize(
    ("first_change", "second_change", "kind"),
    [
        ("attrs", "attrs", "metadata"),
        ("delete", "chunks", "deleted node"),
        ("chunks", "delete", "deleted node"),
        ("attrs", "chunks", "metadata"),
        ("new", "new", "new node"),
    ],
)
def test_metadata_and_node_conflicts(
    repo: iv.Repository, first_change: str, second_change: str, kind: str
) -> None:
    def change(session: iv.Session, what: str, side: int) -> None:
        group = zarr.open_group(session.store, mode="a")
        if what == "attrs":
            group["a"].attrs["who"] = side
        elif what == "chunks":
            group["a"][0:2] = [5, 5]
        elif what == "delete":
            del group["a"]
        elif what == "new":
            group.create_array("fresh", shape=(2,), dtype=f"i{2 * side}")

    first, second = repo.writable_session(), repo.writable_session()
    change(first, first_change, 1)
    change(second, second_change, 2)
    first.commit("first")
    with pytest.raises(iv.ConflictError, match=kind):
        second.commit("second")


def test_identical_new_nodes_do_not_conflict(repo: iv.Repository) -> None:
    first, second = repo.writable_session(), repo.writable_session()
    zarr.open_group(first.store, mode="a").create_group("same", attributes={"k": 1})
    zarr.open_group(second.store, mode="a").create_group("same", attributes={"k": 1})
    _array(second, "b")[0:2] = [4, 4]
    first.commit("first")
    second.commit("second")
    assert dict(zarr.open_group(repo.readonly_session().store, path="same", mode="r").attrs) == {
        "k": 1
    }


def test_explicit_rebase_sees_the_new_tip(repo: iv.Repository) -> None:
    first, second = repo.writable_session(), repo.writable_session()
    _array(second, "b")[0:2] = [7, 7]
    _array(first, "a")[0:2] = [1, 1]
    winner = first.commit("first")
    second.rebase()
    assert second.snapshot_id == winner
    assert _array(second, "a")[0:2].tolist() == [1, 1]
    assert _array(second, "b")[0:2].tolist() == [7, 7]
