"""A virtual chunk whose bytes are damaged (same size, same modification time: the freshness check
cannot tell) is a ``CorruptChunkError`` naming the array, the chunk and the codecs — never
``zlib.error`` — whichever way the xarray engine reads it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

import icechunk_virtual as iv


def _damaged_repository(tmp_path: Path) -> iv.Repository:
    path = tmp_path / "gzip.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("t", data=np.arange(4000.0).reshape(40, 100), chunks=(10, 100),
                         compression="gzip")  # fmt: skip
        info = f["t"].id.get_chunk_info(1)
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    iv.ingest(repo, [str(path)], progress=False)
    stat = path.stat()
    with path.open("r+b") as f:  # scribble over the middle of chunk 1's deflate stream
        f.seek(info.byte_offset + info.size // 2)
        f.write(b"\xff" * 16)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return repo


@pytest.mark.parametrize("chunks", [None, {}], ids=["numpy", "dask"])
def test_a_damaged_chunk_is_a_corrupt_chunk_error(tmp_path: Path, chunks: object) -> None:
    repo = _damaged_repository(tmp_path)
    dataset = xr.open_dataset(repo, engine="icechunk_virtual", chunks=chunks)
    np.testing.assert_array_equal(dataset["t"][:10].values, np.arange(1000.0).reshape(10, 100))
    with pytest.raises(iv.CorruptChunkError, match=r"array '/t' chunk c/1") as caught:
        dataset["t"].values  # noqa: B018 -- the read is the point
    assert "zlib" in " ".join(caught.value.codecs) or "gzip" in " ".join(caught.value.codecs)
    assert caught.value.__cause__ is not None
