"""Virtual refs: stored by ``set_virtual_refs`` in the manifests and read back through zarr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import zarr

import icechunk_virtual as iv


@pytest.fixture
def raw_source(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A raw little-endian float32 file holding a 6 x 4 array, chunk by chunk (3 x 2 chunks)."""
    data = np.arange(24, dtype="<f4").reshape(6, 4)
    path = tmp_path / "source.bin"
    with open(path, "wb") as f:
        f.write(b"HEADER--")  # so offsets do not start at 0
        for i in range(2):
            for j in range(2):
                f.write(np.ascontiguousarray(data[3 * i : 3 * i + 3, 2 * j : 2 * j + 2]).tobytes())
    return path, data


def test_virtual_chunks_read_back_through_zarr(location, raw_source) -> None:  # type: ignore[no-untyped-def]
    path, data = raw_source
    repo = iv.Repository.create(location.url, storage_options=location.storage_options)
    repo.authorize_virtual_source(f"file://{path.parent}/")
    session = repo.writable_session()
    zarr.open_group(session.store, mode="a").create_array(
        "v", shape=(6, 4), chunks=(3, 2), dtype="<f4", compressors=None, fill_value=np.nan
    )
    session.set_virtual_refs(
        "/v",
        pa.table(
            {
                "c0": pa.array([0, 0, 1], pa.int32()),
                "c1": pa.array([0, 1, 0], pa.int32()),
                "location": [f"file://{path}"] * 3,
                "offset": pa.array([8, 8 + 24, 8 + 48], pa.uint64()),
                "length": pa.array([24, 24, 24], pa.uint64()),
            }
        ),
    )
    session.commit("virtual refs")
    back = zarr.open_array(repo.readonly_session().store, path="v", mode="r")[:]
    expected = data.copy()
    expected[3:, 2:] = np.nan  # chunk (1, 1) has no ref: fill value
    np.testing.assert_array_equal(back, expected)


def test_virtual_refs_need_an_existing_array(memory_location) -> None:  # type: ignore[no-untyped-def]
    repo = iv.Repository.create(memory_location.url)
    session = repo.writable_session()
    with pytest.raises(iv.NodeNotFoundError, match="/missing"):
        session.set_virtual_refs(
            "/missing", {"coord": [[0]], "location": ["s3://b/f"], "offset": [0], "length": [1]}
        )


def test_missing_virtual_source_is_named(memory_location, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = iv.Repository.create(memory_location.url)
    repo.authorize_virtual_source(f"file://{tmp_path}/")
    session = repo.writable_session()
    zarr.open_group(session.store, mode="a").create_array(
        "v", shape=(2,), chunks=(2,), dtype="u1", compressors=None
    )
    gone = tmp_path / "gone.bin"
    session.set_virtual_refs(
        "/v", {"coord": [[0]], "location": [f"file://{gone}"], "offset": [0], "length": [2]}
    )
    session.commit("dangling")
    with pytest.raises(iv.NotFoundError, match=r"gone\.bin"):
        zarr.open_array(repo.readonly_session().store, path="v", mode="r")[:]


def test_shifting_chunks_moves_native_and_virtual_chunks_and_leaves_a_gap(tmp_path: Path) -> None:
    """Rows 2.. of a (6, 2)-chunked array move up by 2 chunks: values from numpy's own insert of
    fill values; virtual chunks keep their file, native ones their objects; a concurrent writer
    of a moved chunk conflicts."""
    source = tmp_path / "src.bin"
    data = np.arange(12, dtype="<i4").reshape(6, 2)
    source.write_bytes(data[3:].tobytes())  # rows 3..5 live in the file, one chunk a row
    repo = iv.Repository.create(str(tmp_path / "repo"))
    repo.authorize_virtual_source(f"file://{tmp_path}/")
    session = repo.writable_session()
    array = zarr.create_array(session.store, name="a", shape=(6, 2), chunks=(1, 2), dtype="<i4",
                              fill_value=-1, compressors=None)  # fmt: skip
    array[:3] = data[:3]  # native chunks
    session.set_virtual_refs("/a", {"coord": [[3, 0], [4, 0], [5, 0]],
                                    "location": [f"file://{source}"] * 3,
                                    "offset": [0, 8, 16], "length": [8, 8, 8]})  # fmt: skip
    session.commit("six rows")
    session = repo.writable_session()
    array = zarr.open_array(session.store, path="a", mode="r+")
    array.resize((8, 2))
    session.shift_chunks("/a", 0, 2, 2)
    rival = repo.writable_session()
    zarr.open_array(rival.store, path="a", mode="r+")[4] = [7, 7]
    session.commit("a gap at rows 2-3")
    expected = np.insert(data, 2, [[-1, -1], [-1, -1]], axis=0)
    got = zarr.open_array(repo.readonly_session().store, path="a", mode="r")[...]
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(iv.ConflictError):
        rival.commit("rewrote a row that moved")
