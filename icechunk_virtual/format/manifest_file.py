"""Manifest files: one Parquet file per array split, one row per chunk ref, sorted by coordinate.

The Arrow schema is defined here once. Coordinates are one ``int32`` column per dimension
(``c0``, ``c1``, ...), which sorts, searches and compresses (delta encoding) better than a list
column. ``kind`` is a small integer (native / virtual / inline); ``location`` and ``checksum`` are
dictionary-encoded because an array's refs point into few files.
"""

from __future__ import annotations

import io
import json
from enum import IntEnum

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from icechunk_virtual.errors import FormatError
from icechunk_virtual.format.ids import ManifestId

__all__ = [
    "ROW_GROUP_ROWS",
    "ChunkKind",
    "coord_names",
    "manifest_key",
    "manifest_schema",
    "open_manifest",
    "read_manifest",
    "read_row_group",
    "row_group_firsts",
    "write_manifest",
]


class ChunkKind(IntEnum):
    """Where a chunk's bytes are: the ``kind`` column."""

    NATIVE = 0
    """A ``chunks/<id>`` object in the repository; ``location`` is the chunk id."""
    VIRTUAL = 1
    """A byte range of an outside file; ``location`` is its URL."""
    INLINE = 2
    """The bytes themselves, in the ``inline`` column."""
    DELETED = 3
    """A tombstone: only in a session's pending changes, never in a manifest file."""


def manifest_key(manifest_id: ManifestId) -> str:
    return f"manifests/{manifest_id}.parquet"


def coord_names(ndim: int) -> list[str]:
    return [f"c{i}" for i in range(ndim)]


_LOCATION = pa.dictionary(pa.int32(), pa.string())


def manifest_schema(ndim: int) -> pa.Schema:
    """The Arrow schema of an ``ndim``-dimensional array's chunk refs."""
    return pa.schema(
        [pa.field(name, pa.int32(), nullable=False) for name in coord_names(ndim)]
        + [
            pa.field("kind", pa.int8(), nullable=False),
            pa.field("location", _LOCATION),
            pa.field("offset", pa.uint64(), nullable=False),
            pa.field("length", pa.uint64(), nullable=False),
            pa.field("inline", pa.binary()),
            pa.field("checksum", _LOCATION),
        ]
    )


ROW_GROUP_ROWS = 4096
"""Rows per Parquet row group: a point lookup decodes one group, not the whole file."""
_FIRSTS_KEY = b"icechunk_virtual.row_group_firsts"


def write_manifest(table: pa.Table) -> bytes:
    """Parquet bytes of a sorted chunk-ref table.

    Coordinates, offsets and lengths use delta encoding (sorted coordinates and contiguous byte
    ranges delta to a few bits each); strings use Parquet's dictionary pages; zstd on top. Rows go
    in groups of :data:`ROW_GROUP_ROWS`, and the file's metadata lists each group's first
    coordinate, so one chunk's ref is found by decoding one group. Each file's dictionaries hold
    only the strings its rows use (a slice of a split array's refs would otherwise carry the
    whole array's, and bytes per ref would grow with the number of sources).
    """
    table = _compact_dictionaries(table)
    numeric = [n for n in table.column_names if n not in ("location", "inline", "checksum")]
    ndim = sum(1 for n in table.column_names if n.startswith("c") and n[1:].isdigit())
    starts = range(0, max(table.num_rows, 1), ROW_GROUP_ROWS)
    firsts = [
        [table.column(name)[row].as_py() for name in coord_names(ndim)]
        for row in starts
        if row < table.num_rows
    ]
    table = table.replace_schema_metadata({_FIRSTS_KEY: json.dumps(firsts).encode()})
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        use_dictionary=["location", "checksum"],
        column_encoding=dict.fromkeys(numeric, "DELTA_BINARY_PACKED"),
        write_statistics=False,
        row_group_size=ROW_GROUP_ROWS,
    )
    return sink.getvalue()


def _compact_dictionaries(table: pa.Table) -> pa.Table:
    for name in ("location", "checksum"):
        at = table.schema.get_field_index(name)
        if at >= 0:
            strings = table.column(name).cast(pa.string()).combine_chunks()
            table = table.set_column(at, table.schema.field(at), pc.dictionary_encode(strings))
    return table


def open_manifest(data: bytes, *, where: str) -> pq.ParquetFile:
    """The manifest file's Parquet reader (its footer parsed once, for reading groups)."""
    return _open(data, where)


def _open(data: bytes, where: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(io.BytesIO(data), read_dictionary=["location", "checksum"])
    except KeyError as exc:
        raise FormatError(
            f"{where}: manifest lacks the column {exc} of the chunk-ref schema"
        ) from exc
    except (pa.ArrowException, OSError) as exc:
        raise FormatError(f"{where}: manifest does not parse as Parquet: {exc}") from exc


def row_group_firsts(parquet: pq.ParquetFile, *, ndim: int, where: str) -> list[tuple[int, ...]]:
    """Each row group's first coordinate (one group holding everything for older files)."""
    metadata = parquet.schema_arrow.metadata or {}
    try:
        if _FIRSTS_KEY in metadata:
            return [tuple(int(c) for c in f) for f in json.loads(metadata[_FIRSTS_KEY])]
    except (ValueError, TypeError) as exc:
        raise FormatError(f"{where}: manifest row-group index does not parse: {exc}") from exc
    return [(0,) * ndim]


def read_row_group(parquet: pq.ParquetFile, group: int, *, ndim: int, where: str) -> pa.Table:
    """The chunk refs in one row group of a manifest file, checked against the schema."""
    if group >= parquet.num_row_groups:
        raise FormatError(f"{where}: manifest has no row group {group}")
    try:
        table = parquet.read_row_group(group, use_threads=False)  # one small group: no pool
    except (pa.ArrowException, OSError) as exc:
        raise FormatError(f"{where}: manifest row group {group} does not parse: {exc}") from exc
    return _checked(table, ndim, where)


def read_manifest(data: bytes, *, ndim: int, where: str) -> pa.Table:
    """The chunk-ref table in a manifest file, checked against the schema."""
    parquet = _open(data, where)
    try:
        table = parquet.read()
    except (pa.ArrowException, OSError) as exc:
        raise FormatError(f"{where}: manifest does not parse as Parquet: {exc}") from exc
    return _checked(table, ndim, where)


def _checked(table: pa.Table, ndim: int, where: str) -> pa.Table:
    expected = manifest_schema(ndim)
    if table.schema.remove_metadata() != expected:
        raise FormatError(
            f"{where}: manifest schema {table.schema} does not match the array's "
            f"{ndim}-dimensional chunk-ref schema"
        )
    return table
