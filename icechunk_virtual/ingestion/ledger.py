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
    from icechunk_virtual.repository import AsyncRepository, AsyncSession

__all__ = [
    "LEDGER_ROOT",
    "Ledgers",
    "ledger_metadata",
    "ledgers_at",
    "read_ledgers",
    "write_ledgers",
]

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
        session = sync(repo.readonly_session(branch=branch))
    except RefNotFoundError:
        return {}
    return ledgers_at(repo, session)


def ledgers_at(repo: AsyncRepository, session: AsyncSession) -> Ledgers:
    """The ledgers as of ``session``'s snapshot: an ingest plans on the session it commits, so
    a commit by another writer meanwhile is a conflict, never a plan made on an older tip."""
    if session.node(LEDGER_ROOT) is not None:
        return _read_tree(session)
    for info in sync_iter(repo.ancestry(snapshot_id=session.snapshot_id)):
        record = info.metadata.get(LEDGER_KEY)
        if record is not None and record != _MARKER:  # written before the tree: all of it
            groups = record.get("groups", {"": record.get("sources", {})})
            return {g: dict(sources) for g, sources in groups.items()}
    return {}


def _read_tree(session: AsyncSession) -> Ledgers:
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


def write_ledgers(
    store: IcechunkVirtualStore, before: Ledgers, after: Ledgers, changed: Iterable[str]
) -> None:
    """Record the ``changed`` groups' ledgers (and any group whose ledger is not in the tree
    yet: a repository written before it), writing only the rows that are new or changed.

    ``before`` is what :func:`ledgers_at` read from the same session: its order is the rows'.
    """
    session = store.session
    missing = {g for g in after if session.node(ledger_path(g)) is None}
    for group in sorted({*changed, *missing}):
        rows = {} if group in missing else before.get(group, {})
        _write_group(store, group, rows, after[group])


def _write_group(
    store: IcechunkVirtualStore,
    group: str,
    before: dict[str, str | None],
    after: dict[str, str | None],
) -> None:
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
        row = {url: i for i, url in enumerate(before)}
        for url, checksum in after.items():
            if url in row and before[url] != checksum:
                sums[row[url]] = checksum or ""
        new = [u for u in after if u not in row]
        if new:
            _append(locations, len(row), new)
            _append(sums, len(row), [after[u] or "" for u in new])


def _append(array: Any, start: int, values: list[str]) -> None:
    array.resize((start + len(values),))
    array[start:] = np.array(values, dtype=object)


def ledger_metadata() -> dict[str, Any]:
    """The commit metadata of an ingest commit (a marker: the ledger itself is in the tree)."""
    return {LEDGER_KEY: dict(_MARKER)}
