"""Chunk-ref tables: Parquet round trips, merging against a dict model, splitting, lazy loading."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pytest
import zarr
from hypothesis import given
from hypothesis import strategies as st

import icechunk_virtual as iv
from icechunk_virtual.chunk_refs.tables import (
    IndexedRefs,
    apply_changes,
    coords_of,
    empty_refs,
    native_refs,
    split,
    virtual_refs,
)
from icechunk_virtual.errors import FormatError, InvalidInputError
from icechunk_virtual.format.manifest_file import ChunkKind, read_manifest, write_manifest
from icechunk_virtual.storage import MemoryStorage

coords_2d = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=0, max_size=60, unique=True
)


def _refs_from(coords: list[tuple[int, int]], tag: str) -> pa.Table:
    n = len(coords)
    return virtual_refs(
        {
            "coord": np.asarray(coords, dtype=np.int64).reshape(n, 2),
            "location": [f"s3://b/{tag}{c[0] % 3}.nc" for c in coords],
            "offset": [c[0] * 1000 + c[1] for c in coords],
            "length": [c[1] + 1 for c in coords],
            "checksum": [f"etag-{c[1] % 2}" for c in coords],
        },
        ndim=2,
        grid=None,
        where="test",
    )


def _as_dict(table: pa.Table) -> dict[tuple[int, ...], tuple[object, ...]]:
    rows = table.to_pylist()
    return {
        (r["c0"], r["c1"]): (r["kind"], r["location"], r["offset"], r["length"], r["checksum"])
        for r in rows
    }


@given(coords_2d)
def test_manifest_parquet_round_trip(coords: list[tuple[int, int]]) -> None:
    table = _refs_from(coords, "a")
    back = read_manifest(write_manifest(table), ndim=2, where="test")
    assert _as_dict(back) == _as_dict(table)
    assert back.schema == table.schema


@given(coords_2d, coords_2d, st.data())
def test_apply_changes_matches_a_dict_model(
    base_coords: list[tuple[int, int]], new_coords: list[tuple[int, int]], data: st.DataObject
) -> None:
    base = _refs_from(base_coords, "base")
    changes = _refs_from(new_coords, "new")
    deleted = data.draw(st.lists(st.sampled_from(base_coords), unique=True)) if base_coords else []
    deleted = [c for c in deleted if c not in new_coords]
    tombstones = native_refs(
        2,
        deleted,
        [ChunkKind.DELETED] * len(deleted),
        [None] * len(deleted),
        [0] * len(deleted),
        [None] * len(deleted),
    )
    from icechunk_virtual.chunk_refs.tables import concat_refs, keep_last

    delta = keep_last(concat_refs([changes, tombstones]), 2)
    merged = apply_changes(base, delta, 2)
    model = _as_dict(base)
    for c in deleted:
        model.pop(c, None)
    model.update(_as_dict(changes))
    assert _as_dict(merged) == model
    coords = [tuple(c) for c in coords_of(merged, 2).tolist()]
    assert coords == sorted(coords)
    indexed = IndexedRefs.build(merged, 2)
    for c, expected in model.items():
        ref = indexed.lookup(c)
        assert ref is not None and (ref.location, ref.offset) == (expected[1], expected[2])
    assert indexed.lookup((41, 41)) is None


def test_keep_last_keeps_the_last_write_per_coordinate() -> None:
    first = _refs_from([(0, 0), (1, 1)], "first")
    second = _refs_from([(1, 1)], "second")
    from icechunk_virtual.chunk_refs.tables import concat_refs, keep_last

    merged = keep_last(concat_refs([first, second]), 2)
    assert _as_dict(merged)[(1, 1)][1] == "s3://b/second1.nc"
    assert _as_dict(merged)[(0, 0)][1] == "s3://b/first0.nc"


def test_split_keeps_coordinate_ranges_disjoint() -> None:
    table = _refs_from([(i, j) for i in range(10) for j in range(10)], "x")
    pieces = split(table, 30)
    assert [p.num_rows for p in pieces] == [30, 30, 30, 10]
    lasts = [tuple(coords_of(p, 2)[-1]) for p in pieces]
    firsts = [tuple(coords_of(p, 2)[0]) for p in pieces]
    assert all(lasts[i] < firsts[i + 1] for i in range(3))


def test_bad_refs_name_the_first_bad_row() -> None:
    good = {
        "coord": [[0, 0], [0, 1]],
        "location": ["s3://b/f.nc"] * 2,
        "offset": [0, 10],
        "length": [10, 10],
    }
    virtual_refs(good, ndim=2, grid=(1, 2), where="array '/x'")
    with pytest.raises(
        InvalidInputError, match=r"array ./x.: ref 1 \(coord \(0, 1\)\) has length 0"
    ):
        virtual_refs({**good, "length": [10, 0]}, ndim=2, grid=None, where="array '/x'")
    with pytest.raises(InvalidInputError, match=r"ref 1 has chunk coordinate \(0, 1\) outside"):
        virtual_refs(good, ndim=2, grid=(1, 1), where="array '/x'")
    with pytest.raises(InvalidInputError, match="has no location"):
        virtual_refs({**good, "location": ["s3://b/f.nc", None]}, ndim=2, grid=None, where="x")
    with pytest.raises(InvalidInputError, match=r"shape \(n, 3\)"):
        virtual_refs(good, ndim=3, grid=None, where="x")


def test_corrupt_manifest_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="manifests/bad"):
        read_manifest(b"not parquet", ndim=1, where="manifests/bad")
    with pytest.raises(FormatError, match="schema"):
        read_manifest(write_manifest(empty_refs(2)), ndim=1, where="manifests/bad")


def test_reading_one_chunk_of_a_million_loads_one_small_manifest() -> None:
    config = iv.RepositoryConfig(manifest_split_rows=50_000, virtual_sources=("memory://",))
    name = f"lazy-manifests-{uuid.uuid4().hex}"  # a fresh repository each run
    url = f"memory://{name}"
    repo = iv.Repository.create(url, config=config)
    session = repo.writable_session()
    zarr.open_group(session.store, mode="a").create_array(
        "big", shape=(1000, 1000), chunks=(1, 1), dtype="u1", compressors=None, fill_value=0
    )
    n = 1_000_000
    i = np.arange(n)
    session.set_virtual_refs(
        "/big",
        {
            "coord": np.column_stack([i // 1000, i % 1000]),
            "location": pa.array(["memory://src"] * n).dictionary_encode(),
            "offset": i,
            "length": np.ones(n, dtype=np.int64),
        },
    )
    session.commit("a million refs")
    storage = MemoryStorage.named(name)
    manifests = [k for k in storage._objects if k.startswith("manifests/")]
    assert len(manifests) == 1_000_000 // 50_000

    fresh = iv.Repository.open(url)
    reads: list[str] = []
    original = MemoryStorage.get

    async def counting_get(self: MemoryStorage, key: str) -> bytes:
        reads.append(key)
        return await original(self, key)

    MemoryStorage.get = counting_get  # type: ignore[method-assign]
    try:
        ref = fresh.readonly_session()._async
        from icechunk_virtual._sync import sync

        found = sync(ref.chunks.chunk_ref("/big", (777, 123)))
    finally:
        MemoryStorage.get = original  # type: ignore[method-assign]
    assert found is not None and found.offset == 777_123
    manifest_reads = [k for k in reads if k.startswith("manifests/")]
    assert len(manifest_reads) == 1
    assert len(storage._objects[manifest_reads[0]]) < 1_000_000


def test_point_lookups_decode_one_row_group_and_share_fetches() -> None:
    import asyncio

    import icechunk_virtual as iv
    from icechunk_virtual._sync import sync
    from icechunk_virtual.chunk_refs.cache import ManifestCache
    from icechunk_virtual.format.manifest_file import ROW_GROUP_ROWS

    rows = 3 * ROW_GROUP_ROWS + 17
    repo = iv.Repository.create(
        f"memory://{__import__('uuid').uuid4().hex}",
        config=iv.RepositoryConfig(virtual_sources=("s3://a/",), manifest_split_rows=10 * rows),
    )
    session = repo.writable_session()
    zarr.open_group(session.store, mode="a").create_array(
        "v", shape=(rows, 2), chunks=(1, 1), dtype="f4", compressors=None
    )
    i = np.arange(2 * rows)
    session.set_virtual_refs(
        "/v",
        {"c0": i // 2, "c1": i % 2, "location": ["s3://a/f"] * len(i), "offset": 10 * i,
         "length": np.full(len(i), 10)},
    )  # fmt: skip
    snapshot = sync(repo._async.load_snapshot(session.commit("refs")))
    [manifest] = snapshot.nodes["/v"].manifests
    storage = repo._async.storage
    gets: list[str] = []
    original_get = storage.get

    async def counting_get(key: str) -> bytes:
        gets.append(key)
        return await original_get(key)

    storage.get = counting_get  # type: ignore[method-assign]
    cache = ManifestCache(storage, max_rows=10**6)
    coords = [
        (r, c) for r in (0, ROW_GROUP_ROWS // 2 - 1, ROW_GROUP_ROWS // 2, rows - 1) for c in (0, 1)
    ]

    async def look_up_all() -> list[object]:
        parts = await asyncio.gather(*(cache.lookup_part(manifest, 2, c) for c in coords * 10))
        return [p.lookup(c) for p, c in zip(parts, coords * 10, strict=True)]

    found = sync(look_up_all())
    assert [r.offset for r in found] == [10 * (2 * r + c) for r, c in coords * 10]  # type: ignore[attr-defined]
    assert len(gets) == 1  # eighty lookups, one fetch
    part = cache.cached(manifest, (rows - 1, 1))
    assert part is not None and part.table.num_rows == (2 * rows) % ROW_GROUP_ROWS
    assert cache.cached(manifest, (rows // 2, 0)) is None  # that group was never decoded
