"""HDF5 attributes as a user sees them: read once per object, netCDF's and HDF5's own
bookkeeping left out, values made JSON-ready (bytes decoded, numpy scalars and arrays as Python
values, object references dropped, an empty (null dataspace) attribute as netCDF4 shows it: ``[]``,
or ``""`` for strings). A complex attribute has no JSON form: :class:`UnrepresentableAttribute`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

__all__ = ["NETCDF_INTERNAL", "UnrepresentableAttribute", "json_attributes", "read_attributes"]


class UnrepresentableAttribute(ValueError):
    """An attribute value JSON cannot hold (the reader turns it into a typed error)."""

    def __init__(self, key: str, value: Any) -> None:
        super().__init__(f"attribute '{key}' = {value!r} (complex values have no JSON form)")


NETCDF_INTERNAL = {"DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME", "_Netcdf4Dimid",
                   "_Netcdf4Coordinates", "_nc3_strict", "_NCProperties"}  # fmt: skip
_NOT_READ = NETCDF_INTERNAL - {"DIMENSION_LIST", "CLASS", "NAME"}
"""Bookkeeping attributes the scan never needs (reading ``REFERENCE_LIST`` alone is costly)."""


def read_attributes(attrs: h5py.AttributeManager) -> dict[str, Any]:
    """Every attribute h5py can read, as h5py returns it (read once per object)."""
    out: dict[str, Any] = {}
    for key in attrs:
        if key in _NOT_READ:
            continue
        try:
            out[key] = attrs[key]
        except (OSError, TypeError):
            continue  # attribute types h5py cannot read (e.g. some references)
    return out


def json_attributes(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes a user sees, JSON-ready: netCDF's and HDF5's bookkeeping left out."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if key in NETCDF_INTERNAL:
            continue
        converted = _json_value(value)
        if isinstance(converted, complex) or (
            isinstance(converted, list) and any(isinstance(v, complex) for v in converted)
        ):
            raise UnrepresentableAttribute(key, value)
        if converted is not None:
            out[key] = converted
    return out


def _json_value(value: Any) -> Any:
    if isinstance(value, h5py.Empty):  # HDF5's null dataspace, as netCDF4 reads it
        return "" if value.dtype.kind in "SUO" else []
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "O" and value.size and not isinstance(value.flat[0], str | bytes):
            return None  # object references
        items = [_json_value(v) for v in value.reshape(-1)]
        return items[0] if len(items) == 1 else items
    if isinstance(value, np.generic):
        return value.item()
    return value
