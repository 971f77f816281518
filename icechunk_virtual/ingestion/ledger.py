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
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
import zarr
from zarr.errors import UnstableSpecificationWarning

from icechunk_virtual._sync import sync, sync_iter
from icechunk_virtual.errors import RefNotFoundError
from icechunk_virtual.format.snapshot import LEDGER_KEY
from icechunk_virtual.repository.nodes import RESERVED
from icechunk_virtual.zarr.store import IcechunkVirtualStore

if TYPE_CHECKING:
    from icechunk_virtual.repository import AsyncRepository

__all__ = ["LEDGER_ROOT", "Ledgers", "ledger_metadata", "read_ledgers", "write_ledgers"]

type Ledgers = dict[str, dict[str, str | None]]
"""Group path -> source location -> checksum."""

LEDGER_ROOT = f"{RESERVED}/ledger"
"""The reserved tree holding every group's ledger (hidden from the store's listings)."""

_ROWS_PER_CHUNK = 4096
_MARKER = {"ledger": "nodes"}
"""What an ingest commit records in its metadata now: the ledger is in the tree."""


def ledger_path(group: str) -> str:
    """Where ``group``'s ledger lives (one flat name per group, nested groups included)."""
    return f"{LEDGER_ROOT}/_{quote(group.strip('/'), safe='')}"


def read_ledgers(repo: AsyncRepository, branch: str) -> Ledgers:
    """The ledgers of every group ingested into on ``branch`` (empty for a new branch)."""
    try:
        for info in sync_iter(repo.ancestry(branch=branch)):
            record = info.metadata.get(LEDGER_KEY)
            if record == _MARKER:
                return _read_tree(repo, str(info.id))
            if record is not None:  # a repository written before the tree: the whole ledger
                groups = record.get("groups", {"": record.get("sources", {})})
                return {g: dict(sources) for g, sources in groups.items()}
    except RefNotFoundError:
        pass
    return {}


def _read_tree(repo: AsyncRepository, snapshot_id: str) -> Ledgers:
    session = sync(repo.readonly_session(snapshot_id=snapshot_id))
    store = IcechunkVirtualStore(session)
    found: Ledgers = {}
    for path in session.node_paths():
        if path.startswith(LEDGER_ROOT + "/_") and path.count("/") == LEDGER_ROOT.count("/") + 1:
            group = zarr.open_group(store, path=path, mode="r")
            arrays: list[Any] = [group["location"], group["checksum"]]
            locations, sums = (np.asarray(a[...]) for a in arrays)
            name = str(group.attrs["group"])
            found[name] = {str(u): (str(c) or None) for u, c in zip(locations, sums, strict=True)}
    return found


def write_ledgers(store: IcechunkVirtualStore, ledgers: Ledgers, changed: Iterable[str]) -> None:
    """Record the ``changed`` groups' ledgers (and any group whose ledger is not in the tree
    yet: a repository written before it), writing only the rows that are new or changed."""
    session = store.session
    for group in sorted({*changed, *(g for g in ledgers if session.node(ledger_path(g)) is None)}):
        _write_group(store, group, ledgers[group])


def _write_group(store: IcechunkVirtualStore, group: str, ledger: dict[str, str | None]) -> None:
    path = ledger_path(group)
    with warnings.catch_warnings():  # zarr flags its string data type as not yet in the v3 spec
        warnings.simplefilter("ignore", UnstableSpecificationWarning)
        if store.session.node(path) is None:
            node = zarr.open_group(store, path=path, mode="a", attributes={"group": group})
            for name in ("location", "checksum"):
                node.create_array(name, shape=(0,), chunks=(_ROWS_PER_CHUNK,), dtype=str,
                                  fill_value="")  # fmt: skip
        node = zarr.open_group(store, path=path, mode="r+")
        locations: Any = node["location"]
        sums: Any = node["checksum"]
        known = [str(u) for u in np.asarray(locations[...])]
        stored = [str(c) for c in np.asarray(sums[...])]
        where = {u: i for i, u in enumerate(known)}
        for url, checksum in ledger.items():
            if url in where and stored[where[url]] != (checksum or ""):
                sums[where[url]] = checksum or ""
        new = [u for u in ledger if u not in where]
        if new:
            _append(locations, known, new)
            _append(sums, stored, [ledger[u] or "" for u in new])


def _append(array: Any, current: list[str], values: list[str]) -> None:
    start = len(current)
    array.resize((start + len(values),))
    array[start:] = np.array(values, dtype=object)


def ledger_metadata() -> dict[str, Any]:
    """The commit metadata of an ingest commit (a marker: the ledger itself is in the tree)."""
    return {LEDGER_KEY: dict(_MARKER)}
