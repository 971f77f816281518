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
_LIBRARY_ONLY = (AttributeError, TypeError, RuntimeError)
"""Damaged input only when a format library raised them; from the readers' own code, a bug."""
_FORMAT_LIBRARIES = frozenset({"h5py", "numpy", "eccodes", "gribapi", "numcodecs"})


def _raised_by_a_format_library(exc: BaseException) -> bool:
    """Whether the innermost frame that raised ``exc`` is a format library's code."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", "")) if tb is not None else ""
    return module.partition(".")[0] in _FORMAT_LIBRARIES


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
                if isinstance(exc, _LIBRARY_ONLY) and not _raised_by_a_format_library(exc):
                    raise  # a programming error in a reader surfaces as itself
                raise CorruptFileError(url, None, f"does not parse: {exc!r}") from exc
    raise CorruptFileError(url, 0, f"not a known format (first bytes {header[:8]!r})")
