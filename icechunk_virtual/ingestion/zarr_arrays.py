"""Zarr arrays from the readers' descriptions: codecs, attributes as xarray reads them, and
the chunk keys refs rows name."""

from __future__ import annotations

import base64
import math
import struct
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr
from zarr.abc.codec import ArrayBytesCodec
from zarr.errors import UnstableSpecificationWarning
from zarr.registry import get_codec_class

from readers.types import VirtualArray

__all__ = ["chunk_key", "create_array", "zarr_attributes"]


def _codec(spec: Mapping[str, Any]) -> Any:
    return get_codec_class(spec["name"]).from_dict(dict(spec))


def zarr_attributes(array: VirtualArray) -> dict[str, Any]:
    """The array's attributes as Zarr keeps them. A netCDF ``_FillValue`` is written the way
    xarray's Zarr backend reads it (floats as the base64 of their 8 little-endian bytes, so NaN
    survives JSON), so xarray masks fill values exactly as it does reading the file itself."""
    attributes = dict(array.attributes)
    if "_FillValue" not in attributes:
        return attributes
    value, kind = attributes["_FillValue"], array.dtype.kind
    if kind == "f":
        attributes["_FillValue"] = base64.standard_b64encode(struct.pack("<d", value)).decode()
    elif kind in "iu" and math.isfinite(value):
        attributes["_FillValue"] = int(value)
    elif kind in "iu":  # a NaN fill for integers masks nothing: netCDF libraries ignore it too
        del attributes["_FillValue"]
    elif kind == "S":
        raw = value.encode() if isinstance(value, str) else bytes(value)
        attributes["_FillValue"] = base64.standard_b64encode(raw).decode()
    elif kind == "b":
        attributes["_FillValue"] = bool(value)
    return attributes


def _native(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The in-memory dtype of values stored as ``dtype`` (the bytes codec records the order)."""
    return dtype.newbyteorder("=") if dtype.kind in "biufcSV" else dtype


def create_array(store: Any, path: str, array: VirtualArray) -> Any:
    """The Zarr array ``array`` describes, created empty at ``path`` of ``store``."""
    codecs = [_codec(c) for c in array.codecs]
    at = next(i for i, c in enumerate(codecs) if isinstance(c, ArrayBytesCodec))
    filters, serializer, compressors = codecs[:at], codecs[at], codecs[at + 1 :]
    chunks: Any = array.chunk_shape
    if array.chunk_sizes is not None:  # rectilinear: a list of lengths where they vary
        chunks = [list(s) if len(s) > 1 else s[0] for s in array.chunk_sizes]
    with warnings.catch_warnings():
        # zarr flags string and struct data types as not yet in the Zarr v3 spec; they are
        # what these files hold, and zarr-python reads them back.
        warnings.simplefilter("ignore", UnstableSpecificationWarning)
        return zarr.create_array(
            store,
            name=path,
            shape=array.shape,
            chunks=chunks,
            dtype=_native(array.dtype),
            filters=filters or None,
            serializer=serializer,
            compressors=compressors or None,
            fill_value=array.fill_value,
            attributes=zarr_attributes(array),
            dimension_names=list(array.dimension_names) or None,
            overwrite=True,
        )


def chunk_key(row: Mapping[str, Any], ndim: int) -> str:
    """The Zarr v3 key (default encoding) of the chunk a refs row describes."""
    return "/".join(["c", *(str(row[f"c{i}"]) for i in range(ndim))])
