"""The HDF5 scale-offset filter (id 6) as a Zarr v3 codec: ``hdf5_scaleoffset``.

Each chunk starts with a 21-byte header: the bit width ``minbits`` (4 bytes, little-endian), the size
of the minimum (1 byte) and the minimum itself (8 bytes, little-endian), padding to 21. Then every
value minus the minimum follows in ``minbits`` bits, most significant bit first. All-ones marks the
fill value when the dataset defines one. Floats use decimal scaling: the stored integer divided by
``10**scale_factor`` plus the minimum (a float of the same width), computed in that width as HDF5
does. A chunk whose ``minbits`` is the full width holds the values verbatim (in the writing
machine's byte order, which HDF5 assumes is the reading one's too).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from readers.codecs._filter import Hdf5FilterCodec, unpack_msb_first

__all__ = ["Hdf5ScaleOffsetCodec"]

_HEADER = 21


@dataclass(frozen=True)
class Hdf5ScaleOffsetCodec(Hdf5FilterCodec):
    """Decodes chunks written by HDF5's scale-offset filter; encodes losslessly (full width)."""

    codec_name = "hdf5_scaleoffset"
    dtype: str
    """The values' numpy dtype, with byte order (``<i4``, ``>f8``...)."""
    scale_factor: int = 0
    fill: str | None = None
    """The fill value's bytes (hex, little-endian) when the dataset defines one."""

    def decode_bytes(self, data: bytes, nbytes: int) -> bytes:
        dtype = np.dtype(self.dtype)
        count = nbytes // dtype.itemsize
        native = dtype.newbyteorder("=")
        (minbits,) = struct.unpack_from("<I", data, 0)
        if minbits == dtype.itemsize * 8:  # verbatim, in this machine's byte order
            return np.frombuffer(data, native, count, offset=_HEADER).astype(dtype).tobytes()
        if minbits > dtype.itemsize * 8:
            raise ValueError(f"scale-offset chunk claims {minbits} bits for {dtype}")
        width = min(data[4], 8)
        minimum = int.from_bytes(data[5 : 5 + width], "little")
        packed = unpack_msb_first(data[_HEADER:], count, minbits)
        unsigned = np.dtype(f"u{dtype.itemsize}")
        if dtype.kind in "iu":
            values = (packed + np.uint64(minimum)).astype(unsigned).view(native)
        else:
            integer = np.dtype(f"i{dtype.itemsize}")
            low = minimum.to_bytes(8, "little")[: dtype.itemsize]
            floor = np.frombuffer(low, dtype=native)[0]
            scale = native.type(10.0**self.scale_factor)
            values = packed.astype(unsigned).view(integer).astype(native) / scale + floor
        if self.fill is not None:
            is_fill = packed == np.uint64((1 << minbits) - 1)
            values[is_fill] = np.frombuffer(bytes.fromhex(self.fill), dtype=native)[0]
        return values.astype(dtype).tobytes()

    def encode_bytes(self, data: bytes) -> bytes:
        dtype = np.dtype(self.dtype)
        verbatim = np.frombuffer(data, dtype).astype(dtype.newbyteorder("=")).tobytes()
        return struct.pack("<IB", dtype.itemsize * 8, 8) + bytes(_HEADER - 5) + verbatim
