"""Reading the values of small arrays during ingest (the coordinates ``combine`` compares and
orders by), decoded with the array's own codecs.

The workers scanned the files; the values of a coordinate are one chunk or a few, read with a
ranged request each and decoded directly for the common chain (``bytes`` + numcodecs
compressors), or through a zarr array in memory for anything else.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import fsspec
import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype

from icechunk_virtual._sync import sync
from icechunk_virtual.ingestion.zarr_arrays import chunk_key, create_array
from icechunk_virtual.io.sources import source_protocol
from readers.types import VirtualArray, VirtualDataset

__all__ = ["load_values"]


def load_values(
    dataset: VirtualDataset, array: VirtualArray, options: Mapping[str, Any]
) -> np.ndarray:
    """An array's values, read from its file(s) and decoded by its own codecs (for the small
    coordinates ``combine`` compares and orders by)."""
    ndim = len(array.shape)
    rows = array.refs.to_pylist()  # a coordinate has one chunk or a few
    chunks = []
    for row in rows:
        data = row.get("inline")
        if data is None:
            data = _read_range(row.get("url") or dataset.url, row["offset"], row["length"], options)
        chunks.append(data)
    plain = _plain_decoder(array)
    if plain is not None:  # bytes + numcodecs compressors: decode directly, no zarr array
        padded = [-(-n // c) * c for n, c in zip(array.shape, array.chunk_shape, strict=True)]
        out = np.full(padded, array.fill_value, dtype=array.dtype)
        for row, data in zip(rows, chunks, strict=True):
            start = [row[f"c{i}"] * c for i, c in enumerate(array.chunk_shape)]
            block = plain(data).reshape(array.chunk_shape)
            out[tuple(slice(a, a + c) for a, c in zip(start, array.chunk_shape, strict=True))] = (
                block
            )
        return out[tuple(slice(0, n) for n in array.shape)]
    store = zarr.storage.MemoryStore()
    target = create_array(store, "values", array)
    prototype = default_buffer_prototype()
    for row, data in zip(rows, chunks, strict=True):
        sync(store.set(f"values/{chunk_key(row, ndim)}", prototype.buffer.from_bytes(data)))
    return np.asarray(target[...])


def _read_range(url: str, offset: int, length: int, options: Mapping[str, Any]) -> bytes:
    """``length`` bytes of a source from ``offset`` (local files without fsspec's overhead)."""
    if source_protocol(url) == "file":
        with open(url.removeprefix("file://"), "rb") as f:
            return os.pread(f.fileno(), length, offset)
    fs, path = fsspec.core.url_to_fs(url, **dict(options))
    data: bytes = fs.cat_file(path, start=offset, end=offset + length)
    return data


def _plain_decoder(array: VirtualArray) -> Callable[[bytes], np.ndarray] | None:
    """A direct decoder for the common chain (``bytes`` then numcodecs byte codecs), or None."""
    first, *rest = array.codecs
    if first["name"] != "bytes" or array.chunk_sizes is not None or array.dtype.kind not in "biuf":
        return None
    if not all(c["name"].startswith("numcodecs.") for c in rest):
        return None
    import numcodecs

    decoders = [numcodecs.get_codec({"id": c["name"].removeprefix("numcodecs."),
                                     **c.get("configuration", {})}) for c in reversed(rest)]  # fmt: skip
    endian = first.get("configuration", {}).get("endian", "little")
    dtype = array.dtype.newbyteorder("<" if endian == "little" else ">")

    def decode(data: bytes) -> np.ndarray:
        for codec in decoders:
            data = bytes(codec.decode(data))
        return np.frombuffer(data, dtype=dtype).astype(array.dtype.newbyteorder("="))

    return decode
