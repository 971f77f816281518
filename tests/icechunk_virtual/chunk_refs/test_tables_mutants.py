"""Chunk-ref lookups against a dict model, and users' refs, where a mutation run found gaps.

``IndexedRefs.lookup`` and ``lookup_many`` must give, for any coordinate, exactly the ref the
model holds there (kind, location, offset, length, inline bytes, checksum), and ``None`` for
coordinates the table lacks, lies outside its extent (negative, at or past it) or of the wrong
length; an empty table finds nothing. The model is a dict built here from the same inputs.
``virtual_refs`` takes coordinates in each form it documents (integers of any width, Arrow
columns of any integer or string type), and refuses malformed refs (non-integer or ragged
coordinates among them) with an ``InvalidInputError`` whose message names the column and the
problem. Extents and linear indices match Python's row-major arithmetic, grids of 2**62 cells or
more are refused; ``keep_last`` and ``apply_changes`` return their input when there is nothing
to do, and a fresh index reads its first lookup's row alone.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from icechunk_virtual.chunk_refs import tables
from icechunk_virtual.chunk_refs.tables import (
    ChunkRef,
    IndexedRefs,
    apply_changes,
    concat_refs,
    empty_refs,
    extent_of,
    keep_last,
    linear_index,
    native_refs,
    row_ref,
    virtual_refs,
)
from icechunk_virtual.errors import InvalidInputError
from icechunk_virtual.format.manifest_file import ChunkKind

Coord = tuple[int, int]
cells = st.tuples(st.integers(0, 4), st.integers(0, 4))
# per coordinate: a virtual ref (with or without a checksum) or an inline chunk
payloads = st.one_of(
    st.tuples(st.just("virtual"), st.sampled_from([None, "etag-a", "etag-b"])),
    st.tuples(st.just("inline"), st.binary(min_size=1, max_size=3)),
)


def _build(refs: dict[Coord, tuple[str, object]]) -> tuple[pa.Table, dict[Coord, ChunkRef]]:
    virtual = {c: p for c, p in refs.items() if p[0] == "virtual"}
    inline = {c: p for c, p in refs.items() if p[0] == "inline"}
    model: dict[Coord, ChunkRef] = {}
    tables = []
    if virtual:
        coords = sorted(virtual)
        checksums = [virtual[c][1] for c in coords]
        tables.append(
            virtual_refs(
                {
                    "coord": np.asarray(coords, dtype=np.int64).reshape(len(coords), 2),
                    "location": [f"s3://b/f{c[0]}.nc" for c in coords],
                    "offset": [10 * c[0] + c[1] for c in coords],
                    "length": [c[1] + 1 for c in coords],
                    "checksum": checksums,
                },
                ndim=2,
                grid=None,
                where="test",
            )
        )
        for c, checksum in zip(coords, checksums, strict=True):
            model[c] = ChunkRef(
                ChunkKind.VIRTUAL,
                f"s3://b/f{c[0]}.nc",
                10 * c[0] + c[1],
                c[1] + 1,
                None,
                checksum,  # type: ignore[arg-type]
            )
    if inline:
        coords = sorted(inline)
        data = [inline[c][1] for c in coords]
        tables.append(
            native_refs(
                2,
                coords,
                [ChunkKind.INLINE] * len(coords),
                [None] * len(coords),
                [len(d) for d in data],  # type: ignore[arg-type]
                data,  # type: ignore[arg-type]
            )
        )
        for c, d in zip(coords, data, strict=True):
            model[c] = ChunkRef(ChunkKind.INLINE, None, 0, len(d), d, None)  # type: ignore[arg-type]
    table = keep_last(concat_refs(tables), 2) if tables else empty_refs(2)
    return table, model


queries = st.lists(
    st.one_of(st.tuples(st.integers(-1, 6), st.integers(-1, 6)), st.just((0,)), st.just((0, 0, 0))),
    max_size=12,
)


@given(st.dictionaries(cells, payloads, max_size=12), queries)
def test_lookups_match_a_dict_model(
    refs: dict[Coord, tuple[str, object]], asked: list[tuple[int, ...]]
) -> None:
    table, model = _build(refs)
    expected = [model.get(c) for c in asked]  # type: ignore[arg-type]  # (0,) and (0, 0, 0) too
    asked_2d = [c for c in asked if len(c) == 2]
    assert IndexedRefs.build(table, 2).lookup_many(asked_2d) == [model.get(c) for c in asked_2d]
    indexed = IndexedRefs.build(table, 2)
    for _ in range(2):  # the first lookup reads its row alone, later ones use numpy columns
        assert [indexed.lookup(c) for c in asked] == expected
    if any(len(c) != 2 for c in asked):
        assert IndexedRefs.build(table, 2).lookup_many(asked) == [None] * len(asked)


def test_lookup_many_at_the_edges() -> None:
    table, model = _build(
        {(0, 0): ("virtual", "etag-a"), (0, 3): ("virtual", None), (2, 0): ("inline", b"x")}
    )
    indexed = IndexedRefs.build(table, 2)
    asked = [(0, 0), (2, 3), (3, 0), (0, 4), (-1, 0), (0, -1), (2, 0), (1, 1)]
    assert indexed.lookup_many(asked) == [
        model[(0, 0)],
        None,
        None,
        None,
        None,
        None,
        model[(2, 0)],
        None,
    ]
    # extent (2, 1) in the second dimension: a coordinate 1 there is outside, not coordinate 0
    narrow, narrow_model = _build({(0, 0): ("virtual", "etag-b"), (1, 0): ("virtual", None)})
    assert IndexedRefs.build(narrow, 2).lookup_many([(0, 1), (-1, 0), (1, 0)]) == [
        None,
        None,
        narrow_model[(1, 0)],
    ]
    # past the last key but inside the extent
    past, _ = _build({(0, 1): ("virtual", None), (1, 0): ("virtual", None)})
    assert IndexedRefs.build(past, 2).lookup_many([(1, 1)]) == [None]


def test_an_empty_table_finds_nothing() -> None:
    indexed = IndexedRefs.build(empty_refs(2), 2)
    assert indexed.lookup_many([(0, 0), (1, 2)]) == [None, None]
    assert indexed.lookup((0, 0)) is None


def test_the_first_checksum_in_the_dictionary_is_returned() -> None:
    table, model = _build({(0, 0): ("virtual", "etag-a"), (0, 1): ("virtual", "etag-b")})
    indexed = IndexedRefs.build(table, 2)
    assert indexed.lookup_many([(0, 0), (0, 1)]) == [model[(0, 0)], model[(0, 1)]]
    assert indexed.lookup_many([(0, 0)])[0].checksum == "etag-a"  # type: ignore[union-attr]


def test_scalar_arrays_take_refs_without_coordinates() -> None:
    table = virtual_refs(
        {"location": ["s3://b/s.nc"], "offset": [8], "length": [4]}, ndim=0, grid=None, where="t"
    )
    assert table.num_rows == 1 and table.column_names[0] == "kind"
    ref = IndexedRefs.build(table, 0).lookup(())
    assert ref == ChunkRef(ChunkKind.VIRTUAL, "s3://b/s.nc", 8, 4, None, None)


# ---- virtual_refs: the forms a user's refs may take, and the refusals ----------------------------


def _refs(**columns: object) -> dict[str, object]:
    return {
        "location": ["s3://b/a.nc", "s3://b/b.nc"],
        "offset": [0, 8],
        "length": [8, 8],
    } | columns


def test_coordinates_as_an_arrow_list_column_or_per_dimension_columns() -> None:
    expected = [(0, 1, "s3://b/a.nc"), (1, 2, "s3://b/b.nc")]
    for coord in (pa.array([[0, 1], [1, 2]]), pa.chunked_array([[[0, 1]], [[1, 2]]])):
        table = virtual_refs(_refs(coord=coord), ndim=2, grid=None, where="W")
        assert [(r["c0"], r["c1"], r["location"]) for r in table.to_pylist()] == expected
    table = virtual_refs(_refs(c0=[0, 1], c1=[1, 2]), ndim=2, grid=None, where="W")
    assert [(r["c0"], r["c1"], r["location"]) for r in table.to_pylist()] == expected


@pytest.mark.parametrize(
    ("columns", "ndim", "message"),
    [
        ({}, 2, "W: refs need a 'coord' column (n x 2) or columns c0, c1"),
        (
            {"coord": pa.array([[0], [1]])},
            2,
            "W: 'coord' must have shape (n, 2) for a 2-dimensional array, got (2, 1)",
        ),
        ({"coord": [[0], [1]], "offset": [0]}, 1, "W: column 'offset' has 1 rows, coords 2"),
        ({"coord": [[0], [1]], "length": [8]}, 1, "W: column 'length' has 1 rows, coords 2"),
        ({"coord": [[0], [1]], "location": ["a"]}, 1, "W: column 'location' has 1 rows, coords 2"),
    ],
    ids=["no-coordinates", "coord-width", "offset-rows", "length-rows", "location-rows"],
)  # ids of our own: pytest's "columns3" would match mutmut's `-k "not s3"` and be deselected
def test_malformed_refs_are_refused_naming_the_problem(
    columns: dict[str, object], ndim: int, message: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        virtual_refs(_refs(**columns), ndim=ndim, grid=None, where="W")
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("columns", "start"),
    [
        ({"location": [1, 2]}, "W: refs need 'location' (str), 'offset' and 'length'"),
        ({"offset": [-1, 8]}, "W: refs need 'location' (str), 'offset' and 'length'"),
        ({"length": [8, -8]}, "W: refs need 'location' (str), 'offset' and 'length'"),
        ({"checksum": [1, 2]}, "W: refs' 'checksum' must be strings"),
    ],
    ids=["location-type", "offset-sign", "length-sign", "checksum-type"],
)
def test_values_of_the_wrong_type_or_sign_are_invalid_input(
    columns: dict[str, object], start: str
) -> None:
    """Negative offsets and non-string checksums used to escape as OverflowError and
    ArrowTypeError; every refusal of a user's refs is an ``InvalidInputError``."""
    with pytest.raises(InvalidInputError) as caught:
        virtual_refs(_refs(coord=[[0], [1]], **columns), ndim=1, grid=None, where="W")
    assert str(caught.value).startswith(start)


def test_checksums_given_or_absent() -> None:
    with_checksum = virtual_refs(
        _refs(coord=[[0], [1]], checksum=["e1", None]), ndim=1, grid=None, where="W"
    )
    assert with_checksum.column("checksum").to_pylist() == ["e1", None]
    without = virtual_refs(_refs(coord=[[0], [1]]), ndim=1, grid=None, where="W")
    assert without.column("checksum").to_pylist() == [None, None]
    assert without.column("kind").to_pylist() == [ChunkKind.VIRTUAL] * 2


# ---- users' coordinates: integers only, in every form ------------------------------------------


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"coord": [[0.5, 1], [1, 2]]}, "W: chunk coordinates must be integers, got float64"),
        ({"coord": [[0, 1], [1, None]]}, "W: chunk coordinates must be integers, got object"),
        ({"coord": [["0", "1"], ["1", "2"]]}, "W: chunk coordinates must be integers, got <U1"),
        ({"coord": pa.array([[0, 1], [1, None]])},
         "W: chunk coordinates must be integers, got float64"),  # a null inside a list
        ({"coord": pa.array([[0, 1], None])}, "W: 'coord' lists must all have 2 entries"),
        ({"coord": pa.array([[0, 1, 2], [3]])}, "W: 'coord' lists must all have 2 entries"),
        ({"c0": [0, 1], "c1": [True, False]}, "W: chunk coordinates must be integers, got bool"),
        ({"c0": pa.chunked_array([[0, None]]), "c1": [1, 2]},
         "W: chunk coordinates must be integers, got float64"),
        ({"c0": [0, 1], "c1": [1]},
         "W: coordinate columns must be 1-dimensional and equally long, got c0 (2,), c1 (1,)"),
        ({"c0": [[0], [1]], "c1": [1, 2]},
         "W: coordinate columns must be 1-dimensional and equally long, got c0 (2, 1), c1 (2,)"),
    ],
    ids=["fraction", "none", "text", "null-value", "null-list", "ragged-arrow", "bool",
         "null-column", "unequal-columns", "2d-column"],
)  # fmt: skip
def test_coordinates_that_are_not_integers_are_refused(
    columns: dict[str, object], message: str
) -> None:
    """numpy would have truncated 0.5 to 0 (a ref in another chunk), wrapped NaN to -2**63,
    parsed text, or raised a bare TypeError/ValueError."""
    with pytest.raises(InvalidInputError) as caught:
        virtual_refs(_refs(**columns), ndim=2, grid=None, where="W")
    assert str(caught.value) == message


def test_a_huge_coordinate_is_named_exactly() -> None:
    huge = 2**53 + 1  # not a float64: rounded to 2**53 if it went through one
    with pytest.raises(InvalidInputError) as caught:
        virtual_refs(_refs(coord=[[0, 0], [0, huge]]), ndim=2, grid=None, where="W")
    assert str(caught.value).startswith(f"W: ref 1 has chunk coordinate (0, {huge}); manifests")


def test_ragged_nested_lists_are_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"^W: chunk coordinates are ragged: "):
        virtual_refs(_refs(coord=[[0, 1], [2]]), ndim=2, grid=None, where="W")


def test_integer_coordinates_of_any_width_and_no_refs_at_all() -> None:
    expected = [(0, 1, "s3://b/a.nc"), (1, 2, "s3://b/b.nc")]
    for coord in (
        np.asarray([[0, 1], [1, 2]], dtype=np.uint8),
        pa.array([[0, 1], [1, 2]], type=pa.list_(pa.int16(), 2)),  # fixed-size lists
        pa.array([[9, 9], [0, 1], [1, 2]]).slice(1),  # a slice: offsets into the values
    ):
        table = virtual_refs(_refs(coord=coord), ndim=2, grid=None, where="W")
        assert [(r["c0"], r["c1"], r["location"]) for r in table.to_pylist()] == expected
    none: dict[str, object] = {"location": [], "offset": [], "length": []}
    forms: list[dict[str, object]] = [
        {"c0": [], "c1": []},
        {"coord": pa.array([], pa.list_(pa.int64()))},
    ]
    for coords in forms:
        empty = virtual_refs(none | coords, ndim=2, grid=None, where="W")
        assert empty.num_rows == 0 and empty.column_names[:2] == ["c0", "c1"]


def test_scalar_refs_without_offsets_or_with_a_bad_row_are_named() -> None:
    with pytest.raises(InvalidInputError, match=r"^W: refs need 'location' .*'offset'"):
        virtual_refs({"location": ["a"], "length": [4]}, ndim=0, grid=None, where="W")
    with pytest.raises(InvalidInputError) as caught:
        virtual_refs(
            {"location": [None], "offset": [0], "length": [4]}, ndim=0, grid=None, where="W"
        )
    assert str(caught.value) == "W: ref 0 (coord ()) has no location"
    table = pa.table({"location": ["a", "b"], "offset": [0, 4], "length": [4, 4]})
    assert virtual_refs(table, ndim=0, grid=None, where="W").num_rows == 1  # the last one


def test_arrow_columns_of_any_integer_or_string_type() -> None:
    """A table as pyarrow builds it from Python ints (int64), or read back from Parquet
    (dictionary-encoded strings), used to be refused: ``pa.array`` does not cast Arrow input."""
    table = pa.table(
        {
            "c0": pa.array([1, 0], pa.int64()),
            "location": pa.array(["s3://b/b.nc", "s3://b/a.nc"]).dictionary_encode(),
            "offset": pa.chunked_array([[8], [0]], pa.int64()),
            "length": pa.array([8, 8], pa.uint16()),
            "checksum": pa.array(["e2", None], pa.large_string()),
        }
    )
    refs = virtual_refs(table, ndim=1, grid=None, where="W")
    assert refs.select(["c0", "location", "offset", "length", "checksum"]).to_pylist() == [
        {"c0": 0, "location": "s3://b/a.nc", "offset": 0, "length": 8, "checksum": None},
        {"c0": 1, "location": "s3://b/b.nc", "offset": 8, "length": 8, "checksum": "e2"},
    ]
    nulls = table.set_column(4, "checksum", pa.nulls(2))
    assert virtual_refs(nulls, ndim=1, grid=None, where="W").column("checksum").null_count == 2


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("offset", pa.array([-1, 8]), "W: refs need 'location' (str), 'offset' and 'length' "),
        ("length", pa.array(["8", "8"]), "W: refs need 'location' (str), 'offset' and 'length' "
         "(non-negative ints): 'length' is a column of string, not uint64"),
        ("location", pa.array([1, 2]), "W: refs need 'location' (str), 'offset' and 'length' "
         "(non-negative ints): 'location' is a column of int64, not string"),
        ("checksum", pa.array([1, 2]),
         "W: refs' 'checksum' must be strings: 'checksum' is a column of int64, not string"),
    ],
    ids=["negative-offset", "text-length", "int-location", "int-checksum"],
)  # fmt: skip
def test_arrow_columns_of_another_kind_are_refused(
    column: str, values: pa.Array, message: str
) -> None:
    table = pa.table(_refs(c0=[0, 1], checksum=["a", "b"]))
    table = table.set_column(table.column_names.index(column), column, values)
    with pytest.raises(InvalidInputError) as caught:
        virtual_refs(table, ndim=1, grid=None, where="W")
    assert str(caught.value).startswith(message)


# ---- the grid arithmetic, against Python's ------------------------------------------------------


def _row_major(coord: tuple[int, ...], extent: tuple[int, ...]) -> int:
    return sum(c * math.prod(extent[i + 1 :]) for i, c in enumerate(coord))


def test_extents_and_linear_indices_against_python() -> None:
    coords = np.asarray([[0, 2, 1], [3, 0, 0], [1, 1, 4]], dtype=np.int64)
    assert extent_of(coords, 3) == (4, 3, 5)
    assert extent_of(np.zeros((0, 2), dtype=np.int64), 2) == (0, 0)  # no coordinates: no grid
    for extent in ((4, 3, 5), (7, 9, 6)):
        index = linear_index(coords, extent)
        assert index.dtype == np.int64
        assert index.tolist() == [_row_major(tuple(c), extent) for c in coords.tolist()]
    scalar = linear_index(np.zeros((3, 0), dtype=np.int64), ())
    assert scalar.dtype == np.int64 and scalar.tolist() == [0, 0, 0]


def test_grids_of_two_to_the_62_cells_or_more_are_refused() -> None:
    origin = np.zeros((1, 2), dtype=np.int64)
    assert linear_index(origin, (2**31, 2**31 - 1)).tolist() == [0]  # just under 2**62
    for extent in ((2**31, 2**31), (2**32, 2**32)):  # 2**62; 2**64 overflows int64
        with pytest.raises(InvalidInputError) as caught:
            linear_index(origin, extent)
        assert str(caught.value) == f"chunk grid {extent} is too large to index"


@pytest.mark.parametrize("coord", [[-1, 0], [0, -1], [3, 0], [0, 3], [-1, 3]])
def test_coordinates_outside_the_grid_are_refused(coord: list[int]) -> None:
    inside = [[0, 0], [2, 2]]
    with pytest.raises(InvalidInputError) as caught:
        linear_index(np.asarray([*inside, coord], dtype=np.int64), (3, 3))
    assert str(caught.value) == "chunk coordinates outside the grid (3, 3)"


# ---- no copies when there is nothing to do ------------------------------------------------------


def test_sorted_unique_tables_and_empty_merges_are_returned_as_they_are() -> None:
    table, _ = _build({(0, 1): ("virtual", None), (1, 0): ("virtual", "etag-a")})
    assert keep_last(table, 2) is table
    unsorted = concat_refs([table.slice(1), table.slice(0, 1)])
    assert keep_last(unsorted, 2).to_pylist() == table.to_pylist()
    assert apply_changes(table, empty_refs(2), 2) is table
    assert apply_changes(empty_refs(2), table, 2) is table
    tombstone = native_refs(2, [(0, 1)], [ChunkKind.DELETED], [None], [0], [None])
    changes = concat_refs([tombstone, table.slice(1)])
    assert apply_changes(empty_refs(2), changes, 2).to_pylist() == table.slice(1).to_pylist()


# ---- lookups: the edge of the extent, and the first lookup of a fresh index -----------------------


def test_lookup_at_the_extent_in_a_leading_dimension_finds_nothing() -> None:
    # extent (2, 1): (0, 1) would be key 1, which is (1, 0)'s
    table, model = _build({(0, 0): ("virtual", "etag-b"), (1, 0): ("virtual", None)})
    indexed = IndexedRefs.build(table, 2)
    for _ in range(3):  # the first lookup reads its row alone, later ones use numpy columns
        assert [indexed.lookup(c) for c in [(0, 1), (1, 0), (2, 0)]] == [None, model[(1, 0)], None]
    # inside the extent (2, 2) but past the last key
    past, past_model = _build({(0, 1): ("virtual", None), (1, 0): ("virtual", None)})
    indexed = IndexedRefs.build(past, 2)
    for _ in range(3):
        assert [indexed.lookup(c) for c in [(1, 1), (1, 0)]] == [None, past_model[(1, 0)]]


def test_one_lookup_reads_its_row_and_a_second_converts_the_columns_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table, model = _build({(r, c): ("virtual", None) for r in range(3) for c in range(2)})
    conversions: list[int] = []
    real = tables._Columns.of

    def of(cls: type, t: pa.Table) -> object:
        conversions.append(t.num_rows)
        return real(t)

    monkeypatch.setattr(tables._Columns, "of", classmethod(of))
    indexed = IndexedRefs.build(table, 2)
    assert indexed.lookup((1, 1)) == model[(1, 1)]
    assert conversions == []
    for coord in [(0, 0), (2, 1), (1, 0), (1, 1)]:
        assert indexed.lookup(coord) == model[coord]
    assert conversions == [6]


def test_row_ref_reads_each_row() -> None:
    table, model = _build(
        {(0, 0): ("virtual", "etag-a"), (0, 1): ("inline", b"ab"), (2, 1): ("virtual", None)}
    )
    by_row = [row_ref(table, i) for i in range(table.num_rows)]
    assert by_row == [model[c] for c in sorted(model)]
