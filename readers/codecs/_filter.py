"""What every HDF5-filter codec shares: the Zarr v3 plumbing, and MSB-first bit packing.

A filter codec is a frozen dataclass whose fields are its configuration. Subclasses implement
:meth:`Hdf5FilterCodec.decode_bytes` (stored bytes -> the chunk's raw bytes, given their length) and
:meth:`Hdf5FilterCodec.encode_bytes` (the inverse, used to re-encode chunks HDF5 wrote with a filter
skipped, and to write new data). Decoding runs in a worker thread, as zarr's own codecs do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
from zarr.abc.codec import BytesBytesCodec
from zarr.core.buffer import default_buffer_prototype

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer

__all__ = ["Hdf5FilterCodec", "pack_msb_first", "unpack_msb_first"]


@dataclass(frozen=True)
class Hdf5FilterCodec(BytesBytesCodec):
    """Base of the codecs that decode one HDF5 filter's output."""

    codec_name: ClassVar[str]
    is_fixed_size = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}
        config = data.get("configuration", {})
        return cls(**{k: v for k, v in config.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.codec_name, "configuration": dataclasses.asdict(self)}

    def decode_bytes(self, data: bytes, nbytes: int) -> bytes:
        """The chunk's ``nbytes`` raw bytes from what the filter stored."""
        raise NotImplementedError

    def encode_bytes(self, data: bytes) -> bytes:
        """What the filter stores for the raw bytes ``data``."""
        raise NotImplementedError

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer:
        itemsize = chunk_spec.dtype.to_native_dtype().itemsize
        nbytes = math.prod(chunk_spec.shape) * itemsize
        decoded = self.decode_bytes(chunk_bytes.to_bytes(), nbytes)
        if len(decoded) != nbytes:
            raise ValueError(
                f"{self.codec_name}: a chunk decoded to {len(decoded)} bytes, expected {nbytes}"
            )
        return default_buffer_prototype().buffer.from_bytes(decoded)

    def _encode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer | None:
        encoded = self.encode_bytes(chunk_bytes.to_bytes())
        return default_buffer_prototype().buffer.from_bytes(encoded)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    async def _encode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError(f"{self.codec_name}'s output size depends on the data")


def unpack_msb_first(stream: bytes, count: int, bits: int) -> npt.NDArray[np.uint64]:
    """``count`` unsigned fields of ``bits`` bits each, packed back to back most significant bit
    first (how HDF5's n-bit and scale-offset filters pack values)."""
    if bits == 0 or count == 0:
        return np.zeros(count, dtype=np.uint64)
    if len(stream) * 8 < count * bits:
        raise ValueError(f"{len(stream)} bytes cannot hold {count} fields of {bits} bits")
    raw = np.frombuffer(stream, dtype=np.uint8)
    if bits > 57:  # a field may span 9 bytes: go through single bits
        flat = np.unpackbits(raw, count=count * bits).reshape(count, bits)
        padded = np.zeros((count, 64), dtype=np.uint8)
        padded[:, 64 - bits :] = flat
        return np.packbits(padded, axis=1).view(">u8").reshape(count).astype(np.uint64)
    # Each field lies within the 8 bytes starting at its first byte: gather those windows as
    # big-endian words and shift the field down.
    starts = np.arange(count, dtype=np.int64) * bits
    padded = np.concatenate([raw, np.zeros(8, dtype=np.uint8)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 8)[starts >> 3]
    words = np.ascontiguousarray(windows).view(">u8").reshape(count).astype(np.uint64)
    shift = (64 - bits - (starts & 7)).astype(np.uint64)
    return (words >> shift) & np.uint64((1 << bits) - 1)


def pack_msb_first(values: npt.NDArray[np.uint64], bits: int) -> bytes:
    """The inverse of :func:`unpack_msb_first` (zero bits pad the last byte)."""
    if bits == 0:
        return b""
    words = np.asarray(values, dtype=np.uint64).astype(">u8").view(np.uint8).reshape(-1, 8)
    fields = np.unpackbits(words, axis=1)[:, 64 - bits :]
    return np.packbits(fields.reshape(-1)).tobytes()
