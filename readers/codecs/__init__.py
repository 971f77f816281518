"""Zarr v3 codecs for HDF5 filters the ecosystem lacks, registered with zarr through the
``zarr.codecs`` entry point group (see pyproject.toml), so any zarr reader of a repository can decode
them: ``hdf5_bitshuffle``, ``hdf5_lz4``, ``hdf5_lzf``, ``hdf5_nbit``, ``hdf5_scaleoffset`` and
``hdf5_szip``.

:func:`encode_bytes` runs one codec of a Zarr v3 chain (as JSON) over raw bytes; the HDF5 reader
uses it to re-encode chunks whose filter mask skipped filters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["GRIB_CODEC", "encode_bytes"]

GRIB_CODEC = "icechunk_virtual.grib"
"""The GRIB message codec's name (defined here so the GRIB reader need not import zarr)."""


def encode_bytes(spec: Mapping[str, Any], data: bytes) -> bytes:
    """``data`` encoded by the bytes-to-bytes codec ``spec`` (``{"name": ..., "configuration": ...}``)."""
    name, config = spec["name"], dict(spec.get("configuration", {}))
    if name.startswith("hdf5_"):
        from zarr.registry import get_codec_class

        from readers.codecs._filter import Hdf5FilterCodec

        codec = get_codec_class(name).from_dict(dict(spec))
        assert isinstance(codec, Hdf5FilterCodec)
        return codec.encode_bytes(data)
    import numcodecs

    return bytes(
        numcodecs.get_codec({"id": name.removeprefix("numcodecs."), **config}).encode(data)
    )
