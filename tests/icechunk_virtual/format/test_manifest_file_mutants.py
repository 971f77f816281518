"""Manifest files as Parquet, checked where a mutation run (mutmut) found gaps.

The oracle is pyarrow's own reading of the bytes (``pyarrow.parquet`` metadata: row groups,
compression, encodings, statistics) and coordinates computed here, not the module's helpers:
rows go in groups of ``ROW_GROUP_ROWS`` with each group's first coordinate in the footer, the
layout promised in ``write_manifest``'s docstring (zstd, delta-encoded numbers, dictionary
strings, no statistics), and each refusal a ``FormatError`` naming the file and what is wrong.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from icechunk_virtual.chunk_refs.tables import native_refs
from icechunk_virtual.errors import FormatError
from icechunk_virtual.format.ids import ManifestId
from icechunk_virtual.format.manifest_file import (
    ROW_GROUP_ROWS,
    ChunkKind,
    coord_names,
    manifest_key,
    manifest_schema,
    open_manifest,
    read_manifest,
    read_row_group,
    row_group_firsts,
    write_manifest,
)

WHERE = "memory://r/manifests/m.parquet"


def _table(n: int) -> pa.Table:
    coords = [(i // 100, i % 100) for i in range(n)]
    return native_refs(
        2,
        coords,
        [ChunkKind.NATIVE] * n,
        [f"chunk-{i % 3}" for i in range(n)],
        [i + 1 for i in range(n)],
        [None] * n,
    )


def test_rows_go_in_groups_with_each_groups_first_coordinate_in_the_footer() -> None:
    n = 2 * ROW_GROUP_ROWS + 17
    table = _table(n)
    parquet = open_manifest(write_manifest(table), where=WHERE)
    assert parquet.num_row_groups == 3
    assert [parquet.metadata.row_group(g).num_rows for g in range(3)] == [
        ROW_GROUP_ROWS,
        ROW_GROUP_ROWS,
        17,
    ]
    starts = [0, ROW_GROUP_ROWS, 2 * ROW_GROUP_ROWS]
    assert row_group_firsts(parquet, ndim=2, where=WHERE) == [(s // 100, s % 100) for s in starts]
    for g, start in enumerate(starts):
        group = read_row_group(parquet, g, ndim=2, where=WHERE)
        assert group.to_pylist() == table.slice(start, ROW_GROUP_ROWS).to_pylist()
    assert read_manifest(write_manifest(table), ndim=2, where=WHERE).equals(table)


def test_one_group_and_an_empty_file() -> None:
    table = _table(5)
    parquet = open_manifest(write_manifest(table), where=WHERE)
    assert parquet.num_row_groups == 1
    assert row_group_firsts(parquet, ndim=2, where=WHERE) == [(0, 0)]
    empty = open_manifest(write_manifest(_table(0)), where=WHERE)
    assert row_group_firsts(empty, ndim=2, where=WHERE) == []
    assert read_manifest(write_manifest(_table(0)), ndim=2, where=WHERE).num_rows == 0


def test_the_layout_write_manifest_promises() -> None:
    data = write_manifest(_table(ROW_GROUP_ROWS + 1))
    metadata = pq.ParquetFile(io.BytesIO(data)).metadata
    names = [metadata.schema.column(i).name for i in range(metadata.num_columns)]
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for i, name in enumerate(names):
            column = group.column(i)
            assert column.compression == "ZSTD", name
            assert not column.is_stats_set, name
            if name in ("c0", "c1", "kind", "offset", "length"):
                assert "DELTA_BINARY_PACKED" in column.encodings, name
            if name in ("location", "checksum"):
                assert column.has_dictionary_page, name
            if name == "inline":
                assert not column.has_dictionary_page, name


def test_a_file_without_the_group_index_reads_as_one_group() -> None:
    """Files written before the index existed: one group, starting at the origin."""
    sink = io.BytesIO()
    pq.write_table(_table(3), sink)
    parquet = open_manifest(sink.getvalue(), where=WHERE)
    assert row_group_firsts(parquet, ndim=2, where=WHERE) == [(0, 0)]
    assert row_group_firsts(parquet, ndim=3, where=WHERE) == [(0, 0, 0)]


@pytest.mark.parametrize("index", [b"not json", b"[[1, null]]", b'[["a"]]'])
def test_a_damaged_group_index_is_a_format_error(index: bytes) -> None:
    table = _table(3).replace_schema_metadata({b"icechunk_virtual.row_group_firsts": index})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    parquet = open_manifest(sink.getvalue(), where=WHERE)
    with pytest.raises(FormatError) as caught:
        row_group_firsts(parquet, ndim=2, where=WHERE)
    assert str(caught.value).startswith(f"{WHERE}: manifest row-group index does not parse: ")


def test_refusals_name_the_file_and_the_problem() -> None:
    parquet = open_manifest(write_manifest(_table(3)), where=WHERE)
    with pytest.raises(FormatError) as no_group:
        read_row_group(parquet, 1, ndim=2, where=WHERE)
    assert str(no_group.value) == f"{WHERE}: manifest has no row group 1"
    with pytest.raises(FormatError) as not_parquet:
        read_manifest(b"PAR1 garbage", ndim=2, where=WHERE)
    assert str(not_parquet.value).startswith(f"{WHERE}: manifest does not parse as Parquet: ")
    with pytest.raises(FormatError) as not_parquet_open:
        open_manifest(b"garbage", where=WHERE)
    assert str(not_parquet_open.value).startswith(f"{WHERE}: manifest does not parse as Parquet")
    with pytest.raises(FormatError) as wrong_ndim:
        read_manifest(write_manifest(_table(3)), ndim=3, where=WHERE)
    message = str(wrong_ndim.value)
    assert message.startswith(f"{WHERE}: manifest schema ")
    assert message.endswith("does not match the array's 3-dimensional chunk-ref schema")
    with pytest.raises(FormatError) as wrong_group_ndim:
        read_row_group(parquet, 0, ndim=1, where=WHERE)
    assert str(wrong_group_ndim.value).startswith(f"{WHERE}: manifest schema ")
    assert "1-dimensional chunk-ref schema" in str(wrong_group_ndim.value)


def test_a_file_lacking_a_dictionary_column_is_named() -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"c0": pa.array([0], pa.int32())}), sink)
    with pytest.raises(FormatError) as caught:
        read_manifest(sink.getvalue(), ndim=1, where=WHERE)
    assert (
        str(caught.value)
        == f"{WHERE}: manifest lacks the column b'location' of the chunk-ref schema"
    )


def test_schema_key_and_names() -> None:
    assert manifest_key(ManifestId.parse(str(mid := ManifestId.generate()))) == (
        f"manifests/{mid}.parquet"
    )
    assert coord_names(3) == ["c0", "c1", "c2"] and coord_names(0) == []
    schema = manifest_schema(2)
    assert schema.names == [
        "c0",
        "c1",
        "kind",
        "location",
        "offset",
        "length",
        "inline",
        "checksum",
    ]
    nullable = {f.name: f.nullable for f in schema}
    assert nullable == {
        "c0": False,
        "c1": False,
        "kind": False,
        "location": True,
        "offset": False,
        "length": False,
        "inline": True,
        "checksum": True,
    }
    assert schema.field("kind").type == pa.int8() and schema.field("c0").type == pa.int32()
    assert schema.field("location").type == pa.dictionary(pa.int32(), pa.string())
    assert schema.field("checksum").type == pa.dictionary(pa.int32(), pa.string())
    assert schema.field("offset").type == schema.field("length").type == pa.uint64()
    assert schema.field("inline").type == pa.binary()
    assert [int(k) for k in ChunkKind] == [0, 1, 2, 3]
    assert np.asarray([ChunkKind.DELETED]).dtype.kind == "i"


def test_damaged_data_behind_a_sound_footer_is_named() -> None:
    """The footer parses (the file opens) but a page does not: both readers say so, and where."""
    data = bytearray(write_manifest(_table(ROW_GROUP_ROWS + 5)))
    for i in range(8, 400):  # the first data pages, well before the footer
        data[i] ^= 0xFF
    damaged = bytes(data)
    parquet = open_manifest(damaged, where=WHERE)
    with pytest.raises(FormatError) as whole:
        read_manifest(damaged, ndim=2, where=WHERE)
    assert str(whole.value).startswith(f"{WHERE}: manifest does not parse as Parquet: ")
    with pytest.raises(FormatError) as group:
        read_row_group(parquet, 0, ndim=2, where=WHERE)
    assert str(group.value).startswith(f"{WHERE}: manifest row group 0 does not parse: ")


def test_a_slices_dictionaries_hold_only_the_strings_its_rows_use() -> None:
    """A slice of a split array's refs keeps the whole array's Arrow dictionary; the file must
    not (bytes per ref would grow with the number of sources)."""
    every = [f"file:///archive/{i:05d}.nc" for i in range(1000)]
    location = pa.DictionaryArray.from_arrays(pa.array([7, 7, 3, None], pa.int32()), every)
    checksum = pa.DictionaryArray.from_arrays(pa.array([1, 1, 2, None], pa.int32()), every)
    schema = manifest_schema(1)
    table = pa.Table.from_arrays(
        [pa.array([0, 1, 2, 3], pa.int32()), pa.array([0, 0, 0, 1], pa.int8()), location,
         pa.array([0, 10, 20, 0], pa.uint64()), pa.array([10, 10, 10, 0], pa.uint64()),
         pa.nulls(4, pa.binary()), checksum],
        schema=schema,
    )  # fmt: skip
    back = pq.read_table(
        io.BytesIO(write_manifest(table)), read_dictionary=["location", "checksum"]
    )
    for name, expected in (("location", [7, 7, 3, None]), ("checksum", [1, 1, 2, None])):
        column = back.column(name).combine_chunks()
        assert sorted(column.dictionary.to_pylist()) == sorted(
            {every[i] for i in expected if i is not None}
        )
        assert column.cast(pa.string()).to_pylist() == [
            None if i is None else every[i] for i in expected
        ]
