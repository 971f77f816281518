"""The HDF5 LZ4 filter (id 32004) as a Zarr v3 codec: ``hdf5_lz4``.

The filter frames its output: the uncompressed size (8 bytes, big-endian), the block size (4 bytes),
then per block its compressed size (4 bytes) and the LZ4 block, or the raw block when compression
did not make it smaller. numcodecs' LZ4 codec speaks plain LZ4 blocks behind a 4-byte little-endian
size, so each block is handed to it with that prefix.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numcodecs

from readers.codecs._filter import Hdf5FilterCodec

__all__ = ["Hdf5Lz4Codec", "decode_frames", "encode_frames"]

_DEFAULT_BLOCK = 1 << 30  # the filter's default when its parameter is 0
_LZ4 = numcodecs.LZ4()


def decode_frames(data: bytes) -> bytes:
    """The bytes an HDF5 LZ4-filtered chunk holds."""
    total, block_size = struct.unpack_from(">qi", data, 0)
    out = bytearray()
    position = 12
    while len(out) < total:
        expected = min(block_size, total - len(out))
        (compressed,) = struct.unpack_from(">i", data, position)
        position += 4
        block = data[position : position + compressed]
        position += compressed
        if compressed == expected:
            out += block
        else:
            out += _LZ4.decode(struct.pack("<i", expected) + block)
    if len(out) != total:
        raise ValueError(f"HDF5 LZ4 chunk decodes to {len(out)} bytes, its header says {total}")
    return bytes(out)


def encode_frames(data: bytes, *, block_size: int = 0) -> bytes:
    """``data`` framed as the HDF5 LZ4 filter writes it."""
    block_size = block_size or _DEFAULT_BLOCK
    parts = [struct.pack(">qi", len(data), block_size)]
    for start in range(0, len(data), block_size):
        block = data[start : start + block_size]
        packed = bytes(_LZ4.encode(block))[4:]
        if len(packed) >= len(block):
            packed = block
        parts += [struct.pack(">i", len(packed)), packed]
    return b"".join(parts)


@dataclass(frozen=True)
class Hdf5Lz4Codec(Hdf5FilterCodec):
    """Decodes (and encodes) chunks written by HDF5's LZ4 filter."""

    codec_name = "hdf5_lz4"
    block_size: int = 0

    def decode_bytes(self, data: bytes, nbytes: int) -> bytes:
        return decode_frames(data)

    def encode_bytes(self, data: bytes) -> bytes:
        return encode_frames(data, block_size=self.block_size)
