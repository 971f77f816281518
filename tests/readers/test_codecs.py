"""The codecs in readers/codecs: HDF5's LZ4 framing, against files HDF5 itself wrote."""

from __future__ import annotations

import uuid
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import zarr
from hypothesis import given
from hypothesis import strategies as st

import icechunk_virtual as iv
from readers.codecs.hdf5_lz4 import Hdf5Lz4Codec, decode_frames, encode_frames


@given(st.binary(max_size=3000), st.sampled_from([0, 1, 7, 64, 1000]))
def test_lz4_frames_round_trip(data: bytes, block_size: int) -> None:
    assert decode_frames(encode_frames(data, block_size=block_size)) == data


def test_codec_is_registered_with_zarr() -> None:
    from zarr.registry import get_codec_class

    assert get_codec_class("hdf5_lz4") is Hdf5Lz4Codec
    assert Hdf5Lz4Codec.from_dict(Hdf5Lz4Codec(block_size=64).to_dict()) == Hdf5Lz4Codec(
        block_size=64
    )


def test_multi_block_lz4_chunks_written_by_hdf5_read_back_exactly(tmp_path: Path) -> None:
    path = tmp_path / "lz4.h5"
    data = np.concatenate([np.zeros(500), np.random.default_rng(0).random(500)]).reshape(10, 100)
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=data, chunks=(5, 100), **hdf5plugin.LZ4(nbytes=256))
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    iv.ingest(repo, [str(path)], progress=False)
    back = zarr.open_array(repo.readonly_session().store, path="x", mode="r")[:]
    assert back.tobytes() == data.tobytes()
