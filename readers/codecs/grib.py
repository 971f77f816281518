"""A whole GRIB (1 or 2) message as a Zarr v3 chunk: the ``icechunk_virtual.grib`` codec.

The name is namespaced: kerchunk registers a different codec as plain ``grib`` with zarr (when
xarray loads its backends), and zarr would pick either.

Decoding hands the message to ecCodes and returns its field in the chunk's shape, in **grid
order** — the order of the coordinates the GRIB reader computed with ecCodes' geo-iterator:

- **Missing points** become NaN (the arrays' fill value), whether a bitmap marks them or the
  packing's own missing-value management does (complex packing flags them with no bitmap; ecCodes
  then returns the message's ``missingValue``, 9999 by default, which is a plausible value of
  many fields). So every message is decoded with ``missingValue`` set to a sentinel no packing
  produces, and the sentinel becomes NaN: the count equals ecCodes' ``numberOfMissing``.
- **Alternative row scanning** (``alternativeRowScanning = 1``: every second row is stored in the
  opposite direction) is undone here, the one place scanning modes are handled: ecCodes returns
  values in storage order but its geo-iterator gives plain rows, so the odd rows are reversed
  (as cfgrib and pygrib do). ``iScansNegatively`` and ``jScansPositively`` need nothing: the
  geo-iterator's coordinates follow them, and the values are stored in the same order. Rows of
  consecutive ``j`` points with alternative scanning are refused by the reader.

The GRIB reader keeps one message per chunk, so a chunk's bytes are exactly one message.
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
"""What missing points decode to before they become NaN: beyond every packing but 64-bit IEEE."""


def decode_message(message: bytes) -> np.ndarray:
    """The values of one GRIB message in grid order, float64, NaN where missing."""
    import eccodes

    handle = eccodes.codes_new_from_message(message)
    try:
        eccodes.codes_set(handle, "missingValue", _MISSING)
        values = np.asarray(eccodes.codes_get_values(handle), dtype=np.float64)
        alternate = _flag(handle, "alternativeRowScanning")
        row = int(eccodes.codes_get(handle, "Ni")) if alternate else 0
    finally:
        eccodes.codes_release(handle)
    values[values == _MISSING] = np.nan
    if alternate:
        rows = values.reshape(-1, row)  # a view: reversing its odd rows reorders ``values``
        rows[1::2] = rows[1::2, ::-1].copy()
    return values


def _flag(handle: Any, key: str) -> bool:
    import eccodes

    return bool(eccodes.codes_is_defined(handle, key) and eccodes.codes_get(handle, key, int))


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
