"""HDF5 / NetCDF4 reader: chunk refs from h5py's low-level chunk index, without decoding data.

Supported here: chunked, contiguous and compact layouts; numeric dtypes in either byte order; the
deflate, shuffle, fletcher32, zstd, blosc and lz4 filters; chunks whose filter mask skips filters (their
values are re-encoded with the array's full codec chain and stored in the repository). Everything else raises ``UnsupportedFeatureError`` naming
the file, variable and feature — never a silent fill value or a dropped variable.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

import fsspec
import h5py
import numpy as np

from readers.codecs import encode_bytes
from readers.errors import CorruptFileError, ReaderError, UnsupportedFeatureError
from readers.types import VirtualArray, VirtualDataset, refs_table

__all__ = ["Hdf5Reader"]

MAGIC = b"\x89HDF\r\n\x1a\n"
_LAYOUTS = {
    h5py.h5d.COMPACT: "compact",
    h5py.h5d.CONTIGUOUS: "contiguous",
    h5py.h5d.CHUNKED: "chunked",
}
_FILTER_NAMES = {4: "szip", 5: "nbit", 6: "scaleoffset", 32000: "lzf", 32001: "blosc", 32004: "lz4",
                 32008: "bitshuffle", 32015: "zstd"}  # fmt: skip
_NETCDF_INTERNAL = {"DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME", "_Netcdf4Dimid",
                    "_Netcdf4Coordinates", "_nc3_strict", "_NCProperties", "_FillValue"}  # fmt: skip
_LZ4, _ZSTD, _BLOSC = 32004, 32015, 32001
_BLOSC_NAMES = {0: "blosclz", 1: "lz4", 2: "lz4hc", 3: "snappy", 4: "zlib", 5: "zstd"}
_PURE_DIMENSION = b"This is a netCDF dimension but not a netCDF variable"


class Hdf5Reader:
    """Reads HDF5 and NetCDF4 files."""

    name = "hdf5"

    def sniff(self, header: bytes) -> bool:
        # The superblock sits at 0 or after a user block of 512, 1024, 2048... bytes.
        return any(header[o : o + 8] == MAGIC for o in (0, 512, 1024))

    def scan(self, url: str, *, storage_options: Mapping[str, Any] | None = None) -> VirtualDataset:
        try:
            with (
                fsspec.open(url, "rb", **dict(storage_options or {})) as raw,
                h5py.File(raw, "r") as f,
            ):
                return _Scan(url, f).run()
        except ReaderError:
            raise
        except FileNotFoundError as exc:
            raise ReaderError(url, "the file does not exist") from exc
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise CorruptFileError(url, None, f"HDF5 library error: {exc}") from exc


class _Scan:
    def __init__(self, url: str, f: h5py.File) -> None:
        self.url = url
        self.f = f
        self.groups: dict[str, dict[str, Any]] = {"/": _attributes(f.attrs)}
        self.arrays: dict[str, VirtualArray] = {}

    def run(self) -> VirtualDataset:
        self.f.visititems(self._visit)
        return VirtualDataset(self.url, self.groups, self.arrays)

    def _visit(self, name: str, obj: Any) -> None:
        path = "/" + name
        if isinstance(obj, h5py.Group):
            self.groups[path] = _attributes(obj.attrs)
        elif isinstance(obj, h5py.Dataset):
            if bytes(np.asarray(obj.attrs.get("NAME", b""), dtype=object).item() or b"").startswith(
                _PURE_DIMENSION
            ):
                return  # a netCDF dimension without a variable: its length lives in the arrays
            self.arrays[path] = self._array(path, obj)

    def _unsupported(self, path: str, feature: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(self.url, path, feature)

    def _array(self, path: str, ds: h5py.Dataset) -> VirtualArray:
        dtype = ds.dtype
        if dtype.kind not in "biufc" or dtype.fields is not None:
            raise self._unsupported(path, f"HDF5 datatype {dtype}")
        dcpl = ds.id.get_create_plist()
        layout = dcpl.get_layout()
        if layout not in _LAYOUTS:
            raise self._unsupported(path, f"HDF5 layout {layout} (virtual datasets)")
        shape = tuple(int(s) for s in ds.shape)
        codecs = [
            {
                "name": "bytes",
                "configuration": {"endian": "big" if dtype.byteorder == ">" else "little"},
            }
        ]
        codecs += [self._codec(path, dcpl.get_filter(i), dtype) for i in range(dcpl.get_nfilters())]
        if layout == h5py.h5d.CHUNKED:
            chunk_shape = tuple(int(c) for c in ds.chunks)
            refs = self._chunked_refs(path, ds, chunk_shape, codecs)
        elif layout == h5py.h5d.CONTIGUOUS:
            chunk_shape = tuple(max(s, 1) for s in shape)
            offset = ds.id.get_offset()
            size = ds.id.get_storage_size()
            zeros = np.zeros((1, len(shape)), dtype=np.int64)
            refs = (
                refs_table(zeros[:0], [], [])
                if offset is None or size == 0
                else refs_table(zeros, [offset], [size])
            )
        else:
            chunk_shape = tuple(max(s, 1) for s in shape)
            data = np.ascontiguousarray(np.asarray(ds[()], dtype=dtype)).tobytes()
            refs = refs_table(np.zeros((1, len(shape))), [0], [len(data)], inline=[data])
        return VirtualArray(
            path=path,
            shape=shape,
            dtype=dtype,
            chunk_shape=chunk_shape,
            codecs=tuple(codecs),
            fill_value=_fill_value(ds),
            attributes=_attributes(ds.attrs),
            dimension_names=self._dimension_names(ds),
            refs=refs,
        )

    def _codec(self, path: str, spec: tuple[Any, ...], dtype: np.dtype[Any]) -> dict[str, Any]:
        code, _flags, values, _name = spec
        if code == h5py.h5z.FILTER_DEFLATE:
            return {
                "name": "numcodecs.zlib",
                "configuration": {"level": int(values[0]) if values else 1},
            }
        if code == h5py.h5z.FILTER_SHUFFLE:
            return {"name": "numcodecs.shuffle", "configuration": {"elementsize": dtype.itemsize}}
        if code == h5py.h5z.FILTER_FLETCHER32:
            return {"name": "numcodecs.fletcher32", "configuration": {}}
        if code == _LZ4:
            return {
                "name": "hdf5_lz4",
                "configuration": {"block_size": int(values[0]) if values else 0},
            }
        if code == _ZSTD:
            return {
                "name": "numcodecs.zstd",
                "configuration": {"level": int(values[0]) if values else 3},
            }
        if code == _BLOSC and len(values) >= 7:
            return {
                "name": "numcodecs.blosc",
                "configuration": {
                    "cname": _BLOSC_NAMES.get(int(values[6]), "blosclz"),
                    "clevel": int(values[4]),
                    "shuffle": int(values[5]),
                    "blocksize": 0,
                },
            }
        label = _FILTER_NAMES.get(code, "unknown")
        raise self._unsupported(path, f"HDF5 filter {code} ({label})")

    def _chunked_refs(
        self,
        path: str,
        ds: h5py.Dataset,
        chunk_shape: tuple[int, ...],
        codecs: list[dict[str, Any]],
    ) -> Any:
        n = ds.id.get_num_chunks()
        ndim = len(chunk_shape)
        coords = np.empty((n, ndim), dtype=np.int64)
        offsets = np.empty(n, dtype=np.int64)
        lengths = np.empty(n, dtype=np.int64)
        masks = np.empty(n, dtype=np.int64)
        position = [0]

        def visit(info: Any) -> None:  # h5py forces a callback per chunk: fill arrays, convert once
            i = position[0]
            coords[i] = info.chunk_offset
            offsets[i], lengths[i], masks[i] = info.byte_offset, info.size, info.filter_mask
            position[0] = i + 1

        ds.id.chunk_iter(visit)
        count = position[0]
        coords = coords[:count] // np.asarray(chunk_shape)
        skipped = np.flatnonzero(masks[:count])
        if not len(skipped):
            return refs_table(coords, offsets[:count], lengths[:count])
        # Chunks written with some filters skipped cannot share the array's codec chain as they
        # are: re-encode their values (read through HDF5) with the full chain and keep the bytes.
        inline: list[bytes | None] = [None] * count
        for i in skipped:  # a loop over the few exception chunks only
            inline[i] = self._reencode(path, ds, coords[i], chunk_shape, codecs)
        return refs_table(coords, offsets[:count], lengths[:count], inline=inline)

    def _reencode(
        self,
        path: str,
        ds: h5py.Dataset,
        coord: np.ndarray,
        chunk_shape: tuple[int, ...],
        codecs: list[dict[str, Any]],
    ) -> bytes:
        import hdf5plugin  # noqa: F401  # HDF5 decodes the chunk's remaining plugin filters

        start = coord * np.asarray(chunk_shape)
        region = tuple(slice(int(a), int(a) + c) for a, c in zip(start, chunk_shape, strict=True))
        values = ds[region]
        # HDF5 stores edge chunks full size; what lies beyond the array is never read
        full = np.full(chunk_shape, _fill_value(ds), dtype=ds.dtype)
        full[tuple(slice(0, n) for n in values.shape)] = values
        data: bytes = np.ascontiguousarray(full).tobytes()
        for spec in codecs[1:]:
            data = encode_bytes(spec, data)
        return data

    def _dimension_names(self, ds: h5py.Dataset) -> tuple[str, ...]:
        names = []
        for i, dim in enumerate(ds.dims):
            scales = list(dim.values()) if len(dim) else []
            if scales:
                names.append(posixpath.basename(scales[0].name))
            elif ds.attrs.get("CLASS") == b"DIMENSION_SCALE":
                names.append(posixpath.basename(ds.name))
            else:
                names.append(f"phony_dim_{i}")
        return tuple(names)


def _fill_value(ds: h5py.Dataset) -> Any:
    if "_FillValue" in ds.attrs:
        return np.asarray(ds.attrs["_FillValue"]).astype(ds.dtype).reshape(-1)[0].item()
    return np.asarray(ds.fillvalue, dtype=ds.dtype).item()


def _attributes(attrs: h5py.AttributeManager) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in attrs:
        if key in _NETCDF_INTERNAL:
            continue
        try:
            value = attrs[key]
        except (OSError, TypeError):
            continue  # attribute types h5py cannot read (e.g. some references)
        converted = _json_value(value)
        if converted is not None:
            out[key] = converted
    return out


def _json_value(value: Any) -> Any:
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
