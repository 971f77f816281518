"""The ingest orchestration: scan archive files and commit their chunk refs in one snapshot.

An ingest is a short sequence of named steps, each a function of its own module:

1. **plan** (:mod:`.plan`): checksum the given sources and sort them against the group's
   ledger (:mod:`.ledger`) into added / changed / skipped; nothing new means nothing to do;
2. **scan** (:mod:`.scan`): the readers, in worker processes or on a dask cluster;
3. **authorise** every source directory (and the files reference sets point at);
4. **check and combine** (:mod:`.combine`): with ``concat_dim``, the files laid end to end after
   checking that they fit; otherwise each file is its own group. When the new files all follow
   the committed dataset, or fill a gap in it, only they are scanned and they are appended
   after it or inserted (the later chunks move up), checked against what is stored
   (:mod:`.append`); a changed file whose extent is unchanged is scanned alone and its refs
   replaced where they are (:mod:`.reingest`); otherwise (a changed extent, a gap off the
   chunk grid) the dataset is rebuilt from every source;
5. **write** (:mod:`.write`): groups and arrays through the session's zarr store; the virtual
   refs set here or in forks on the cluster (:mod:`.distributed`);
6. **commit** once, with the updated ledger in the commit's metadata.

Every step runs before anything reaches the branch, so a failure commits nothing.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from icechunk_virtual._sync import sync
from icechunk_virtual.errors import ConflictError
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.ingestion.append import append_after
from icechunk_virtual.ingestion.combine import LoadValues, combine
from icechunk_virtual.ingestion.distributed import set_refs_on_cluster
from icechunk_virtual.ingestion.ledger import Ledger, group_ledger, ledger_metadata, record_sources
from icechunk_virtual.ingestion.locations import join, location, source_prefix
from icechunk_virtual.ingestion.plan import (
    IngestPlan,
    OnChanged,
    checksums,
    plan_ingest,
    recheck_unlisted,
)
from icechunk_virtual.ingestion.reingest import replace_in_place
from icechunk_virtual.ingestion.scan import referenced_urls, scan_sources
from icechunk_virtual.ingestion.values import load_values
from icechunk_virtual.ingestion.write import PendingRefs, write_dataset
from icechunk_virtual.io.urls import canonical_prefix, is_under
from icechunk_virtual.repository import AsyncRepository
from icechunk_virtual.zarr.store import IcechunkVirtualStore
from readers.types import VirtualArray, VirtualDataset

__all__ = ["IngestReport", "ingest_into"]


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What one ``ingest`` call did."""

    snapshot_id: SnapshotId | None
    """The new snapshot, or ``None`` when there was nothing new to commit."""
    added: list[str]
    """Sources ingested for the first time."""
    skipped: list[str]
    """Sources ingested before and unchanged."""
    changed: list[str]
    """Sources whose checksum changed since they were ingested (re-ingested)."""
    seconds: float


def ingest_into(
    repo: AsyncRepository,
    urls: Sequence[str],
    *,
    concat_dim: str | None = None,
    branch: str = "main",
    message: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    on_changed: OnChanged | str = "error",
    group: str | None = None,
    client: Any = None,
    progress: bool = True,
    check_ingested: bool = True,
) -> IngestReport:
    """Scan ``urls`` and commit every array's chunk refs to ``branch`` in one snapshot.

    Parameters
    ----------
    repo
        The repository to write to (a :class:`~icechunk_virtual.Repository` or its async twin).
    urls
        Local paths or fsspec URLs of HDF5 / NetCDF4, NetCDF3 or GRIB files, or Kerchunk
        reference sets.
    concat_dim
        Combine the files along this dimension, ordered by its coordinate's values (see
        :mod:`icechunk_virtual.ingestion.combine`); without it each file is written as-is (one
        file at the root, several each under a group named after the file, told apart by
        their directories where names collide: ``a/data.nc`` -> ``a-data``).
    branch
        Branch to commit to.
    message
        Commit message (default: ``ingest N new and M changed file(s)``).
    storage_options
        fsspec options to read the sources (used, never stored).
    on_changed
        What to do when a source ingested before has changed (its checksum differs): ``"error"``
        raises :class:`StaleSourceError` and commits nothing; ``"reingest"`` scans it again
        (:class:`~icechunk_virtual.ingestion.OnChanged`).
    group
        Write under this group (e.g. ``"forecasts/ecmwf"``) instead of at the root.
    client
        A ``dask.distributed.Client``: the files are scanned on its workers and the refs set in
        forks of the session on its workers, merged here into one commit. Without it, files are
        scanned by a local process pool.
    progress
        Show a progress bar while scanning.
    check_ingested
        Check that the listed sources ingested before are unchanged (one ``stat`` each for local
        files, one listing request per 1,000 objects on S3, GCS or Azure, one ``HEAD`` each over
        HTTP). ``False`` looks only at the new ones, so a daily job costs nothing per archived
        file; a source that changed is then still refused when read (:class:`StaleSourceError`)
        and found by ``fsck(check_sources=True)``.

    Returns
    -------
    IngestReport
        The new snapshot (``None`` when every source was ingested before, unchanged: re-running
        a scheduled job commits nothing) and the sources added, skipped and changed.

    Raises
    ------
    UnsupportedSourceError, CorruptSourceError, SourceNotFoundError
        A file could not be scanned; nothing is committed.
    IncompatibleSourcesError
        ``concat_dim`` was given and two files cannot be combined; nothing is committed.
    StaleSourceError
        A source changed since it was ingested and ``on_changed`` is ``"error"``.
    ConflictError
        Other writers kept changing what this ingest changes (it retried on their commits
        :data:`_ATTEMPTS` times; nothing of it is committed).
    """
    started = time.perf_counter()
    on_changed = OnChanged.parse(on_changed)
    for attempt in range(_ATTEMPTS):
        try:
            return _ingest_once(repo, urls, concat_dim, branch, message, dict(storage_options or {}),
                                on_changed, check_ingested, (group or "").strip("/"), client,
                                progress, started)  # fmt: skip
        except ConflictError:
            # Another ingest committed to this group first: plan again on its commit (its
            # sources are then in the ledger, and ours go after them).
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


_ATTEMPTS = 3
"""Tries of one ingest when another writer commits to the same group meanwhile."""


def _ingest_once(
    repo: AsyncRepository,
    urls: Sequence[str],
    concat_dim: str | None,
    branch: str,
    message: str | None,
    options: dict[str, Any],
    on_changed: OnChanged,
    check_ingested: bool,
    group: str,
    client: Any,
    progress: bool,
    started: float,
) -> IngestReport:
    """One attempt of :func:`ingest_into`: plan on the branch tip, scan, write, commit, all in
    one session (a commit by another writer meanwhile is a conflict, and the caller retries)."""
    session = sync(repo.writable_session(branch))
    store = IcechunkVirtualStore(session)
    ledger, legacy = group_ledger(repo, session, group)
    plan = plan_ingest(urls, ledger=ledger, concatenated=concat_dim is not None,
                       on_changed=on_changed, options=options,
                       check_ingested=check_ingested)  # fmt: skip
    if plan.is_empty:
        return IngestReport(None, [], plan.skipped, [], time.perf_counter() - started)
    if concat_dim is not None and len(plan.ledger) and not (plan.added and plan.changed):
        done = _in_place(repo, store, plan, concat_dim, options, client, progress)
        if done is not None:
            return _commit(store, *done, client, legacy, plan, message, started, None)
        session.discard_changes()  # (none are made before it knows it cannot be done so)
    plan = recheck_unlisted(plan, on_changed, options)
    datasets = scan_sources(plan.scan, options, progress=progress, client=client)
    sources = _authorise_sources(repo, plan.scan, {u: plan.checksum(u) for u in plan.scan},
                                 datasets, options)  # fmt: skip
    named = _lay_out(plan, datasets, concat_dim, options)
    nodes = None if concat_dim is not None else {d.url: name or "/" for name, d in named}
    pending: PendingRefs = []
    for base, dataset in named:
        pending += write_dataset(store, dataset, join(plan.group, base), sources)
    return _commit(store, pending, sources, client, legacy, plan, message, started, nodes)


def _in_place(
    repo: AsyncRepository,
    store: IcechunkVirtualStore,
    plan: IngestPlan,
    concat_dim: str,
    options: Mapping[str, Any],
    client: Any,
    progress: bool,
) -> tuple[PendingRefs, dict[str, str | None]] | None:
    """Scan only the new files and write them after the committed dataset or into a gap of it
    (:mod:`.append`), or only the changed ones and replace their refs where they are
    (:mod:`.reingest`); ``None`` if that cannot be done (the caller rebuilds from every
    source)."""
    urls = plan.added or plan.changed
    datasets = scan_sources(urls, options, progress=progress, client=client)
    sources = _authorise_sources(repo, urls, plan.checksums, datasets, options)
    load = _value_loader(options)
    if plan.changed:
        pending = replace_in_place(store, plan.group, datasets, concat_dim, load, sources)
    else:
        delta = combine(datasets, concat_dim, load)
        first = next(d for d in datasets if d.url == delta.url)
        pending = append_after(store, plan.group, delta, first, concat_dim, load, sources)
    return None if pending is None else (pending, sources)


def _commit(
    store: IcechunkVirtualStore,
    pending: PendingRefs,
    sources: Mapping[str, str | None],
    client: Any,
    legacy: list[Ledger],
    plan: IngestPlan,
    message: str | None,
    started: float,
    nodes: Mapping[str, str] | None,
) -> IngestReport:
    """Set the refs (here or on the cluster) and commit once, with the group's ledger updated
    (``nodes``: the group each separate file went to)."""
    session = store.session
    if client is None:
        for path, refs in pending:
            sync(session.set_virtual_refs(path, refs))
    else:
        set_refs_on_cluster(client, session, pending)
    changes = {u: sources[u] for u in plan.added + plan.changed}
    record_sources(store, plan.ledger, changes, nodes, legacy)
    snapshot = sync(session.commit(
        message or f"ingest {len(plan.added)} new and {len(plan.changed)} changed file(s)",
        metadata=ledger_metadata(),
    ))  # fmt: skip
    seconds = time.perf_counter() - started
    return IngestReport(snapshot, plan.added, plan.skipped, plan.changed, seconds)


def _authorise_sources(
    repo: AsyncRepository,
    scanned: Sequence[str],
    sums: Mapping[str, str | None],
    datasets: Sequence[VirtualDataset],
    options: Mapping[str, Any],
) -> dict[str, str | None]:
    """Authorise the directory of every source the refs will name; every such source's checksum
    (``sums``: those of the ``scanned`` files).

    A reference file (Kerchunk) is not itself a source: the files its chunks live in are.
    """
    sources = dict(sums)
    pointed_at = [referenced_urls(d) for d in datasets]
    used = {u for u, refs in zip(scanned, pointed_at, strict=True) if not refs}
    referenced = {location(u) for refs in pointed_at for u in refs}
    sources.update(checksums(sorted(referenced - set(sources)), options))
    for prefix in sorted({canonical_prefix(source_prefix(u)) for u in used | referenced}):
        if not any(is_under(prefix, p) for p in repo.virtual_sources):
            sync(repo.authorize_virtual_source(prefix))
    return sources


def _lay_out(
    plan: IngestPlan,
    datasets: Sequence[VirtualDataset],
    concat_dim: str | None,
    options: Mapping[str, Any],
) -> list[tuple[str, VirtualDataset]]:
    """The datasets to write, each with the group it goes in (relative to the ingest's group)."""
    if concat_dim is not None:
        return [("", combine(datasets, concat_dim, _value_loader(options)))]
    names = _group_names(plan)
    return [(names[u], d) for u, d in zip(plan.scan, datasets, strict=True)]


def _group_names(plan: IngestPlan) -> dict[str, str]:
    """Each scanned file's group (``""``: the ingest's group itself), unique and stable.

    A file ingested before keeps the group the ledger recorded for it (before groups were
    recorded: its name without the extension, or the root if it was the only file). A new file
    goes to the root when it is the first and only one; otherwise to its name without the
    extension, or where names collide (``a/data.nc``, ``b/data.nc``: with each other, with a
    group taken or with another file's name), to as many of its directories as tell them
    apart (``a-data``, ``b-data``).
    """
    ledger = plan.ledger.as_dict
    recorded = plan.ledger.nodes_by_location
    only = len(ledger) == 1

    def kept(url: str) -> str:
        node = recorded.get(url) or ("/" if only else _parts(url)[-1])
        return "" if node == "/" else node

    names = {u: kept(u) for u in plan.changed}
    new = [u for u in plan.scan if u not in names]
    if not ledger and len(new) == 1:
        return {new[0]: ""}
    taken = {kept(u) for u in ledger} | set(names.values())
    taken |= {_parts(u)[-1] for u in ledger}  # a name of another file: said with directories
    depth = dict.fromkeys(new, 1)
    while True:
        wanted = {u: _name(u, depth[u]) for u in new}
        clash = [u for u in new if wanted[u] in taken
                 or sum(w == wanted[u] for w in wanted.values()) > 1]  # fmt: skip
        if not clash:
            return {**names, **wanted}
        for url in clash:
            depth[url] += 1


def _parts(url: str) -> list[str]:
    """The URL's path components, the last without its extension."""
    parts = [p for p in url.partition("://")[2].split("/") if p]
    return [*parts[:-1], posixpath.splitext(parts[-1])[0]]


def _name(url: str, depth: int) -> str:
    """The last ``depth`` path components joined by ``-``; beyond the path, numbered."""
    parts = _parts(url)
    if depth <= len(parts):
        return "-".join(parts[-depth:])
    return f"{'-'.join(parts)}-{depth - len(parts) + 1}"


def _value_loader(options: Mapping[str, Any]) -> LoadValues:
    """``combine``'s loader of coordinate values, reading each array of each file once (the first
    file's coordinates are compared with every other's)."""
    loaded: dict[tuple[str, str], np.ndarray] = {}

    def load(dataset: VirtualDataset, array: VirtualArray) -> np.ndarray:
        key = (dataset.url, array.path)
        if key not in loaded:
            loaded[key] = load_values(dataset, array, options)
        return loaded[key]

    return load
