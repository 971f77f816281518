"""Kerchunk references (JSON version 0 and 1, and Parquet) as a VirtualDataset, so a Kerchunk user
moves an existing reference set into a repository with one ``ingest`` call.

Zarr v2 metadata (``.zgroup``, ``.zarray``, ``.zattrs``, ``_ARRAY_DIMENSIONS``) becomes Zarr v3:
filters and compressor become a v3 codec chain of numcodecs codecs; ``[url, offset, length]``
refs keep their URL per chunk (the ``url`` column of the refs), with version 1 ``{{templates}}``
filled in; inline data (text, or ``base64:``) is kept in the repository. What has no Zarr v3
equivalent (Fortran order, object dtypes, unknown codecs, generated ``gen`` keys) raises
``UnsupportedFeatureError`` naming the reference file and the array.
"""

from __future__ import annotations

import base64
import json
import posixpath
import re
from collections.abc import Mapping
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from readers.errors import CorruptFileError, ReaderError, UnsupportedFeatureError
from readers.types import VirtualArray, VirtualDataset, refs_table

__all__ = ["KerchunkJsonReader", "open_kerchunk_parquet", "references_to_dataset"]

_TEMPLATE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_METADATA = (".zgroup", ".zarray", ".zattrs", ".zmetadata")


class KerchunkJsonReader:
    """Reads a Kerchunk JSON reference file (version 0 or 1)."""

    name = "kerchunk"

    def sniff(self, header: bytes) -> bool:
        text = header.lstrip()[:1]
        return text == b"{" and (
            b'"refs"' in header or b".zgroup" in header or b".zarray" in header
        )

    def scan(self, url: str, *, storage_options: Mapping[str, Any] | None = None) -> Any:
        try:
            with fsspec.open(url, "rt", **dict(storage_options or {})) as f:
                document = json.load(f)
        except FileNotFoundError as exc:
            raise ReaderError(url, "the file does not exist") from exc
        except json.JSONDecodeError as exc:
            raise CorruptFileError(url, exc.pos, f"not valid JSON: {exc.msg}") from exc
        if not isinstance(document, dict):
            raise CorruptFileError(url, 0, "a Kerchunk reference file holds a JSON object")
        if document.get("gen"):
            raise UnsupportedFeatureError(url, "/", "Kerchunk generated references ('gen')")
        refs = document.get("refs", document) if document.get("version") == 1 else document
        templates = document.get("templates", {}) if document.get("version") == 1 else {}
        return references_to_dataset(url, refs, templates, storage_options)


def open_kerchunk_parquet(
    url: str, *, storage_options: Mapping[str, Any] | None = None
) -> VirtualDataset:
    """A Kerchunk Parquet reference directory (``.zmetadata`` plus ``<array>/refs.<n>.parq``,
    ``record_size`` chunks per file in C order; a row's ``raw`` bytes are inline data)."""
    fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    try:
        meta = json.loads(fs.cat_file(posixpath.join(root, ".zmetadata")))
    except FileNotFoundError as exc:
        raise ReaderError(url, "no .zmetadata: not a Kerchunk Parquet reference directory") from exc
    record_size = int(meta["record_size"])
    refs: dict[str, Any] = {k: json.dumps(v) if not isinstance(v, str) else v
                            for k, v in meta["metadata"].items()}  # fmt: skip
    chunk_rows: dict[str, pa.Table] = {}
    for key in [k for k in refs if k.endswith("/.zarray")]:
        array = key[: -len("/.zarray")]
        files = sorted(fs.glob(posixpath.join(root, array, "refs.*.parq")),
                       key=lambda p: int(p.rsplit(".", 2)[-2]))  # fmt: skip
        tables = []
        for path in files:
            with fs.open(path, "rb") as f:
                table = pq.read_table(f)
            start = int(path.rsplit(".", 2)[-2]) * record_size
            tables.append(
                table.append_column("index", pa.array(np.arange(start, start + len(table))))
            )
        if tables:
            chunk_rows[array] = pa.concat_tables(tables)
    return references_to_dataset(url, refs, {}, storage_options, chunk_rows=chunk_rows)


def references_to_dataset(
    url: str,
    refs: Mapping[str, Any],
    templates: Mapping[str, str],
    storage_options: Mapping[str, Any] | None,
    *,
    chunk_rows: Mapping[str, pa.Table] | None = None,
) -> VirtualDataset:
    """Kerchunk's key -> value mapping (plus Parquet rows per array) as a VirtualDataset."""
    groups: dict[str, dict[str, Any]] = {}
    metadata = {k: _json(url, k, v) for k, v in refs.items() if k.rsplit("/", 1)[-1] in _METADATA}
    for key in metadata:
        node, name = _split(key)
        if name == ".zgroup":
            groups["/" + node] = dict(metadata.get(_join(node, ".zattrs"), {}))
    groups.setdefault("/", dict(metadata.get(".zattrs", {})))
    by_array: dict[str, list[tuple[str, Any]]] = {}
    for key, value in refs.items():
        node, name = _split(key)
        if name not in _METADATA:
            by_array.setdefault(node, []).append((name, value))
    arrays = {}
    for key, zarray in metadata.items():
        node, name = _split(key)
        if name != ".zarray":
            continue
        attributes = dict(metadata.get(_join(node, ".zattrs"), {}))
        rows = (chunk_rows or {}).get(node)
        arrays["/" + node] = _array(
            url, "/" + node, zarray, attributes, by_array.get(node, []), rows, templates,
            storage_options,
        )  # fmt: skip
    return VirtualDataset(url, groups, arrays)


def _json(url: str, key: str, value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise CorruptFileError(url, None, f"'{key}' is not valid JSON: {exc.msg}") from exc
    return value


def _split(key: str) -> tuple[str, str]:
    node, _, name = key.rpartition("/")
    return node, name


def _join(node: str, name: str) -> str:
    return f"{node}/{name}" if node else name


def _array(
    url: str,
    path: str,
    zarray: Mapping[str, Any],
    attributes: dict[str, Any],
    chunks: list[tuple[str, Any]],
    rows: pa.Table | None,
    templates: Mapping[str, str],
    storage_options: Mapping[str, Any] | None,
) -> VirtualArray:
    if zarray.get("order", "C") != "C":
        raise UnsupportedFeatureError(url, path, "Fortran-ordered chunks")
    dtype = np.dtype(zarray["dtype"]) if isinstance(zarray["dtype"], str) else None
    if dtype is None or (dtype.kind in "OV" and dtype.fields is None):
        raise UnsupportedFeatureError(url, path, f"Zarr v2 dtype {zarray['dtype']}")
    shape = tuple(int(s) for s in zarray["shape"])
    chunk_shape = tuple(int(c) for c in zarray["chunks"])
    dims = attributes.pop("_ARRAY_DIMENSIONS", None)
    refs = _RefColumns(url, path, templates)
    separator = zarray.get("dimension_separator", ".")
    for name, value in chunks:
        refs.add(name, [int(i) for i in name.split(separator)] if shape else [], value)
    if rows is not None:
        grid = [-(-s // c) for s, c in zip(shape, chunk_shape, strict=True)]
        refs.add_rows(rows, grid if shape else None)
    return VirtualArray(
        path=path,
        shape=shape,
        dtype=dtype,
        chunk_shape=chunk_shape,
        codecs=_codecs(url, path, zarray, dtype),
        fill_value=_fill_value(zarray.get("fill_value"), dtype),
        attributes=attributes,
        dimension_names=tuple(dims) if dims else (),
        refs=refs.table(len(shape), storage_options),
    )


class _RefColumns:
    """The refs of one array, gathered column by column from JSON keys or Parquet rows."""

    def __init__(self, url: str, path: str, templates: Mapping[str, str]) -> None:
        self.url, self.path, self.templates = url, path, templates
        self.coords: list[list[int]] = []
        self.urls: list[str] = []
        self.offsets: list[int] = []
        self.lengths: list[int] = []
        self.inline: list[bytes | None] = []

    def add(self, key: str, coord: list[int], value: Any) -> None:
        """One reference: ``[url, offset, length]``, ``[url]`` (the whole file) or data."""
        self.coords.append(coord)
        if isinstance(value, list) and value and isinstance(value[0], str):
            target = _TEMPLATE.sub(lambda m: self.templates.get(m.group(1), m.group(0)), value[0])
            self.urls.append(target)
            self.offsets.append(int(value[1]) if len(value) > 1 else 0)
            self.lengths.append(int(value[2]) if len(value) > 2 else -1)  # -1: the whole file
            self.inline.append(None)
        elif isinstance(value, str | bytes):
            data = value.encode() if isinstance(value, str) else value
            if data.startswith(b"base64:"):
                data = base64.b64decode(data[len(b"base64:") :])
            self.urls.append("")
            self.offsets.append(0)
            self.lengths.append(len(data))
            self.inline.append(data)
        else:
            raise CorruptFileError(
                self.url, None, f"reference '{self.path}/{key}' is neither data nor a range"
            )

    def add_rows(self, rows: pa.Table, grid: list[int] | None) -> None:
        """The rows of a Parquet reference set (``grid`` ``None`` for a scalar array)."""
        table = rows.to_pydict()
        for i, index in enumerate(table["index"]):
            if table["path"][i] is None and table["raw"][i] is None:
                continue  # no chunk: reads as fill
            coord = [int(c) for c in np.unravel_index(index, grid)] if grid is not None else []
            value = table["raw"][i] if table["path"][i] is None else [
                table["path"][i], table["offset"][i], table["size"][i]]  # fmt: skip
            self.add(str(index), coord, value)

    def table(self, ndim: int, storage_options: Mapping[str, Any] | None) -> pa.Table:
        _fill_whole_file_lengths(self.urls, self.offsets, self.lengths, storage_options)
        refs = refs_table(
            np.asarray(self.coords, dtype=np.int64).reshape(len(self.coords), ndim),
            self.offsets,
            self.lengths,
            inline=self.inline if any(b is not None for b in self.inline) else None,
        )
        return refs.append_column("url", pa.array(self.urls, pa.string()).dictionary_encode())


def _fill_whole_file_lengths(
    urls: list[str], offsets: list[int], lengths: list[int], options: Mapping[str, Any] | None
) -> None:
    """``[url]`` refs mean the whole file: ask the file system its size."""
    for i, length in enumerate(lengths):
        if length < 0:
            fs, target = fsspec.core.url_to_fs(urls[i], **dict(options or {}))
            lengths[i] = int(fs.size(target))


def _codecs(
    url: str, path: str, zarray: Mapping[str, Any], dtype: np.dtype[Any]
) -> tuple[dict[str, Any], ...]:
    """Zarr v2 filters + compressor as a v3 chain: array-to-array codecs, ``bytes``, then the
    bytes-to-bytes ones in the order v2 applies them on write."""
    from zarr.abc.codec import ArrayArrayCodec, BytesBytesCodec
    from zarr.errors import UnknownCodecError
    from zarr.registry import get_codec_class

    before: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    for spec in [*(zarray.get("filters") or []), *([zarray["compressor"]]
                                                   if zarray.get("compressor") else [])]:  # fmt: skip
        config = {k: v for k, v in spec.items() if k != "id"}
        name = f"numcodecs.{spec['id']}"
        try:
            codec_class = get_codec_class(name)
        except (KeyError, UnknownCodecError) as exc:
            raise UnsupportedFeatureError(url, path, f"Zarr v2 codec '{spec['id']}'") from exc
        if issubclass(codec_class, ArrayArrayCodec):
            before.append({"name": name, "configuration": config})
        elif issubclass(codec_class, BytesBytesCodec):
            after.append({"name": name, "configuration": config})
        else:
            raise UnsupportedFeatureError(url, path, f"Zarr v2 codec '{spec['id']}'")
    endian = "big" if dtype.byteorder == ">" else "little"
    return (*before, {"name": "bytes", "configuration": {"endian": endian}}, *after)


def _fill_value(value: Any, dtype: np.dtype[Any]) -> Any:
    if value is None:
        return None
    if isinstance(value, str) and dtype.kind == "f":
        return float(value)  # "NaN", "Infinity", "-Infinity"
    if isinstance(value, str) and dtype.kind == "S":
        return base64.b64decode(value)
    return value
