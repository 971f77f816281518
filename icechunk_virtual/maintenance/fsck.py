"""Checking a repository: every object a branch or tag reaches exists and parses.

:func:`fsck` reads every ref, every reachable snapshot and transaction log, every manifest those
snapshots list (checking its schema and row count), confirms every native chunk a manifest names
exists, and with ``check_sources=True`` that every virtual source exists, is authorised and still has
the checksum recorded with its refs. It reports problems rather than raising, so one run lists them
all.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from icechunk_virtual.errors import IcechunkVirtualError
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.format.manifest_file import ChunkKind, manifest_key, read_manifest
from icechunk_virtual.format.refs import (
    BRANCH_PREFIX,
    BranchVersion,
    decode_tag,
    parse_branch_version_key,
    tag_key,
)
from icechunk_virtual.format.snapshot import ManifestRef, snapshot_key
from icechunk_virtual.format.transaction import TransactionLog, transaction_key
from icechunk_virtual.io.sources import check_authorized, fetch_checksum, options_for
from icechunk_virtual.maintenance.reachability import bounded_map, manifests_of, walk
from icechunk_virtual.repository import branch_log

if TYPE_CHECKING:
    from icechunk_virtual.repository.repository import AsyncRepository

__all__ = ["FsckProblem", "FsckReport", "fsck"]


@dataclass(frozen=True, slots=True)
class FsckProblem:
    """One thing wrong: the object (storage key or source URL) and what is wrong with it."""

    object: str
    problem: str

    def __str__(self) -> str:
        return f"{self.object}: {self.problem}"


@dataclass(slots=True)
class FsckReport:
    """What :func:`fsck` checked and found."""

    refs: int = 0
    snapshots: int = 0
    manifests: int = 0
    chunk_refs: int = 0
    native_chunks: int = 0
    sources: int = 0
    """Virtual sources checked (only with ``check_sources=True``)."""
    problems: list[FsckProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        lines = [
            f"checked {self.refs} refs, {self.snapshots} snapshots, {self.manifests} manifests "
            f"({self.chunk_refs} chunk refs), {self.native_chunks} native chunks, "
            f"{self.sources} virtual sources",
        ]
        lines += [f"problem: {p}" for p in self.problems]
        lines.append("ok" if self.ok else f"{len(self.problems)} problem(s)")
        return "\n".join(lines)


async def _check_refs(repo: AsyncRepository, report: FsckReport) -> set[SnapshotId]:
    """Parse every branch tip and live tag; the snapshot ids they name."""
    keys = await repo.storage.list(BRANCH_PREFIX)
    latest: dict[str, tuple[int, str]] = {}
    for key in keys:
        parsed = parse_branch_version_key(key)
        if parsed is not None and parsed[1] >= latest.get(parsed[0], (-1, ""))[0]:
            latest[parsed[0]] = (parsed[1], key)
    roots: set[SnapshotId] = set()
    for version, key in latest.values():
        report.refs += 1
        try:
            record = BranchVersion.from_bytes(
                version, await repo.storage.get(key), where=f"{repo.storage.url}/{key}"
            )
        except IcechunkVirtualError as exc:
            report.problems.append(FsckProblem(key, str(exc)))
            continue
        if record.snapshot_id is not None:
            roots.add(record.snapshot_id)
    for name in sorted(latest):
        for key, problem in await branch_log.check_branch(repo.storage, name):
            report.problems.append(FsckProblem(key, problem))
    for name in await repo.list_tags():
        key = tag_key(name)
        report.refs += 1
        try:
            roots.add(decode_tag(await repo.storage.get(key), where=f"{repo.storage.url}/{key}"))
        except IcechunkVirtualError as exc:
            report.problems.append(FsckProblem(key, str(exc)))
    return roots


async def _check_transaction(repo: AsyncRepository, snapshot_id: SnapshotId) -> FsckProblem | None:
    key = transaction_key(snapshot_id)
    try:
        TransactionLog.from_bytes(await repo.storage.get(key), where=f"{repo.storage.url}/{key}")
    except IcechunkVirtualError as exc:
        return FsckProblem(key, str(exc))
    return None


@dataclass(slots=True)
class _ManifestFindings:
    rows: int = 0
    native: pa.Array | None = None
    sources: pa.Table | None = None
    problem: FsckProblem | None = None


async def _check_manifest(
    repo: AsyncRepository, manifest: ManifestRef, ndim: int, array: str
) -> _ManifestFindings:
    key = manifest_key(manifest.id)
    where = f"{repo.storage.url}/{key} (array {array})"
    try:
        raw = await repo.storage.get(key)
        table = await asyncio.to_thread(read_manifest, raw, ndim=ndim, where=where)
    except IcechunkVirtualError as exc:
        return _ManifestFindings(problem=FsckProblem(key, str(exc)))
    if table.num_rows != manifest.rows:
        return _ManifestFindings(
            problem=FsckProblem(
                key, f"holds {table.num_rows} chunk refs, the snapshot says {manifest.rows}"
            )
        )
    kind = table["kind"]
    native = table.filter(pc.equal(kind, ChunkKind.NATIVE.value))
    virtual = table.filter(pc.equal(kind, ChunkKind.VIRTUAL.value))
    sources = pa.table({name: _plain(virtual[name]) for name in ("location", "checksum")})
    return _ManifestFindings(
        rows=table.num_rows,
        native=pc.unique(_plain(native["location"])),
        sources=sources.group_by(["location", "checksum"]).aggregate([]),
    )


def _plain(column: pa.ChunkedArray) -> pa.Array:
    """A dictionary-encoded string column as plain strings."""
    array = column.combine_chunks()
    return array.dictionary_decode() if isinstance(array, pa.DictionaryArray) else array


async def _check_source(
    repo: AsyncRepository, url: str, recorded: str | None
) -> FsckProblem | None:
    try:
        check_authorized([url], repo.virtual_sources, where=repo.storage.url)
        if recorded is None:
            return None
        current = await fetch_checksum(
            url, options_for(url, repo.source_options), where=repo.storage.url
        )
    except IcechunkVirtualError as exc:
        return FsckProblem(url, str(exc))
    if current != recorded:
        return FsckProblem(
            url,
            f"changed since it was referenced: checksum {recorded!r} recorded, {current!r} found",
        )
    return None


async def fsck(repo: AsyncRepository, *, check_sources: bool = False) -> FsckReport:
    """Check that every ref, snapshot, manifest and native chunk a branch or tag reaches exists
    and parses; with ``check_sources=True`` also that every virtual source exists, is
    authorised and still has the checksum recorded with its refs. Problems are listed in the
    report (``report.ok``), not raised."""
    report = FsckReport()
    roots = await _check_refs(repo, report)
    reached = await walk(repo, roots)
    report.snapshots = len(reached.snapshots)
    report.problems += [
        FsckProblem(snapshot_key(s), reason) for s, reason in sorted(reached.missing.items())
    ]
    transaction_problems = await bounded_map(
        lambda s: _check_transaction(repo, s), reached.snapshots
    )
    report.problems += [p for p in transaction_problems if p is not None]

    manifests = manifests_of(reached.snapshots.values())
    report.manifests = len(manifests)
    findings = await bounded_map(lambda m: _check_manifest(repo, *m), manifests.values())
    report.problems += [f.problem for f in findings if f.problem is not None]
    report.chunk_refs = sum(f.rows for f in findings)
    await _check_native_chunks(repo, findings, report)
    if check_sources:
        await _check_sources(repo, findings, report)
    return report


async def _check_native_chunks(
    repo: AsyncRepository, findings: list[_ManifestFindings], report: FsckReport
) -> None:
    """Every native chunk a manifest names is in ``chunks/``."""
    native = [f.native for f in findings if f.native is not None and len(f.native)]
    if not native:
        return
    wanted = set(pc.unique(pa.concat_arrays(native)).to_pylist())
    present = {k.partition("/")[2] for k in await repo.storage.list("chunks/")}
    report.native_chunks = len(wanted)
    report.problems += [
        FsckProblem(f"chunks/{c}", "native chunk named by a manifest is missing")
        for c in sorted(wanted - present)
    ]


async def _check_sources(
    repo: AsyncRepository, findings: list[_ManifestFindings], report: FsckReport
) -> None:
    """Every virtual source exists, is authorised and has the checksum its refs recorded."""
    tables = [f.sources for f in findings if f.sources is not None and f.sources.num_rows]
    pairs = (
        pa.concat_tables(tables).group_by(["location", "checksum"]).aggregate([]).to_pylist()
        if tables
        else []
    )
    report.sources = len({p["location"] for p in pairs})
    source_problems = await bounded_map(
        lambda p: _check_source(repo, p["location"], p["checksum"]), pairs
    )
    report.problems += [p for p in source_problems if p is not None]
