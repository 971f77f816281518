"""The source ledger: per group, every source an ``ingest`` recorded, with its checksum.

The ledger is repository data, versioned like any array: each group's ledger is two 1-D string
arrays, ``location`` and ``checksum``, in its own group of the reserved tree
:data:`LEDGER_ROOT` (``/.icechunk_virtual/ledger/_<group, URL-quoted>``; the store hides this
tree from listings, so zarr and xarray never show it). So it is covered by what covers any
array: an ingest changes only its group's ledger, and only the chunks of the rows it adds or
changes (4,096 sources a chunk); the transaction log records the change; two ingests into
different groups both land, two that change the same group's ledger conflict (and ``ingest``
retries on the new tip); expiry and GC keep the chunks a kept snapshot needs.

Repositories written before kept the whole ledger in every ingest commit's metadata (under
:data:`~icechunk_virtual.format.snapshot.LEDGER_KEY`); they are read as before, and the next
ingest writes every group's ledger into the tree. New ingest commits record only a marker there.

In memory a group's ledger is a :class:`Ledger`: its two columns as Arrow arrays, so a daily job
matches its list of 36,500 files against 36,500 rows in vectorised lookups, not Python loops.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import zarr
from zarr.errors import UnstableSpecificationWarning

from icechunk_virtual._sync import sync, sync_iter
from icechunk_virtual.errors import RefNotFoundError
from icechunk_virtual.format.snapshot import LEDGER_KEY
from icechunk_virtual.repository.nodes import RESERVED
from icechunk_virtual.zarr.store import IcechunkVirtualStore

if TYPE_CHECKING:
    from icechunk_virtual.repository import AsyncRepository, AsyncSession

__all__ = [
    "LEDGER_ROOT",
    "Ledger",
    "group_ledger",
    "ledger_metadata",
    "read_ledgers",
    "record_sources",
]

LEDGER_ROOT = f"{RESERVED}/ledger"
"""The reserved tree holding every group's ledger (hidden from the store's listings)."""

_ROWS_PER_CHUNK = 4096
_MARKER = {"ledger": "nodes"}
"""What an ingest commit records in its metadata now: the ledger is in the tree."""


@dataclass(frozen=True, eq=False)
class Ledger:
    """One group's sources, in row order: each one's location and checksum (``""``: none)."""

    group: str
    locations: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    checksums: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    stored: bool = False
    """Whether these rows are in the tree (a repository written before it: not yet)."""
    nodes: pa.Array | None = None
    """Each source's group, relative to the ledger's (``"/"``: that group itself; ``""``: not
    recorded), for groups of separate files; ``None`` where no file has one (``concat_dim``)."""

    @classmethod
    def from_dict(
        cls, group: str, sources: Mapping[str, str | None], *, stored: bool = False
    ) -> Ledger:
        return cls(group, pa.array(list(sources), pa.string()),
                   pa.array([c or "" for c in sources.values()], pa.string()), stored)  # fmt: skip

    def __len__(self) -> int:
        return len(self.locations)

    def rows(self, locations: pa.Array) -> pa.Array:
        """Each location's row, null for one not in the ledger (a hash lookup in Arrow)."""
        return pc.index_in(locations, value_set=self.locations)

    @cached_property
    def nodes_by_location(self) -> dict[str, str]:
        """Location -> the group its file was written to, where recorded."""
        if self.nodes is None:
            return {}
        pairs = zip(self.locations.to_pylist(), self.nodes.to_pylist(), strict=True)
        return {u: n for u, n in pairs if n}

    @cached_property
    def as_dict(self) -> dict[str, str | None]:
        """Location -> checksum, for the paths that touch every source anyway (a rebuild)."""
        sums = (c or None for c in self.checksums.to_pylist())
        return dict(zip(self.locations.to_pylist(), sums, strict=True))


def ledger_path(group: str) -> str:
    """Where ``group``'s ledger lives (one flat name per group, nested groups included)."""
    return f"{LEDGER_ROOT}/_{quote(group.strip('/'), safe='')}"


def read_ledgers(repo: AsyncRepository, branch: str) -> dict[str, dict[str, str | None]]:
    """Every group's ledger on ``branch``, as plain dicts (empty for a new branch)."""
    try:
        session = sync(repo.readonly_session(branch=branch))
    except RefNotFoundError:
        return {}
    if session.node(LEDGER_ROOT) is None:
        return {g: ledger.as_dict for g, ledger in _legacy(repo, session).items()}
    store = IcechunkVirtualStore(session)
    found = {}
    for path in session.node_paths():
        if path.startswith(LEDGER_ROOT + "/_") and path.count("/") == LEDGER_ROOT.count("/") + 1:
            ledger = _read_group(store, path)
            found[ledger.group] = ledger.as_dict
    return found


def group_ledger(
    repo: AsyncRepository, session: AsyncSession, group: str
) -> tuple[Ledger, list[Ledger]]:
    """``group``'s ledger as of ``session``'s snapshot, and the ledgers of a repository written
    before the tree, which the commit moves into it.

    An ingest plans on the session it commits: a commit by another writer meanwhile is then a
    conflict, never a plan made on an older tip.
    """
    if session.node(LEDGER_ROOT) is None:
        legacy = _legacy(repo, session)
        return legacy.pop(group, Ledger(group)), list(legacy.values())
    path = ledger_path(group)
    if session.node(path) is None:
        return Ledger(group), []
    return _read_group(IcechunkVirtualStore(session), path), []


def _legacy(repo: AsyncRepository, session: AsyncSession) -> dict[str, Ledger]:
    """The ledgers of the newest ingest commit that held them in its metadata."""
    for info in sync_iter(repo.ancestry(snapshot_id=session.snapshot_id)):
        record = info.metadata.get(LEDGER_KEY)
        if record is not None and record != _MARKER:  # written before the tree: all of it
            groups = record.get("groups", {"": record.get("sources", {})})
            return {g: Ledger.from_dict(g, sources) for g, sources in groups.items()}
    return {}


def _read_group(store: IcechunkVirtualStore, path: str) -> Ledger:
    node = zarr.open_group(store, path=path, mode="r")
    names = ["location", "checksum", *(["node"] if "node" in node else [])]
    arrays: list[Any] = [node[name] for name in names]
    columns = [pa.array(np.asarray(a[...]).astype(object), pa.string()) for a in arrays]
    return Ledger(str(node.attrs["group"]), columns[0], columns[1], stored=True,
                  nodes=columns[2] if len(columns) > 2 else None)  # fmt: skip


def record_sources(
    store: IcechunkVirtualStore,
    ledger: Ledger,
    sources: Mapping[str, str | None],
    nodes: Mapping[str, str] | None = None,
    migrate: Sequence[Ledger] = (),
) -> None:
    """Record ``sources`` (location -> checksum now) in ``ledger``'s group: rows of known
    locations get the new checksum, the others are appended; only their chunks are written.
    ``nodes``: the group each file went to (separate files). ``migrate``: ledgers of a
    repository written before the tree, written whole."""
    for other in migrate:
        _write(store, Ledger(other.group), other.as_dict, None)
    _write(store, ledger, sources, nodes)


def _write(
    store: IcechunkVirtualStore,
    ledger: Ledger,
    sources: Mapping[str, str | None],
    nodes: Mapping[str, str] | None,
) -> None:
    path = ledger_path(ledger.group)
    with warnings.catch_warnings():  # zarr flags its string data type as not yet in the v3 spec
        warnings.simplefilter("ignore", UnstableSpecificationWarning)
        if not ledger.stored:  # the tree starts here (a legacy ledger's rows are all appended)
            node = zarr.open_group(store, path=path, mode="a", attributes={"group": ledger.group})
            for name in ("location", "checksum"):
                _string_array(node, name, 0)
            sources = {**(ledger.as_dict if len(ledger) else {}), **sources}
            ledger = Ledger(ledger.group)
        node = zarr.open_group(store, path=path, mode="r+")
        rows = ledger.rows(pa.array(list(sources), pa.string())).to_pylist()
        sums: Any = node["checksum"]
        for checksum, row in zip(sources.values(), rows, strict=True):
            if row is not None and ledger.checksums[row].as_py() != (checksum or ""):
                sums[row] = checksum or ""
        new = [u for u, row in zip(sources, rows, strict=True) if row is None]
        if new:
            _append(node["location"], len(ledger), new)
            _append(sums, len(ledger), [sources[u] or "" for u in new])
        if nodes:
            _write_nodes(node, len(ledger), list(sources), rows, new, nodes)


def _write_nodes(
    group: Any,
    known: int,
    urls: list[str],
    rows: list[int | None],
    new: list[str],
    nodes: Mapping[str, str],
) -> None:
    """The ``node`` column: the given files' groups (made, for the rows before, as not known)."""
    column = group["node"] if "node" in group else _string_array(group, "node", known)
    for url, row in zip(urls, rows, strict=True):
        if row is not None and url in nodes:
            column[row] = nodes[url]
    if new:
        _append(column, known, [nodes.get(u, "") for u in new])


def _string_array(group: Any, name: str, length: int) -> Any:
    return group.create_array(name, shape=(length,), chunks=(_ROWS_PER_CHUNK,), dtype=str,
                              fill_value="")  # fmt: skip


def _append(array: Any, start: int, values: list[str]) -> None:
    array.resize((start + len(values),))
    array[start:] = np.array(values, dtype=object)


def ledger_metadata() -> dict[str, Any]:
    """The commit metadata of an ingest commit (a marker: the ledger itself is in the tree)."""
    return {LEDGER_KEY: dict(_MARKER)}
