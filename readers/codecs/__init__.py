"""Zarr v3 codecs the ecosystem lacks, registered with zarr through the ``zarr.codecs`` entry point
group (see pyproject.toml), so any zarr reader of a repository can decode them.

:func:`encode_bytes` runs one codec of a Zarr v3 chain (as JSON) over raw bytes; the HDF5 reader
uses it to re-encode chunks whose filter mask skipped filters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["encode_bytes"]


def encode_bytes(spec: Mapping[str, Any], data: bytes) -> bytes:
    """``data`` encoded by the bytes-to-bytes codec ``spec`` (``{"name": ..., "configuration": ...}``)."""
    name, config = spec["name"], dict(spec.get("configuration", {}))
    if name == "hdf5_lz4":
        from readers.codecs.hdf5_lz4 import encode_frames

        return encode_frames(data, block_size=int(config.get("block_size", 0)))
    import numcodecs

    return bytes(
        numcodecs.get_codec({"id": name.removeprefix("numcodecs."), **config}).encode(data)
    )
