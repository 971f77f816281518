"""Our zlib and shuffle decoders give numcodecs' bytes and numcodecs' errors, on every input."""

from __future__ import annotations

import json
import zlib

import numcodecs
import numpy as np
import pytest
import zarr
from hypothesis import given
from hypothesis import strategies as st
from zarr.codecs.numcodecs import Shuffle, Zlib
from zarr.core.buffer import cpu, default_buffer_prototype
from zarr.core.sync import sync

from icechunk_virtual.zarr.fast_codecs import (
    FastShuffle,
    FastZlib,
    codec_config,
    inflate,
    unshuffle,
)
from icechunk_virtual.zarr.read_pipeline import read_config


@given(
    data=st.binary(min_size=0, max_size=5000),
    elementsize=st.sampled_from([1, 2, 3, 4, 8, 16]),
)
def test_unshuffle_is_numcodecs_or_declines(data: bytes, elementsize: int) -> None:
    raw = np.frombuffer(data, np.uint8)
    ours = unshuffle(raw, elementsize)
    if ours is None:  # numcodecs keeps these (odd element sizes, ragged tails)
        assert elementsize not in (2, 4, 8) or len(data) % elementsize
        return
    expected = numcodecs.Shuffle(elementsize).decode(data)
    assert ours.tobytes() == np.asarray(expected).tobytes()


@given(
    data=st.binary(min_size=0, max_size=20_000),
    level=st.integers(0, 9),
    slack=st.integers(-50, 50),
)
def test_inflate_is_zlib_for_any_expected_size(data: bytes, level: int, slack: int) -> None:
    """A wrong size hint (a stream longer or shorter than the chunk) still gives zlib's bytes."""
    stream = zlib.compress(data, level)
    assert bytes(inflate(np.frombuffer(stream, np.uint8), len(data) + slack)) == data


def test_inflate_keeps_zlibs_errors_and_tolerance() -> None:
    data = np.random.default_rng(0).random(1000).tobytes()
    stream = zlib.compress(data)
    # trailing bytes after the stream are ignored, as zlib does
    assert bytes(inflate(np.frombuffer(stream + b"junk", np.uint8), len(data))) == data
    damaged = bytearray(stream)
    damaged[-1] ^= 0xFF  # the adler32 check
    with pytest.raises(zlib.error, match="incorrect data check"):
        inflate(np.frombuffer(bytes(damaged), np.uint8), len(data))
    with pytest.raises(zlib.error):
        inflate(np.frombuffer(stream[: len(stream) // 2], np.uint8), len(data))


@pytest.mark.parametrize("dtype", ["<f4", ">f8", "<i2", "u1", "<c16", "<i8"])
def test_arrays_decode_equal_to_zarrs_codecs(dtype: str) -> None:
    """Arrays written with numcodecs' codecs read back the same with ours, edge chunks included."""
    values = (np.random.default_rng(1).random((7, 11, 13)) * 100).astype(dtype)
    store = zarr.storage.MemoryStore()
    written = zarr.create_array(
        store,
        shape=values.shape,
        chunks=(2, 5, 13),
        dtype=dtype,
        compressors=[Shuffle(elementsize=np.dtype(dtype).itemsize), Zlib(level=5)],
    )
    written[:] = values
    with zarr.config.set(codec_config()):
        ours = zarr.open_array(store, mode="r")
    assert {type(c) for c in ours._async_array.codec_pipeline.bytes_bytes_codecs} == {
        FastShuffle,
        FastZlib,
    }
    np.testing.assert_array_equal(ours[:], values)
    np.testing.assert_array_equal(ours[3:6, 4:9, 2], values[3:6, 4:9, 2])


def test_shuffle_without_elementsize_takes_the_arrays() -> None:
    store = zarr.storage.MemoryStore()
    values = np.arange(60, dtype="<f8").reshape(6, 10)
    zarr.create_array(
        store, shape=(6, 10), chunks=(4, 4), dtype="<f8", compressors=[Shuffle(), Zlib()]
    )[:] = values
    # zarr writes the element size it chose; metadata from elsewhere may leave it out
    metadata = json.loads(sync(store.get("zarr.json", default_buffer_prototype())).to_bytes())
    for codec in metadata["codecs"]:
        if codec["name"] == "numcodecs.shuffle":
            codec["configuration"].pop("elementsize")
    sync(store.set("zarr.json", cpu.Buffer.from_bytes(json.dumps(metadata).encode())))
    with zarr.config.set(read_config()):
        ours = zarr.open_array(store, mode="r")
    shuffle = next(
        c for c in ours._async_array.codec_pipeline.bytes_bytes_codecs if isinstance(c, Shuffle)
    )
    assert type(shuffle) is FastShuffle
    assert shuffle.codec_config["elementsize"] == 8
    np.testing.assert_array_equal(ours[:], values)


def test_config_swaps_only_our_codecs() -> None:
    before = dict(zarr.config.get("codecs"))
    config = codec_config()["codecs"]
    assert {k for k in before if before[k] != config[k]} == {"numcodecs.zlib", "numcodecs.shuffle"}
    assert set(config) == set(before)
