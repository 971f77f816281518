"""Chunk-ref lookups against a dict model, and users' refs, where a mutation run found gaps.

``IndexedRefs.lookup`` and ``lookup_many`` must give, for any coordinate, exactly the ref the
model holds there (kind, location, offset, length, inline bytes, checksum), and ``None`` for
coordinates the table lacks, lies outside its extent (negative, at or past it) or of the wrong
length; an empty table finds nothing. The model is a dict built here from the same inputs.
``virtual_refs`` takes coordinates in each form it documents, and refuses malformed refs with an
``InvalidInputError`` whose message names the column and the problem.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from icechunk_virtual.chunk_refs.tables import (
    ChunkRef,
    IndexedRefs,
    concat_refs,
    empty_refs,
    keep_last,
    native_refs,
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
    expected = [model.get(c) for c in asked]  # type: ignore[call-overload]
    asked_2d = [c for c in asked if len(c) == 2]
    assert IndexedRefs.build(table, 2).lookup_many(asked_2d) == [model.get(c) for c in asked_2d]  # type: ignore[call-overload]
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
)
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
