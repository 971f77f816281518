"""Manifest files: one Parquet file per array split, one row per chunk ref, sorted by coordinate.

The Arrow schema is defined here once. Coordinates are one ``int32`` column per dimension
(``c0``, ``c1``, ...), which sorts, searches and compresses (delta encoding) better than a list
column. ``kind`` is a small integer (native / virtual / inline); ``location`` and ``checksum`` are
dictionary-encoded because an array's refs point into few files.
"""

from __future__ import annotations

import io
from enum import IntEnum

import pyarrow as pa
import pyarrow.parquet as pq

from icechunk_virtual.errors import FormatError
from icechunk_virtual.ids import ManifestId

__all__ = [
    "ChunkKind",
    "coord_names",
    "manifest_key",
    "manifest_schema",
    "read_manifest",
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


def write_manifest(table: pa.Table) -> bytes:
    """Parquet bytes of a sorted chunk-ref table.

    Coordinates, offsets and lengths use delta encoding (sorted coordinates and contiguous byte
    ranges delta to a few bits each); strings use Parquet's dictionary pages; zstd on top.
    """
    numeric = [n for n in table.column_names if n not in ("location", "inline", "checksum")]
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        use_dictionary=["location", "checksum"],
        column_encoding=dict.fromkeys(numeric, "DELTA_BINARY_PACKED"),
        write_statistics=False,
        row_group_size=max(table.num_rows, 1),
    )
    return sink.getvalue()


def read_manifest(data: bytes, *, ndim: int, where: str) -> pa.Table:
    """The chunk-ref table in a manifest file, checked against the schema."""
    try:
        table = pq.read_table(io.BytesIO(data), read_dictionary=["location", "checksum"])
    except (pa.ArrowException, OSError) as exc:
        raise FormatError(f"{where}: manifest does not parse as Parquet: {exc}") from exc
    expected = manifest_schema(ndim)
    if table.schema.remove_metadata() != expected:
        raise FormatError(
            f"{where}: manifest schema {table.schema} does not match the array's "
            f"{ndim}-dimensional chunk-ref schema"
        )
    return table
