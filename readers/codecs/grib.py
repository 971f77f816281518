"""A whole GRIB (1 or 2) message as a Zarr v3 chunk: the ``icechunk_virtual.grib`` codec.

The name is namespaced: kerchunk registers a different codec as plain ``grib`` with zarr (when
xarray loads its backends), and zarr would pick either.

Decoding hands the message to ecCodes and returns its field in the chunk's shape; points the
message's bitmap marks missing become NaN (the arrays' fill value). The GRIB reader keeps one
message per chunk, so a chunk's bytes are exactly one message.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec

from readers.codecs import GRIB_CODEC

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer

__all__ = ["GRIB_CODEC", "GribCodec", "decode_message"]

_MISSING = -1.0e300
"""What missing points decode to before they become NaN: no real field holds it."""


def decode_message(message: bytes) -> np.ndarray:
    """The values of one GRIB message, float64, NaN where the bitmap says missing."""
    import eccodes

    handle = eccodes.codes_new_from_message(message)
    try:
        missing = bool(eccodes.codes_get(handle, "bitmapPresent"))
        if missing:
            eccodes.codes_set(handle, "missingValue", _MISSING)
        values = np.asarray(eccodes.codes_get_values(handle), dtype=np.float64)
    finally:
        eccodes.codes_release(handle)
    if missing:
        values[values == _MISSING] = np.nan
    return values


@dataclass(frozen=True)
class GribCodec(ArrayBytesCodec):
    """Decodes a GRIB message into its field (read only: chunks are never written as GRIB)."""

    is_fixed_size = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GribCodec:
        return cls()

    def to_dict(self) -> dict[str, Any]:
        return {"name": GRIB_CODEC, "configuration": {}}

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        values = decode_message(chunk_bytes.to_bytes())
        if values.size != int(np.prod(chunk_spec.shape)):
            raise ValueError(
                f"a GRIB message holds {values.size} values, its chunk {chunk_spec.shape}"
            )
        dtype = chunk_spec.dtype.to_native_dtype()
        array = values.reshape(chunk_spec.shape).astype(dtype, copy=False)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(array)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        raise NotImplementedError("GRIB chunks are read from archives, never written")

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("a GRIB message's size depends on its contents")
