"""Concurrent sessions against a pure-Python model of what every commit and every read must do.

Up to three writable sessions and any number of read-only ones are open at once, opened at
arbitrary moments; they write overlapping and disjoint things — chunks of an array spread over
three manifests (a write to the first chunk of a later manifest included), a group's creation,
attributes and deletion, an array re-created with ``overwrite=True`` — and commit in any order,
while the branch may be reset under them and its old versions garbage-collected. The model says which commits must conflict (and
whether because of a reset), which must find their base collected (``SessionExpiredError``),
and what every open session and the branch must read.

The model's conflict rules, from the user's point of view: a commit must fail when a rival commit
since its base wrote one of the chunks it wrote; wrote a node's metadata it wrote, leaving it
different from what it would write; deleted a node it touched (or touched a node it deleted);
re-created an array it wrote chunks to (or wrote chunks to an array it re-created); or when the
branch was reset since. Anything else rebases, and the result is the session's changes applied
on the branch's tip.

Each of these made a run fail when it was applied once by hand (and none of them do now):

- the lost update: sessions A and B both create ``/g`` identically, B commits, C (opened after B)
  sets an attribute on ``/g`` and commits, A commits — A must conflict, else C's attribute is gone;
- routing a change to the previous manifest (``side="right"`` -> ``"left"`` in
  ``commit._route``'s search) loses a write to the first chunk of a later manifest;
- ``create_array(overwrite=True)`` in one session bringing the old chunks back;
- disabling the branch-reset check (the reason is checked, not a word of the message);
- an unstable sort in last-write-wins (``BulkRefsModel`` below: 20,000 refs set in two calls
  that overlap, the later call's refs must win).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import zarr
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import icechunk_virtual as iv
from icechunk_virtual._sync import sync
from icechunk_virtual.repository import branch_log

CHUNKS = 6  # array /a: 6 chunks of one value, manifests of 2 rows: [0, 1] [2, 3] [4, 5]
MAX_WRITERS = 3


@dataclass
class State:
    """What a reader sees: /g's attributes (None: no group) and /a's values."""

    g: dict[str, int] | None
    a: list[int]

    def copy(self) -> State:
        return State(None if self.g is None else dict(self.g), list(self.a))


@dataclass
class Touches:
    """What one commit (or one session so far) changed, relative to its base."""

    chunks: set[int] = field(default_factory=set)
    meta: dict[str, Any] = field(default_factory=dict)  # path -> metadata it leaves
    deleted: set[str] = field(default_factory=set)
    replaced: set[str] = field(default_factory=set)

    def empty(self) -> bool:
        return not (self.chunks or self.meta or self.deleted or self.replaced)


@dataclass
class Version:
    state: State
    touches: Touches
    snapshot: iv.SnapshotId
    parent: iv.SnapshotId | None
    """The snapshot it was committed on (a reset version: its target's)."""


@dataclass
class Open:
    session: iv.Session
    base: int  # index into the model's versions
    view: State
    touches: Touches


def _meta_after(state: State, path: str) -> Any:
    if path == "/g":
        return state.g
    return "array"  # /a's metadata is the same whether created or re-created


def _conflict(ours: Touches, theirs: Touches, after: State) -> str | None:
    """Why ``ours`` cannot be rebased on ``theirs`` (``after``: the state theirs left), or None."""
    if ours.chunks & theirs.chunks:
        return "chunks"
    if ("/a" in ours.replaced and theirs.chunks) or ("/a" in theirs.replaced and ours.chunks):
        return "replaced"
    for path, value in ours.meta.items():
        if path in theirs.meta and value != _meta_after(after, path):
            return "metadata"
    if ours.deleted & (set(theirs.meta) | theirs.deleted) or theirs.deleted & set(ours.meta):
        return "deleted"
    return None


def _as_committed(ours: Touches, tip: State) -> Touches:
    """What a landed commit changed relative to the tip it landed on (rivals compare with that):
    metadata it left as the tip had it, and deletions of what the tip no longer holds, are not
    changes of that commit (e.g. creating ``/g`` just as a rival did before it)."""
    meta = {p: v for p, v in ours.meta.items() if p in ours.replaced or v != _meta_after(tip, p)}
    deleted = {p for p in ours.deleted if p != "/g" or tip.g is not None}
    return Touches(set(ours.chunks), meta, deleted, set(ours.replaced))


def _apply(ours: Touches, view: State, tip: State) -> State:
    new = tip.copy()
    if "/g" in ours.meta or "/g" in ours.deleted:
        new.g = None if view.g is None else dict(view.g)
    if "/a" in ours.replaced:
        new.a = [0] * CHUNKS
    for i in ours.chunks:
        new.a[i] = view.a[i]
    return new


class SessionsModel(RuleBasedStateMachine):
    @initialize()
    def create(self) -> None:
        config = iv.RepositoryConfig(manifest_split_rows=2)
        self.repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}", config=config)
        session = self.repo.writable_session()
        _create_a(session)
        zarr.open_array(session.store, path="a")[:] = 1  # three manifests from the start
        first = session.commit("array")
        self.versions = [Version(State(None, [1] * CHUNKS), Touches(), first, None)]
        self.writers: list[Open] = []
        self.readers: list[tuple[iv.Session, State]] = []
        self.floor = 0  # the lowest branch version kept

    # ---- opening ------------------------------------------------------------------------------
    @precondition(lambda self: len(self.writers) < MAX_WRITERS)
    @rule()
    def open_writer(self) -> None:
        tip = len(self.versions) - 1
        session = self.repo.writable_session()
        self.writers.append(Open(session, tip, self.versions[tip].state.copy(), Touches()))

    @rule()
    def open_reader(self) -> None:
        self.readers.append((self.repo.readonly_session(), self.versions[-1].state.copy()))
        self.readers = self.readers[-3:]

    # ---- writes -------------------------------------------------------------------------------
    @precondition(lambda self: self.writers)
    @rule(data=st.data(), chunk=st.integers(0, CHUNKS - 1), value=st.integers(0, 3))
    def write_chunk(self, data: st.DataObject, chunk: int, value: int) -> None:
        w = data.draw(st.sampled_from(self.writers))
        zarr.open_array(w.session.store, path="a")[chunk] = value
        w.view.a[chunk] = value
        w.touches.chunks.add(chunk)

    @precondition(lambda self: self.writers)
    @rule(data=st.data())
    def create_group(self, data: st.DataObject) -> None:
        w = data.draw(st.sampled_from(self.writers))
        zarr.open_group(w.session.store, path="g", mode="a")  # nothing if it exists
        if w.view.g is None:
            w.view.g = {}
            w.touches.meta["/g"] = {}
            if "/g" in w.touches.deleted:  # deleted earlier in this session: created again
                w.touches.deleted.discard("/g")
                w.touches.replaced.add("/g")

    @precondition(lambda self: any(w.view.g is not None for w in self.writers))
    @rule(data=st.data(), value=st.integers(0, 2))
    def set_attribute(self, data: st.DataObject, value: int) -> None:
        w = data.draw(st.sampled_from([w for w in self.writers if w.view.g is not None]))
        attrs = {"v": value}
        if w.view.g == attrs:
            return
        group = zarr.open_group(w.session.store, path="g", mode="a")
        group.attrs.clear()
        group.attrs.update(attrs)
        w.view.g = attrs
        w.touches.meta["/g"] = dict(attrs)

    @precondition(lambda self: any(w.view.g is not None for w in self.writers))
    @rule(data=st.data())
    def delete_group(self, data: st.DataObject) -> None:
        w = data.draw(st.sampled_from([w for w in self.writers if w.view.g is not None]))
        del zarr.open_group(w.session.store, mode="a")["g"]
        base_has_it = self.versions[w.base].state.g is not None
        w.view.g = None
        w.touches.meta.pop("/g", None)
        w.touches.replaced.discard("/g")
        if base_has_it:
            w.touches.deleted.add("/g")

    @precondition(lambda self: self.writers)
    @rule(data=st.data())
    def recreate_array(self, data: st.DataObject) -> None:
        w = data.draw(st.sampled_from(self.writers))
        _create_a(w.session, overwrite=True)
        w.view.a = [0] * CHUNKS
        w.touches.replaced.add("/a")
        w.touches.chunks.clear()

    # ---- commits and resets -----------------------------------------------------------------
    @precondition(lambda self: self.writers)
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        w = data.draw(st.sampled_from(self.writers))
        self.writers.remove(w)
        if w.touches.empty():
            with pytest.raises(iv.NoChangesToCommitError):
                w.session.commit("nothing")
            return
        if w.base + 2 < self.floor:  # (model index i is branch version i + 1)
            with pytest.raises(iv.SessionExpiredError):
                w.session.commit("on a collected base")
            return
        expected = None
        current = self.versions[w.base].snapshot
        for version in self.versions[w.base + 1 :]:
            # a version not committed on what we stand on: the branch was reset (a reset to a
            # child of our base is a fast-forward, and rebases like that child's commit)
            if version.parent != current:
                expected = "reset"
                break
            expected = _conflict(w.touches, version.touches, version.state)
            if expected is not None:
                break
            current = version.snapshot
        if expected is not None:
            with pytest.raises(iv.ConflictError) as caught:
                w.session.commit("conflicting")
            resets = [c for c in caught.value.conflicts if c.kind.startswith("branch reset")]
            assert bool(resets) == (expected == "reset"), (expected, caught.value.conflicts)
            return
        snapshot = w.session.commit("commit")
        tip = self.versions[-1]
        state = _apply(w.touches, w.view, tip.state)
        touches = _as_committed(w.touches, tip.state)
        self.versions.append(Version(state, touches, snapshot, tip.snapshot))

    @rule(data=st.data())
    def reset(self, data: st.DataObject) -> None:
        target = self.versions[data.draw(st.integers(0, len(self.versions) - 1))]
        self.repo.reset_branch("main", target.snapshot)
        self.versions.append(target)

    @rule(data=st.data())
    def collect_branch_versions(self, data: st.DataObject) -> None:
        """GC's rule for branch versions, with the versions below a drawn one taken as older
        than the cutoff (the tip never is)."""
        storage = self.repo.async_repository.storage
        tip = len(self.versions)  # the branch's newest version number
        older = data.draw(st.integers(0, tip))
        then = datetime.now(UTC)
        modified = {v: then - timedelta(hours=1 if v < older else -1) for v in range(tip + 1)}
        sync(branch_log.collect_versions(storage, "main", modified, then))
        self.floor = max(self.floor, older)

    # ---- what everyone reads ----------------------------------------------------------------
    @invariant()
    def reads_match_the_model(self) -> None:
        if not hasattr(self, "repo"):
            return
        sessions = [(w.session, w.view) for w in self.writers] + self.readers
        sessions.append((self.repo.readonly_session(), self.versions[-1].state))
        for session, expected in sessions:
            assert _read(session) == expected


def _create_a(session: iv.Session, *, overwrite: bool = False) -> None:
    zarr.create_array(session.store, name="a", shape=(CHUNKS,), chunks=(1,), dtype="int32",
                      fill_value=0, overwrite=overwrite)  # fmt: skip


def _read(session: iv.Session) -> State:
    root = zarr.open_group(session.store, mode="r")
    values = root["a"][:].tolist()
    g = dict(root["g"].attrs) if "g" in root else None
    return State(g, values)


SessionsModel.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_sessions_model = SessionsModel.TestCase


def test_the_lost_update_conflicts(tmp_path: Any) -> None:
    """The scenario of the lost update, spelled out (the model finds it too)."""
    repo = iv.Repository.create(str(tmp_path / "repo"))
    a, b = repo.writable_session(), repo.writable_session()
    zarr.open_group(a.store, path="g", mode="a")
    zarr.open_group(b.store, path="g", mode="a")
    b.commit("b")
    c = repo.writable_session()
    zarr.open_group(c.store, path="g", mode="a").attrs["k"] = 1
    c.commit("c")
    with pytest.raises(iv.ConflictError) as caught:
        a.commit("a")
    assert [c.path for c in caught.value.conflicts] == ["/g"]
    group = zarr.open_group(repo.readonly_session().store, path="g", mode="r")
    assert dict(group.attrs) == {"k": 1}


# ---- large tables: last write wins across set_virtual_refs calls ------------------------------

ROWS = 20_000
SOURCE = "file:///model-source/"


class BulkRefsModel(RuleBasedStateMachine):
    """Three writers set 20,000-row ref tables on one array in overlapping calls; the model keeps
    per chunk the offset of the last write, and commits conflict when chunk sets overlap."""

    @initialize()
    def create(self) -> None:
        self.repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
        self.repo.authorize_virtual_source(SOURCE)
        session = self.repo.writable_session()
        zarr.create_array(session.store, name="v", shape=(ROWS,), chunks=(1,), dtype="uint8")
        session.commit("array")
        self.committed: list[tuple[dict[int, int], set[int]]] = [({}, set())]
        self.writers: list[tuple[iv.Session, int, dict[int, int], set[int]]] = []

    @precondition(lambda self: len(self.writers) < MAX_WRITERS)
    @rule()
    def open_writer(self) -> None:
        base = len(self.committed) - 1
        view = dict(self.committed[base][0])
        self.writers.append((self.repo.writable_session(), base, view, set()))

    @precondition(lambda self: self.writers)
    @rule(data=st.data(), seed=st.integers(0, 2**32 - 1), rows=st.sampled_from([1_000, ROWS]))
    def set_refs(self, data: st.DataObject, seed: int, rows: int) -> None:
        session, _, view, touched = data.draw(st.sampled_from(self.writers))
        rng = np.random.default_rng(seed)
        coords = rng.choice(ROWS, size=rows, replace=rows < ROWS)
        coords = np.concatenate([coords, coords[: rows // 10]])  # duplicates within the call too
        offsets = rng.integers(0, 2**40, size=len(coords))
        session.set_virtual_refs("/v", {
            "coord": coords.reshape(-1, 1),
            "location": pa.array([SOURCE + "f.bin"] * len(coords)).dictionary_encode(),
            "offset": offsets,
            "length": np.full(len(coords), 1),
        })  # fmt: skip
        for c, o in zip(coords.tolist(), offsets.tolist(), strict=True):
            view[c] = o  # later rows, and later calls, win
        touched.update(coords.tolist())

    @precondition(lambda self: self.writers)
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        writer = data.draw(st.sampled_from(self.writers))
        self.writers.remove(writer)
        session, base, view, touched = writer
        if not touched:
            return
        if any(touched & theirs for _, theirs in self.committed[base + 1 :]):
            with pytest.raises(iv.ConflictError):
                session.commit("conflicting")
            return
        session.commit("refs")
        tip = dict(self.committed[-1][0])
        tip.update({c: view[c] for c in touched})
        self.committed.append((tip, touched))

    @invariant()
    def refs_match_the_model(self) -> None:
        if not hasattr(self, "repo"):
            return
        views = [(s, v) for s, _, v, _ in self.writers]
        views.append((self.repo.readonly_session(), self.committed[-1][0]))
        for session, expected in views:
            _check_offsets(session, expected)


def _check_offsets(session: iv.Session, expected: dict[int, int]) -> None:
    rng = np.random.default_rng(len(expected))
    keys = sorted(expected)
    sample = keys if len(keys) <= 300 else [keys[i] for i in rng.choice(len(keys), 300)]
    lookup = session.async_session.chunks
    for coord in sample:
        ref = sync(lookup.chunk_ref("/v", (coord,)))
        assert ref is not None and ref.offset == expected[coord], coord


BulkRefsModel.TestCase.settings = settings(max_examples=8, stateful_step_count=10, deadline=None)
test_bulk_refs_model = BulkRefsModel.TestCase
