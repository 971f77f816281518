"""The HDF5 bitshuffle filter (id 32008) as a Zarr v3 codec: ``hdf5_bitshuffle``.

Bitshuffle transposes the bits of each block of ``block_size`` elements (a multiple of 8; the
elements left over after the last whole group of 8 are kept as they are). Without compression the
filter stores just that. With LZ4 (2) or Zstandard (3) it stores the decoded size (8 bytes,
big-endian) and the block size in bytes (4 bytes, big-endian), then per block its compressed size (4
bytes, big-endian) and the compressed block, then the left-over bytes raw.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import imagecodecs

from readers.codecs._filter import Hdf5FilterCodec

__all__ = ["Hdf5BitshuffleCodec", "default_block_size"]

NONE, LZ4, ZSTD = 0, 2, 3
_TARGET_BLOCK_BYTES = 8192
_MIN_BLOCK = 128


def default_block_size(elementsize: int) -> int:
    """The block size (in elements) bitshuffle picks when the filter's parameter is 0."""
    return max(_TARGET_BLOCK_BYTES // elementsize // 8 * 8, _MIN_BLOCK)


@dataclass(frozen=True)
class Hdf5BitshuffleCodec(Hdf5FilterCodec):
    """Decodes (and encodes) chunks written by the bitshuffle HDF5 filter."""

    codec_name = "hdf5_bitshuffle"
    elementsize: int
    block_size: int = 0
    compression: int = NONE
    level: int = 0

    def decode_bytes(self, data: bytes, nbytes: int) -> bytes:
        if self.compression == NONE:
            return self._unshuffle(data, self.block_size or default_block_size(self.elementsize))
        total, block_bytes = struct.unpack_from(">QI", data, 0)
        block = block_bytes // self.elementsize
        decompress = imagecodecs.lz4_decode if self.compression == LZ4 else imagecodecs.zstd_decode
        whole = total // (block_bytes or 1) * block_bytes
        tail = total - whole
        last = tail // self.elementsize // 8 * 8 * self.elementsize  # a shorter last block
        sizes = [block_bytes] * (whole // block_bytes if block_bytes else 0) + (
            [last] if last else []
        )
        parts: list[bytes] = []
        position = 12
        for size in sizes:
            (stored,) = struct.unpack_from(">I", data, position)
            position += 4
            parts.append(bytes(decompress(data[position : position + stored], out=size)))
            position += stored
        parts.append(data[position : position + tail - last])  # the left-over elements, raw
        return self._unshuffle(b"".join(parts), block)

    def encode_bytes(self, data: bytes) -> bytes:
        block = self.block_size or default_block_size(self.elementsize)
        shuffled = bytes(
            imagecodecs.bitshuffle_encode(data, itemsize=self.elementsize, blocksize=block)
        )
        if self.compression == NONE:
            return shuffled
        block_bytes = block * self.elementsize
        count = len(data) // self.elementsize
        grouped = count // 8 * 8 * self.elementsize  # bytes that go through blocks
        parts = [struct.pack(">QI", len(data), block_bytes)]
        for start in range(0, grouped, block_bytes):
            piece = shuffled[start : min(start + block_bytes, grouped)]
            if self.compression == LZ4:
                packed = bytes(imagecodecs.lz4_encode(piece))
            else:
                packed = bytes(imagecodecs.zstd_encode(piece, level=self.level or None))
            parts += [struct.pack(">I", len(packed)), packed]
        parts.append(shuffled[grouped:])
        return b"".join(parts)

    def _unshuffle(self, data: bytes, block: int) -> bytes:
        return bytes(
            imagecodecs.bitshuffle_decode(data, itemsize=self.elementsize, blocksize=block)
        )
