"""The HDF5 n-bit filter (id 5) as a Zarr v3 codec, for integer datasets: ``hdf5_nbit``.

An integer type may use ``precision`` bits starting at bit ``offset`` of its ``size`` bytes. The
filter keeps just those bits of every value, back to back, most significant bit first. Reading
through HDF5 then shifts them down and sign-extends signed types; this codec does both, so it yields
the plain integers HDF5 (and h5py) return.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from readers.codecs._filter import Hdf5FilterCodec, pack_msb_first, unpack_msb_first

__all__ = ["Hdf5NbitCodec"]


@dataclass(frozen=True)
class Hdf5NbitCodec(Hdf5FilterCodec):
    """Decodes (and encodes) integer chunks written by HDF5's n-bit filter."""

    codec_name = "hdf5_nbit"
    dtype: str
    """The values' numpy dtype, with byte order (``<i4``, ``>u2``...)."""
    precision: int
    offset: int = 0

    def decode_bytes(self, data: bytes, nbytes: int) -> bytes:
        dtype = np.dtype(self.dtype)
        fields = unpack_msb_first(data, nbytes // dtype.itemsize, self.precision)
        unsigned = np.dtype(f"u{dtype.itemsize}")
        if dtype.kind == "i" and self.precision < 64:  # sign-extend from the top precision bit
            sign = np.uint64(1 << (self.precision - 1))
            fields = (fields ^ sign) - sign
        return fields.astype(unsigned).view(dtype.newbyteorder("=")).astype(dtype).tobytes()

    def encode_bytes(self, data: bytes) -> bytes:
        dtype = np.dtype(self.dtype)
        values = np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="))
        mask = np.uint64((1 << self.precision) - 1)
        return pack_msb_first(values.astype(np.int64).view(np.uint64) & mask, self.precision)
