"""HDF5 / NetCDF4 reader: chunk refs from h5py's low-level chunk index, without decoding data.

Supported here:

- layouts: chunked; contiguous (one chunk, or split along the first axis when large); compact (the
  bytes are kept in the repository);
- filters: deflate, shuffle, fletcher32, lzf, szip, scale-offset, n-bit (integers), and the plugins
  bitshuffle, lz4, zstd and blosc; chunks whose filter mask skips filters are re-encoded with the
  array's whole chain and kept in the repository;
- types: numeric in either byte order, booleans, enums (their integers, with CF ``flag_values`` /
  ``flag_meanings``), fixed-length strings, compound types of those, variable-length strings (their
  values are kept in the repository).

Everything else raises ``UnsupportedFeatureError`` naming the file, variable and feature — never a
silent fill value or a dropped variable.
"""

from __future__ import annotations

import math
import posixpath
import warnings
from collections.abc import Mapping
from typing import Any

import fsspec
import h5py
import numcodecs
import numpy as np

from readers import slabs
from readers.codecs import encode_bytes
from readers.errors import CorruptFileError, ReaderError, UnsupportedFeatureError
from readers.hdf5_attributes import UnrepresentableAttribute, json_attributes, read_attributes
from readers.hdf5_filters import NBIT, UnsupportedFilterError, filter_codec
from readers.paths import local_path
from readers.types import VirtualArray, VirtualDataset, refs_table

__all__ = ["Hdf5Reader"]

MAGIC = b"\x89HDF\r\n\x1a\n"
_LAYOUTS = {
    h5py.h5d.COMPACT: "compact",
    h5py.h5d.CONTIGUOUS: "contiguous",
    h5py.h5d.CHUNKED: "chunked",
}
_PURE_DIMENSION = b"This is a netCDF dimension but not a netCDF variable"


class Hdf5Reader:
    """Reads HDF5 and NetCDF4 files."""

    name = "hdf5"

    def sniff(self, header: bytes) -> bool:
        # The superblock sits at 0 or after a user block of 512, 1024, 2048... bytes.
        return any(header[o : o + 8] == MAGIC for o in (0, 512, 1024))

    def scan(self, url: str, *, storage_options: Mapping[str, Any] | None = None) -> VirtualDataset:
        try:
            local = local_path(url)
            if local is not None:  # HDF5 reads local files itself, much faster than through Python
                with h5py.File(local, "r") as f:
                    return _Scan(url, f).run()
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
        self.groups: dict[str, dict[str, Any]] = {
            "/": self._attributes("/", read_attributes(f.attrs))
        }
        self.arrays: dict[str, VirtualArray] = {}

    def run(self) -> VirtualDataset:
        self.f.visititems(self._visit)
        links: list[tuple[str, Any]] = []  # (raising inside h5py's callback mangles errors)
        self.f.visititems_links(lambda name, link: links.append((name, link)))
        for name, link in links:
            self._visit_link(name, link)
        return VirtualDataset(self.url, self.groups, self.arrays)

    def _visit_link(self, name: str, link: Any) -> None:
        """A dataset named by a soft link is there under that name too, as h5py shows it
        (``visititems`` follows hard links only, so such a dataset would silently be missing)."""
        if isinstance(link, h5py.ExternalLink):
            raise self._unsupported("/" + name, f"external link to {link.filename}:{link.path}")
        soft = isinstance(link, h5py.SoftLink)
        target = self.f.get(name) if soft else None  # None too for a dangling link (h5py fails)
        if isinstance(target, h5py.Dataset) and _array_path("/" + name) not in self.arrays:
            self._visit(name, target)

    def _visit(self, name: str, obj: Any) -> None:
        path = _array_path("/" + name)
        if isinstance(obj, h5py.Group):
            self.groups[path] = self._attributes(path, read_attributes(obj.attrs))
        elif isinstance(obj, h5py.Dataset):
            attrs = read_attributes(obj.attrs)
            if bytes(np.asarray(attrs.get("NAME", b""), dtype=object).item() or b"").startswith(
                _PURE_DIMENSION
            ):
                return  # a netCDF dimension without a variable: its length lives in the arrays
            self.arrays[path] = self._array(path, obj, attrs)

    def _attributes(self, path: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return json_attributes(attrs)
        except UnrepresentableAttribute as exc:
            raise self._unsupported(path, str(exc)) from exc

    def _unsupported(self, path: str, feature: str) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(self.url, path, feature)

    def _array(self, path: str, ds: h5py.Dataset, attrs: Mapping[str, Any]) -> VirtualArray:
        dcpl = ds.id.get_create_plist()
        layout = dcpl.get_layout()
        if layout not in _LAYOUTS:
            raise self._unsupported(path, f"HDF5 layout {layout} (virtual datasets)")
        shape = tuple(int(s) for s in ds.shape)
        if ds.dtype.kind == "O" and h5py.check_string_dtype(ds.dtype) is not None:
            return self._vlen_strings(path, ds, shape, attrs)
        dtype, extra_attributes = self._stored_dtype(path, ds)
        filters = [dcpl.get_filter(i) for i in range(dcpl.get_nfilters())]
        if not any(f[0] == NBIT for f in filters):
            self._check_standard_precision(path, ds)
        codecs = [
            {
                "name": "bytes",
                "configuration": {"endian": "big" if _is_big_endian(dtype) else "little"},
            }
        ]
        codecs += [c for f in filters if (c := self._codec(path, f, dtype)) is not None]
        if layout == h5py.h5d.CHUNKED:
            chunk_shape = tuple(int(c) for c in ds.chunks)
            refs = self._chunked_refs(path, ds, chunk_shape, codecs, attrs)
        elif layout == h5py.h5d.CONTIGUOUS:
            chunk_shape, refs = self._contiguous_refs(ds, dtype, shape, attrs)
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
            fill_value=_fill_value(ds, dtype, attrs),
            attributes={**extra_attributes, **self._attributes(path, attrs)},
            dimension_names=self._dimension_names(ds, attrs),
            refs=refs,
        )

    def _stored_dtype(self, path: str, ds: h5py.Dataset) -> tuple[np.dtype[Any], dict[str, Any]]:
        """The dtype the values are stored with, and attributes that describe it (enums)."""
        dtype = ds.dtype
        enum = h5py.check_enum_dtype(dtype)
        if enum is not None:
            names = sorted(enum, key=enum.__getitem__)
            meanings = {
                "flag_values": [int(enum[n]) for n in names],
                "flag_meanings": " ".join(names),
            }
            return np.dtype(dtype.str), meanings
        if dtype.fields is not None:
            self._check_compound(path, ds)
            return dtype, {}
        if dtype.kind == "O":
            raise self._unsupported(path, "HDF5 variable-length sequences or references")
        if dtype.kind not in "biufcS" or dtype.subdtype is not None:
            raise self._unsupported(path, f"HDF5 datatype {dtype}")
        return dtype, {}

    def _check_compound(self, path: str, ds: h5py.Dataset) -> None:
        """Compound types map to Zarr ``struct`` when every member is a plain value, the members
        share one byte order and numpy's layout is the file's."""
        dtype = ds.dtype
        assert dtype.fields is not None
        for name, (member, _offset, *_) in dtype.fields.items():
            if member.kind not in "biufcS" or member.fields is not None or member.subdtype:
                raise self._unsupported(path, f"compound member {name!r} of type {member}")
            if member.byteorder == ">":
                raise self._unsupported(path, f"big-endian compound member {name!r}")
        tid = ds.id.get_type()
        offsets = {tid.get_member_name(i).decode(): tid.get_member_offset(i)
                   for i in range(tid.get_nmembers())}  # fmt: skip
        if tid.get_size() != dtype.itemsize or any(
            offsets.get(name) != field[1] for name, field in dtype.fields.items()
        ):
            raise self._unsupported(path, f"compound layout that differs from numpy's {dtype}")
        from zarr.core.dtype import parse_dtype  # only compound types need it; zarr is heavy

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parse_dtype(dtype, zarr_format=3)
        except (TypeError, ValueError) as exc:
            raise self._unsupported(path, f"compound type {dtype} ({exc})") from exc

    def _check_standard_precision(self, path: str, ds: h5py.Dataset) -> None:
        """Numbers must use every bit of their bytes; HDF5 converts other layouts on read."""
        tid = ds.id.get_type()
        if isinstance(tid, h5py.h5t.TypeIntegerID | h5py.h5t.TypeFloatID) and not isinstance(
            tid, h5py.h5t.TypeEnumID
        ):
            precision, offset = tid.get_precision(), tid.get_offset()
            if precision != tid.get_size() * 8 or offset != 0:
                raise self._unsupported(
                    path, f"{precision}-bit {ds.dtype} values at bit offset {offset}"
                )

    def _vlen_strings(
        self, path: str, ds: h5py.Dataset, shape: tuple[int, ...], attrs: Mapping[str, Any]
    ) -> VirtualArray:
        """Variable-length strings live in HDF5's heap, not in chunks: their values are read and
        kept in the repository, encoded with Zarr's ``vlen-utf8`` codec, in the dataset's chunks."""
        chunk_shape = (
            tuple(int(c) for c in ds.chunks) if ds.chunks else tuple(max(s, 1) for s in shape)
        )
        try:
            values = np.asarray(ds.asstr()[()], dtype=object).reshape(shape)
        except UnicodeDecodeError as exc:
            raise self._unsupported(path, "variable-length strings that are not UTF-8") from exc
        grid = [math.ceil(s / c) for s, c in zip(shape, chunk_shape, strict=True)]
        coords = np.indices(grid).reshape(len(grid), -1).T
        codec = numcodecs.VLenUTF8()
        inline: list[bytes | None] = []
        for coord in coords:  # strings are kept in the repository, chunk by chunk
            region = tuple(
                slice(int(i) * c, (int(i) + 1) * c) for i, c in zip(coord, chunk_shape, strict=True)
            )
            block = np.full(chunk_shape, "", dtype=object)
            part = values[region]
            block[tuple(slice(0, n) for n in part.shape)] = part
            inline.append(bytes(codec.encode(block.reshape(-1))))
        sizes = [len(b or b"") for b in inline]
        return VirtualArray(
            path=path,
            shape=shape,
            dtype=np.dtypes.StringDType(),
            chunk_shape=chunk_shape,
            codecs=({"name": "vlen-utf8", "configuration": {}},),
            fill_value="",
            attributes=self._attributes(path, attrs),
            dimension_names=self._dimension_names(ds, attrs),
            refs=refs_table(coords, np.zeros(len(inline)), sizes, inline=inline),
        )

    def _contiguous_refs(
        self,
        ds: h5py.Dataset,
        dtype: np.dtype[Any],
        shape: tuple[int, ...],
        attrs: Mapping[str, Any],
    ) -> tuple[tuple[int, ...], Any]:
        """One chunk, or slabs of whole rows (see ``readers.slabs``)."""
        whole = tuple(max(s, 1) for s in shape)
        offset = ds.id.get_offset()
        ndim = len(shape)
        if offset is None or ds.id.get_storage_size() == 0:
            return whole, refs_table(np.zeros((0, ndim), dtype=np.int64), [], [])
        fill = _fill_scalar(ds, dtype, attrs)

        def last_slab(first_row: int, chunk_shape: tuple[int, ...]) -> bytes:
            return _padded(ds[first_row:], chunk_shape, fill).tobytes()

        return slabs.block_refs(offset, shape, dtype.itemsize, last_slab)

    def _codec(
        self, path: str, spec: tuple[Any, ...], dtype: np.dtype[Any]
    ) -> dict[str, Any] | None:
        """The Zarr v3 codec of one HDF5 filter (``None`` for a filter that changed nothing)."""
        code, _flags, values, _name = spec
        try:
            return filter_codec(code, values, dtype)
        except UnsupportedFilterError as exc:
            raise self._unsupported(path, exc.feature) from None

    def _chunked_refs(
        self,
        path: str,
        ds: h5py.Dataset,
        chunk_shape: tuple[int, ...],
        codecs: list[dict[str, Any]],
        attrs: Mapping[str, Any],
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
            inline[i] = self._reencode(ds, coords[i], chunk_shape, codecs, attrs)
        return refs_table(coords, offsets[:count], lengths[:count], inline=inline)

    def _reencode(
        self,
        ds: h5py.Dataset,
        coord: np.ndarray,
        chunk_shape: tuple[int, ...],
        codecs: list[dict[str, Any]],
        attrs: Mapping[str, Any],
    ) -> bytes:
        import hdf5plugin  # noqa: F401  # HDF5 decodes the chunk's remaining plugin filters

        start = coord * np.asarray(chunk_shape)
        region = tuple(slice(int(a), int(a) + c) for a, c in zip(start, chunk_shape, strict=True))
        # HDF5 stores edge chunks full size; what lies beyond the array is never read
        dtype = np.dtype(ds.dtype.str) if ds.dtype.fields is None else ds.dtype
        data: bytes = _padded(ds[region], chunk_shape, _fill_scalar(ds, dtype, attrs)).tobytes()
        for spec in codecs[1:]:
            data = encode_bytes(spec, data)
        return data

    def _dimension_names(self, ds: h5py.Dataset, attrs: Mapping[str, Any]) -> tuple[str, ...]:
        """Each axis's dimension scale (netCDF dimension), read from the ``DIMENSION_LIST``
        references; a dimension scale names its own axis; other axes are ``phony_dim_<i>``."""
        attached = attrs.get("DIMENSION_LIST")
        is_scale = attrs.get("CLASS") == b"DIMENSION_SCALE"
        names = []
        for i in range(ds.ndim):
            scales: Any = attached[i] if attached is not None and i < len(attached) else ()
            if len(scales):
                name = h5py.h5r.get_name(scales[0], self.f.id).decode()
                names.append(posixpath.basename(name))
            elif is_scale:
                names.append(posixpath.basename(ds.name))
            else:
                names.append(f"phony_dim_{i}")
        return tuple(names)


_NON_COORDINATE = "_nc4_non_coord_"


def _array_path(path: str) -> str:
    """The name a user sees: netCDF-C stores a variable named like a dimension it does not
    index as ``_nc4_non_coord_<name>``, which netCDF4 shows as ``<name>``."""
    parent, _, name = path.rpartition("/")
    if name.startswith(_NON_COORDINATE):
        return f"{parent}/{name[len(_NON_COORDINATE) :]}"
    return path


def _is_big_endian(dtype: np.dtype[Any]) -> bool:
    return dtype.byteorder == ">" or (dtype.byteorder == "=" and np.little_endian is False)


def _fill_scalar(ds: h5py.Dataset, dtype: np.dtype[Any], attrs: Mapping[str, Any]) -> np.ndarray:
    """The fill value as a 0-d array of ``dtype``: netCDF's ``_FillValue`` or HDF5's own."""
    if "_FillValue" in attrs and dtype.fields is None:
        source = np.asarray(attrs["_FillValue"]).reshape(-1)[:1].reshape(())
    else:
        source = np.asarray(ds.fillvalue)
    with np.errstate(invalid="ignore"):
        return source.astype(dtype) if dtype.fields is None else source.view(dtype)


def _fill_value(ds: h5py.Dataset, dtype: np.dtype[Any], attrs: Mapping[str, Any]) -> Any:
    """The fill value as zarr takes it: a number or bytes, or a compound's bytes."""
    scalar = _fill_scalar(ds, dtype, attrs)
    return scalar.tobytes() if dtype.fields is not None else scalar.item()


def _padded(values: np.ndarray, chunk_shape: tuple[int, ...], fill: np.ndarray) -> np.ndarray:
    """``values`` in a whole chunk, the rest ``fill``, C-contiguous."""
    full = np.empty(chunk_shape, dtype=fill.dtype)
    full[...] = fill
    full[tuple(slice(0, n) for n in values.shape)] = values
    return full
