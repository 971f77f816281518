"""The HDF5 LZF filter (id 32000, h5py's own) as a Zarr v3 codec: ``hdf5_lzf``.

The filter stores a bare LZF stream with no header; the decoded size is the chunk's size. A chunk LZF
could not shrink is stored unfiltered by HDF5 (its filter mask says so), which the reader handles.
"""

from __future__ import annotations

from dataclasses import dataclass

import imagecodecs

from readers.codecs._filter import Hdf5FilterCodec

__all__ = ["Hdf5LzfCodec"]


@dataclass(frozen=True)
class Hdf5LzfCodec(Hdf5FilterCodec):
    """Decodes (and encodes) chunks written by HDF5's LZF filter."""

    codec_name = "hdf5_lzf"

    def decode_bytes(self, data: bytes, nbytes: int) -> bytes:
        return bytes(imagecodecs.lzf_decode(data, out=nbytes))

    def encode_bytes(self, data: bytes) -> bytes:
        return bytes(imagecodecs.lzf_encode(data))
