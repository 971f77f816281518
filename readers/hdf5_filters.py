"""HDF5 filters as Zarr v3 codecs: one small translator per filter, looked up by filter id.

A translator gets the filter's ``cd_values`` and the dataset's dtype and returns the codec's
``{"name", "configuration"}`` (``None`` for a filter that left the bytes as they are), or raises
:class:`UnsupportedFilterError` naming what cannot be expressed; the HDF5 reader adds the file and
variable. Codecs named ``hdf5_*`` are ours (``readers/codecs``), the others numcodecs'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import h5py
import numpy as np

__all__ = ["NBIT", "UnsupportedFilterError", "filter_codec"]

type Codec = dict[str, Any]
type Translator = Callable[[Sequence[int], np.dtype[Any]], Codec | None]

SZIP, NBIT, SCALEOFFSET = 4, 5, 6
LZF, BLOSC, LZ4, BITSHUFFLE, ZSTD = 32000, 32001, 32004, 32008, 32015
_NAMES = {SZIP: "szip", NBIT: "nbit", SCALEOFFSET: "scaleoffset", LZF: "lzf", BLOSC: "blosc",
          LZ4: "lz4", BITSHUFFLE: "bitshuffle", ZSTD: "zstd"}  # fmt: skip
_NBIT_ATOMIC = 1
_SCALEOFFSET_ESCALE = 1
_BLOSC_NAMES = {0: "blosclz", 1: "lz4", 2: "lz4hc", 3: "snappy", 4: "zlib", 5: "zstd"}


class UnsupportedFilterError(Exception):
    """A filter (or its parameters) has no codec; ``feature`` says which."""

    def __init__(self, feature: str) -> None:
        super().__init__(feature)
        self.feature = feature


def _spec(name: str, **configuration: Any) -> Codec:
    return {"name": name, "configuration": configuration}


def _at(values: Sequence[int], index: int, default: int) -> int:
    return values[index] if len(values) > index else default


def _unknown(code: int, values: Sequence[int]) -> UnsupportedFilterError:
    label = _NAMES.get(code, "unknown")
    return UnsupportedFilterError(f"HDF5 filter {code} ({label}) with parameters {tuple(values)}")


def _deflate(values: Sequence[int], dtype: np.dtype[Any]) -> Codec:
    return _spec("numcodecs.zlib", level=_at(values, 0, 1))


def _shuffle(values: Sequence[int], dtype: np.dtype[Any]) -> Codec:
    return _spec("numcodecs.shuffle", elementsize=dtype.itemsize)


def _fletcher32(values: Sequence[int], dtype: np.dtype[Any]) -> Codec:
    return _spec("numcodecs.fletcher32")


def _lz4(values: Sequence[int], dtype: np.dtype[Any]) -> Codec:
    return _spec("hdf5_lz4", block_size=_at(values, 0, 0))


def _zstd(values: Sequence[int], dtype: np.dtype[Any]) -> Codec:
    return _spec("numcodecs.zstd", level=_at(values, 0, 3))


def _lzf(values: Sequence[int], dtype: np.dtype[Any]) -> Codec:
    return _spec("hdf5_lzf")


def _blosc(values: Sequence[int], dtype: np.dtype[Any]) -> Codec:
    if len(values) < 7:
        raise _unknown(BLOSC, values)
    cname = _BLOSC_NAMES.get(values[6], "blosclz")
    return _spec("numcodecs.blosc", cname=cname, clevel=values[4], shuffle=values[5], blocksize=0)


def _szip(values: Sequence[int], dtype: np.dtype[Any]) -> Codec:
    if len(values) < 4:
        raise _unknown(SZIP, values)
    return _spec("hdf5_szip", options_mask=values[0], pixels_per_block=values[1],
                 bits_per_pixel=values[2], pixels_per_scanline=values[3])  # fmt: skip


def _bitshuffle(values: Sequence[int], dtype: np.dtype[Any]) -> Codec:
    if len(values) < 3:
        raise _unknown(BITSHUFFLE, values)
    return _spec("hdf5_bitshuffle", elementsize=values[2], block_size=_at(values, 3, 0),
                 compression=_at(values, 4, 0), level=_at(values, 5, 0))  # fmt: skip


def _scaleoffset(values: Sequence[int], dtype: np.dtype[Any]) -> Codec:
    if len(values) < 8 or values[0] == _SCALEOFFSET_ESCALE:
        raise _unknown(SCALEOFFSET, values)
    if dtype.kind not in "iuf":
        raise UnsupportedFilterError(f"scale-offset filter on {dtype}")
    fill = None
    if values[7]:  # the fill value is defined: its bytes follow, 4 per parameter
        fill = np.asarray(values[8:], dtype="<u4").tobytes()[: dtype.itemsize].hex()
    scale = values[1] - (1 << 32) if values[1] >= 1 << 31 else values[1]
    return _spec("hdf5_scaleoffset", dtype=dtype.str, scale_factor=scale, fill=fill)


def _nbit(values: Sequence[int], dtype: np.dtype[Any]) -> Codec | None:
    if len(values) < 8:
        raise _unknown(NBIT, values)
    if values[1]:  # the filter found nothing to pack and stored the values as they are
        return None
    if values[3] != _NBIT_ATOMIC or dtype.kind not in "iu":
        raise UnsupportedFilterError(f"n-bit filter on {dtype}")
    return _spec("hdf5_nbit", dtype=dtype.str, precision=values[6], offset=values[7])


_TRANSLATORS: dict[int, Translator] = {
    h5py.h5z.FILTER_DEFLATE: _deflate,
    h5py.h5z.FILTER_SHUFFLE: _shuffle,
    h5py.h5z.FILTER_FLETCHER32: _fletcher32,
    LZ4: _lz4,
    ZSTD: _zstd,
    BLOSC: _blosc,
    LZF: _lzf,
    SZIP: _szip,
    BITSHUFFLE: _bitshuffle,
    SCALEOFFSET: _scaleoffset,
    NBIT: _nbit,
}


def filter_codec(code: int, values: Sequence[int], dtype: np.dtype[Any]) -> Codec | None:
    """The Zarr v3 codec of HDF5 filter ``code`` with ``cd_values`` ``values`` on ``dtype``.

    Raises
    ------
    UnsupportedFilterError
        The filter is unknown or its parameters cannot be expressed.
    """
    values = tuple(int(v) for v in values)
    translator = _TRANSLATORS.get(code)
    if translator is None:
        raise _unknown(code, values)
    return translator(values, dtype)
