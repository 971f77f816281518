"""Building a snapshot from a change set, checked where a mutation run (mutmut) found gaps.

``rewrite_manifests`` is compared with a dict model: the refs of the new manifest list, read back
from storage, are the base's refs with the changes applied (tombstones removing), each manifest's
``rows``/``first``/``last``/``extent`` describe exactly the file it names, the manifests stay
sorted and disjoint, no file holds more than ``split_rows`` refs, and a manifest whose coordinate
range ``[first_i, first_{i+1})`` received no change keeps its id (routing computed here in plain
Python with tuple comparison, not with the linear index the code uses). The base manifests are
written by hand, not by the code under test. ``summarize`` and ``build_snapshot`` are checked on
hand-made change sets against the transaction log and the nodes each case must produce.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
import zarr
from hypothesis import given
from hypothesis import strategies as st

import icechunk_virtual as iv
from icechunk_virtual.chunk_refs.tables import IndexedRefs, keep_last, native_refs
from icechunk_virtual.errors import InvalidInputError
from icechunk_virtual.format.ids import ManifestId, SnapshotId
from icechunk_virtual.format.manifest_file import (
    ChunkKind,
    manifest_key,
    read_manifest,
    write_manifest,
)
from icechunk_virtual.format.snapshot import (
    ManifestRef,
    NodeKind,
    NodeSnapshot,
    Snapshot,
    SnapshotInfo,
)
from icechunk_virtual.repository.changeset import ChangeSet
from icechunk_virtual.repository.commit import (
    build_snapshot,
    node_kind,
    rewrite_manifests,
    summarize,
)
from icechunk_virtual.storage import MemoryStorage

NDIM = 2
Coord = tuple[int, int]
coords = st.tuples(st.integers(0, 6), st.integers(0, 6))


def _table(refs: dict[Coord, int | None]) -> pa.Table:
    """Sorted chunk refs: a native ref of that length per coordinate, ``None`` a tombstone."""
    items = sorted(refs.items())
    return keep_last(
        native_refs(
            NDIM,
            [c for c, _ in items],
            [ChunkKind.DELETED if n is None else ChunkKind.NATIVE for _, n in items],
            [None if n is None else f"chunk-{c[0]}-{c[1]}" for c, n in items],
            [0 if n is None else n for _, n in items],
            [None] * len(items),
        ),
        NDIM,
    )


async def _write_by_hand(
    storage: MemoryStorage, refs: dict[Coord, int], rows: int
) -> list[ManifestRef]:
    ordered = sorted(refs)
    manifests = []
    for start in range(0, len(ordered), rows):
        piece = ordered[start : start + rows]
        manifest_id = ManifestId.generate()
        await storage.put(
            manifest_key(manifest_id), write_manifest(_table({c: refs[c] for c in piece}))
        )
        extent = tuple(max(c[i] for c in piece) + 1 for i in range(NDIM))
        manifests.append(ManifestRef(manifest_id, len(piece), piece[0], piece[-1], extent))
    return manifests


async def _read_back(storage: MemoryStorage, manifest: ManifestRef) -> list[dict[str, Any]]:
    data = await storage.get(manifest_key(manifest.id))
    return read_manifest(data, ndim=NDIM, where="test").to_pylist()  # type: ignore[no-any-return]


def _routed(old: list[ManifestRef], changed: list[Coord]) -> set[int]:
    """The manifests that receive a change: the last whose first coordinate is <= it (else 0)."""
    touched = set()
    for coord in changed:
        slots = [i for i, m in enumerate(old) if m.first <= coord]
        touched.add(slots[-1] if slots else 0)
    return touched


@given(
    base=st.dictionaries(coords, st.integers(1, 99), max_size=25),
    changes=st.dictionaries(coords, st.none() | st.integers(100, 199), max_size=12),
    base_rows=st.integers(1, 6),
    split_rows=st.integers(1, 6),
)
def test_rewrite_manifests_matches_a_dict_model(
    base: dict[Coord, int],
    changes: dict[Coord, int | None],
    base_rows: int,
    split_rows: int,
) -> None:
    asyncio.run(_check_rewrite(base, changes, base_rows, split_rows))


async def _check_rewrite(
    base: dict[Coord, int], changes: dict[Coord, int | None], base_rows: int, split_rows: int
) -> None:
    storage = MemoryStorage(uuid.uuid4().hex)
    old = await _write_by_hand(storage, base, base_rows)

    async def load(manifest: ManifestRef, ndim: int) -> IndexedRefs:
        data = await storage.get(manifest_key(manifest.id))
        return IndexedRefs.build(read_manifest(data, ndim=ndim, where="test"), ndim)

    result = await rewrite_manifests(
        old, NDIM, _table(changes), storage=storage, split_rows=split_rows, load=load
    )
    model = dict(base)
    for coord, length in changes.items():
        if length is None:
            model.pop(coord, None)
        else:
            model[coord] = length
    found: dict[Coord, int] = {}
    for manifest in result:
        rows = await _read_back(storage, manifest)
        got = [(r["c0"], r["c1"]) for r in rows]
        assert got == sorted(got) and manifest.rows == len(rows) >= 1
        assert (manifest.first, manifest.last) == (got[0], got[-1])
        assert manifest.extent == tuple(max(c[i] for c in got) + 1 for i in range(NDIM))
        if manifest not in old:
            assert manifest.rows <= split_rows
        for r in rows:
            assert r["kind"] == ChunkKind.NATIVE and r["location"] == f"chunk-{r['c0']}-{r['c1']}"
            found[(r["c0"], r["c1"])] = r["length"]
    assert sum(m.rows for m in result) == len(found) == len(model)
    assert found == model
    assert all(a.last < b.first for a, b in itertools.pairwise(result))
    if not changes:
        assert result == tuple(old)
    elif old:
        touched = _routed(old, list(changes))
        kept = [m for i, m in enumerate(old) if i not in touched]
        assert [m for m in result if m in old] == kept


async def _rewrite_into(
    old_refs: dict[Coord, int], changes: dict[Coord, int | None]
) -> tuple[list[ManifestRef], tuple[ManifestRef, ...]]:
    storage = MemoryStorage(uuid.uuid4().hex)
    old = await _write_by_hand(storage, old_refs, 2)

    async def load(manifest: ManifestRef, ndim: int) -> IndexedRefs:
        data = await storage.get(manifest_key(manifest.id))
        return IndexedRefs.build(read_manifest(data, ndim=ndim, where="test"), ndim)

    return old, await rewrite_manifests(
        old, NDIM, _table(changes), storage=storage, split_rows=2, load=load
    )


async def test_a_change_between_manifests_goes_to_the_earlier_one() -> None:
    """(1, 5) lies after the first manifest's last ref and before the second's first: it belongs
    to the first manifest's range, and the second keeps its id."""
    old, result = await _rewrite_into({(0, 0): 1, (1, 0): 1, (2, 0): 1, (3, 0): 1}, {(1, 5): 7})
    assert result[-1] == old[1] and result[0] != old[0]
    assert [m.first for m in result] == [(0, 0), (1, 5), (2, 0)]


async def test_a_change_at_a_manifests_first_coordinate_goes_to_that_manifest() -> None:
    old, result = await _rewrite_into({(0, 0): 1, (1, 0): 1, (2, 0): 1, (3, 0): 1}, {(2, 0): 7})
    assert result[0] == old[0] and result[1] != old[1]
    assert [m.first for m in result] == [(0, 0), (2, 0)]


async def test_a_change_before_the_first_manifest_goes_to_it() -> None:
    old, result = await _rewrite_into({(2, 0): 1, (3, 0): 1, (4, 0): 1, (5, 0): 1}, {(0, 3): 7})
    assert result[-1] == old[1] and result[0] != old[0]


# ---- summarize and build_snapshot ----------------------------------------------------------------

_GROUP = {"zarr_format": 3, "node_type": "group"}


def _array(attrs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"zarr_format": 3, "node_type": "array", "attributes": attrs or {}}


def _base() -> Snapshot:
    manifest = ManifestRef(ManifestId.generate(), 1, (0,), (0,), (1,))
    nodes = {
        "/": NodeSnapshot("/", NodeKind.GROUP, _GROUP),
        "/same": NodeSnapshot("/same", NodeKind.ARRAY, _array(), (manifest,)),
        "/meta": NodeSnapshot("/meta", NodeKind.ARRAY, _array(), (manifest,)),
        "/replaced": NodeSnapshot("/replaced", NodeKind.ARRAY, _array(), (manifest,)),
        "/gone": NodeSnapshot("/gone", NodeKind.ARRAY, _array(), (manifest,)),
    }
    info = SnapshotInfo(SnapshotId.generate(), None, datetime.now(UTC), "base")
    return Snapshot(info, nodes)


def _changes() -> ChangeSet:
    changes = ChangeSet()
    changes.set_node("/same", _array())  # rewritten unchanged: no change at all
    changes.set_node("/meta", _array({"x": 1}))
    changes.delete_subtree("/replaced", iter(["/replaced"]))
    changes.set_node("/replaced", _array())
    changes.delete_subtree("/gone", iter(["/gone"]))
    changes.delete_subtree("/never", iter([]))
    changes.set_node("/new", _array(), text='{"new": 1}')
    changes.set_node("/g", _GROUP)
    changes.array("/bulk", 1).manifests = ()  # first: an array without a node is skipped,
    changes.array("/g", 1).add_chunk((0,), ChunkKind.NATIVE, "c", 1)  # so is a group,
    changes.array("/new", 1).add_chunk((3,), ChunkKind.INLINE, inline=b"x")  # not the rest
    return changes


def test_summarize_names_new_deleted_and_updated_nodes() -> None:
    log = summarize(_changes(), _base())
    assert log.new_nodes == {"/new", "/g", "/replaced"}
    assert log.updated_metadata == {"/meta", "/replaced"}
    assert log.deleted_nodes == {"/gone"}
    assert set(log.chunks) == {"/new", "/bulk", "/g"}
    assert log.chunks["/new"].tolist() == [[3]] and log.chunks["/bulk"].shape == (0, 1)
    assert log.bulk == {"/bulk"}


async def test_build_snapshot_keeps_replaces_and_rewrites_manifests() -> None:
    storage = MemoryStorage(uuid.uuid4().hex)
    base = _base()

    async def load(manifest: ManifestRef, ndim: int) -> IndexedRefs:
        raise AssertionError("no base manifest receives a change here")

    snapshot_id = SnapshotId.generate()
    snapshot, log = await build_snapshot(
        snapshot_id=snapshot_id,
        base=base,
        changes=_changes(),
        message="m",
        metadata={"k": "v"},
        storage=storage,
        split_rows=10,
        load_manifest=load,
    )
    assert log.to_bytes() == summarize(_changes(), base).to_bytes()
    info = snapshot.info
    assert (info.id, info.parent_id, info.message, dict(info.metadata)) == (
        snapshot_id,
        base.id,
        "m",
        {"k": "v"},
    )
    nodes = snapshot.nodes
    assert set(nodes) == {"/", "/same", "/meta", "/replaced", "/new", "/g"}
    assert nodes["/same"].manifests == nodes["/meta"].manifests == base.nodes["/meta"].manifests
    assert nodes["/meta"].zarr_json == _array({"x": 1})
    assert nodes["/replaced"].manifests == ()  # deleted and created again: its chunks are gone
    assert (nodes["/g"].kind, nodes["/g"].manifests) == (NodeKind.GROUP, ())
    [manifest] = nodes["/new"].manifests
    assert (manifest.rows, manifest.first, manifest.last, manifest.extent) == (1, (3,), (3,), (4,))
    assert nodes["/new"].text == '{"new": 1}' and nodes["/new"].kind is NodeKind.ARRAY
    [row] = await _read_back_1d(storage, manifest)
    assert (row["kind"], row["inline"]) == (ChunkKind.INLINE, b"x")


async def _read_back_1d(storage: MemoryStorage, manifest: ManifestRef) -> list[dict[str, Any]]:
    data = await storage.get(manifest_key(manifest.id))
    return read_manifest(data, ndim=1, where="test").to_pylist()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("doc", "found"),
    [
        ({"zarr_format": 2, "node_type": "array"}, "zarr_format=2, node_type='array'"),
        ({"zarr_format": 3, "node_type": "table"}, "zarr_format=3, node_type='table'"),
        ({"node_type": "group"}, "zarr_format=None, node_type='group'"),
    ],
)
def test_node_kind_refuses_other_metadata_naming_what_it_found(
    doc: dict[str, Any], found: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        node_kind("/a", doc)
    assert str(caught.value) == f"'/a/zarr.json' is not Zarr v3 group or array metadata ({found})"


def test_node_kind_reads_the_declared_type() -> None:
    assert node_kind("/a", _array()) is NodeKind.ARRAY
    assert node_kind("/", _GROUP) is NodeKind.GROUP


def test_a_scalar_array_is_rewritten_in_a_later_commit() -> None:
    """A 0-d array has one chunk at coordinate (): its manifest's ``first`` is empty, and routing
    a change to it must not reshape an empty array with ``-1`` (ValueError before the fix)."""
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    for value in (1.5, 2.5, 3.5):
        session = repo.writable_session()
        if value == 1.5:
            zarr.create_array(session.store, name="s", shape=(), dtype="f8", fill_value=0)
        zarr.open_array(session.store, path="s")[()] = value
        session.commit(f"s = {value}")
        assert zarr.open_array(repo.readonly_session().store, path="s", mode="r")[()] == value
