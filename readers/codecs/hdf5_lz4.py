"""The HDF5 LZ4 filter (id 32004) as a Zarr v3 codec: ``hdf5_lz4``.

The filter frames its output: the uncompressed size (8 bytes, big-endian), the block size (4 bytes),
then per block its compressed size (4 bytes) and the LZ4 block, or the raw block when compression
did not make it smaller. numcodecs' LZ4 codec speaks plain LZ4 blocks behind a 4-byte little-endian
size, so each block is handed to it with that prefix.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numcodecs
from zarr.abc.codec import BytesBytesCodec
from zarr.core.buffer import default_buffer_prototype

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer

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
class Hdf5Lz4Codec(BytesBytesCodec):
    """Decodes (and encodes) chunks written by HDF5's LZ4 filter."""

    is_fixed_size = False
    block_size: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hdf5Lz4Codec:
        return cls(block_size=int(data.get("configuration", {}).get("block_size", 0)))

    def to_dict(self) -> dict[str, Any]:
        return {"name": "hdf5_lz4", "configuration": {"block_size": self.block_size}}

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer:
        return default_buffer_prototype().buffer.from_bytes(decode_frames(chunk_bytes.to_bytes()))

    def _encode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer | None:
        framed = encode_frames(chunk_bytes.to_bytes(), block_size=self.block_size)
        return default_buffer_prototype().buffer.from_bytes(framed)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    async def _encode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("the HDF5 LZ4 filter's output size depends on the data")
