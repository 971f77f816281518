"""The HDF5 SZIP filter (id 4, libaec) as a Zarr v3 codec: ``hdf5_szip``.

HDF5 stores the decoded size (4 bytes, little-endian) and then the SZIP stream; the four parameters
are the filter's (options mask, pixels per block, bits per pixel, pixels per scanline).
"""

from __future__ import annotations

from dataclasses import dataclass

import imagecodecs

from readers.codecs._filter import Hdf5FilterCodec

__all__ = ["Hdf5SzipCodec"]


@dataclass(frozen=True)
class Hdf5SzipCodec(Hdf5FilterCodec):
    """Decodes (and encodes) chunks written by HDF5's SZIP filter."""

    codec_name = "hdf5_szip"
    options_mask: int
    pixels_per_block: int
    bits_per_pixel: int
    pixels_per_scanline: int

    def _parameters(self) -> tuple[int, int, int, int]:
        return (self.options_mask, self.pixels_per_block, self.bits_per_pixel,
                self.pixels_per_scanline)  # fmt: skip

    def decode_bytes(self, data: bytes, nbytes: int) -> bytes:
        return bytes(imagecodecs.szip_decode(data, *self._parameters(), header=True))

    def encode_bytes(self, data: bytes) -> bytes:
        return bytes(imagecodecs.szip_encode(data, *self._parameters(), header=True))
