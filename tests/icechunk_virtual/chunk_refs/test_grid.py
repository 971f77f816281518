"""Chunk grids: counts per dimension (regular and rectilinear, as zarr writes them), and refs
outside the grid or beyond what a manifest holds refused with the array and coordinate named."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import zarr

import icechunk_virtual as iv
from icechunk_virtual.chunk_refs.grid import MAX_COORD, chunk_grid_shape

SOURCE = "file:///grid-source/"


def _metadata(store: iv.IcechunkVirtualStore, path: str) -> dict[str, object]:
    from zarr.core.buffer import default_buffer_prototype

    from icechunk_virtual._sync import sync

    raw = sync(store.get(f"{path}/zarr.json", default_buffer_prototype()))
    assert raw is not None
    return json.loads(raw.to_bytes())  # type: ignore[no-any-return]


@pytest.fixture
def session() -> iv.Session:
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    repo.authorize_virtual_source(SOURCE)
    return repo.writable_session()


def test_grid_shapes_from_zarr_metadata(session: iv.Session) -> None:
    zarr.create_array(session.store, name="regular", shape=(10, 7), chunks=(3, 7), dtype="i1")
    zarr.create_array(session.store, name="ragged", shape=(10, 8), chunks=[[2, 3, 5], 4],
                      dtype="i1")  # fmt: skip
    assert chunk_grid_shape(_metadata(session.store, "regular")) == (4, 1)  # ceil(10 / 3)
    assert chunk_grid_shape(_metadata(session.store, "ragged")) == (3, 2)
    run_length = {"shape": [9], "chunk_grid": {"name": "rectilinear", "configuration": {
        "kind": "inline", "chunk_shapes": [[[2, 3], 3]]}}}  # fmt: skip
    assert chunk_grid_shape(run_length) == (4,)  # three chunks of 2, then one of 3
    assert chunk_grid_shape({"shape": [4], "chunk_grid": {"name": "unknown"}}) is None


def _refs(coords: list[list[int]]) -> dict[str, object]:
    n = len(coords)
    return {"coord": coords, "location": [SOURCE + "f"] * n, "offset": [0] * n,
            "length": [1] * n}  # fmt: skip


def test_refs_outside_the_grid_are_refused(session: iv.Session) -> None:
    zarr.create_array(session.store, name="a", shape=(10, 8), chunks=[[2, 3, 5], 4], dtype="i1")
    session.set_virtual_refs("/a", _refs([[2, 1]]))  # the last chunk of a rectilinear grid
    with pytest.raises(iv.InvalidInputError, match=r"array '/a': ref 1 .* \(3, 0\) outside"):
        session.set_virtual_refs("/a", _refs([[0, 0], [3, 0]]))
    with pytest.raises(iv.InvalidInputError, match=r"\(0, -1\) outside"):
        session.set_virtual_refs("/a", _refs([[0, -1]]))


def test_coordinates_beyond_int32_are_a_typed_error(session: iv.Session) -> None:
    huge = MAX_COORD + 1
    zarr.create_array(session.store, name="a", shape=(2**40,), chunks=(1,), dtype="i1")
    session.set_virtual_refs("/a", _refs([[MAX_COORD]]))  # the last one a manifest holds
    with pytest.raises(iv.InvalidInputError, match=rf"\({huge},\); manifests hold .* {MAX_COORD}"):
        session.set_virtual_refs("/a", _refs([[huge]]))
    array = zarr.open_array(session.store, path="a")
    with pytest.raises(iv.InvalidInputError, match="manifests hold coordinates up to"):
        array[huge] = 1  # a native chunk there too
    session.commit("the last representable chunk")
    np.testing.assert_array_equal(array[MAX_COORD - 1 : MAX_COORD], [0])
