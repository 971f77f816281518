"""Format detection by magic bytes, and the one entry point ``open_virtual``."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

import fsspec

from readers.errors import CorruptFileError, ReaderError
from readers.paths import local_path
from readers.types import Reader, VirtualDataset

__all__ = ["open_virtual", "readers"]

_HEADER_BYTES = 2048


def readers() -> list[Reader]:
    """The readers that are available, in the order they are tried."""
    from readers.grib import GribReader
    from readers.hdf5 import Hdf5Reader
    from readers.kerchunk_refs import KerchunkJsonReader
    from readers.netcdf3 import NetCDF3Reader

    return [Hdf5Reader(), NetCDF3Reader(), GribReader(), KerchunkJsonReader()]


_PARSE_ERRORS = (
    IndexError, KeyError, ValueError, OverflowError, struct.error, EOFError,
    AttributeError, TypeError, RuntimeError,  # h5py internals meeting damaged metadata
)  # fmt: skip


def open_virtual(url: str, *, storage_options: Mapping[str, Any] | None = None) -> VirtualDataset:
    """Scan the file at ``url`` with the reader its first bytes call for.

    Raises
    ------
    ReaderError
        The file is missing (``CorruptFileError`` with no offset), of no known format, or its reader
        failed (``UnsupportedFeatureError``, ``CorruptFileError``).
    """
    try:
        local = local_path(url)
        with (
            open(local, "rb") if local is not None
            else fsspec.open(url, "rb", **dict(storage_options or {}))
        ) as f:  # fmt: skip
            header = f.read(_HEADER_BYTES)
    except IsADirectoryError:  # a Kerchunk Parquet reference set is a directory
        from readers.kerchunk_refs import open_kerchunk_parquet

        return open_kerchunk_parquet(url, storage_options=storage_options)
    except FileNotFoundError as exc:
        raise ReaderError(url, "the file does not exist") from exc
    for reader in readers():
        if reader.sniff(header):
            try:
                return reader.scan(url, storage_options=storage_options)
            except _PARSE_ERRORS as exc:
                # A reader's own checks raise CorruptFileError with the offset; these are what
                # slips past them on damaged input (a length pointing nowhere, a bad count).
                raise CorruptFileError(url, None, f"does not parse: {exc!r}") from exc
    raise CorruptFileError(url, 0, f"not a known format (first bytes {header[:8]!r})")
