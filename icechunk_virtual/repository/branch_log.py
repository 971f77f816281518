"""A branch's versions: the tip in a constant number of reads, the next version, and collection.

A branch is the sequence of versions ``refs/branch.<name>/<version>``, immutable and each
created with put-if-absent as its predecessor + 1, so two writers can never both win one. Two
small objects sit beside them; neither decides who wins a version, both keep reads cheap when a
branch has had many versions:

``tip.json`` — a hint
    The newest version its writer knew of, with the snapshot it names. Whoever creates a version
    writes it next. A reader starts at the hint and probes forward (``hint + 1``, ...) until a
    version is missing. That is exact, not a guess: versions from the floor up are contiguous
    (each is created as its predecessor + 1 and only versions below the floor are ever deleted),
    so the first missing one ends the branch. A hint that lags (its writer died before writing
    it, or a slow writer wrote an older one) costs one probe per version it lags. A hint that is
    missing, damaged or below the floor sends the reader to the listing of every version key.
``floor.json`` — what garbage collection kept
    :func:`collect_versions` writes it before deleting any version below it. A writer whose
    session's base is older than the GC cutoff may re-create a collected version number; it
    reads the floor after winning, sees its version below it, and knows the version never was
    on the branch: it deletes it and raises :class:`SessionExpiredError` (unless the branch's
    history shows its snapshot after all — a writer paused for longer than the cutoff).

So the tip costs three requests in two round trips (hint and floor together, then one probe)
whatever the number of versions, and a rival's versions cost one request each, fetched together.
The rule for what GC may delete is in :func:`collect_versions`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from icechunk_virtual.errors import (
    FormatError,
    ObjectNotFoundError,
    SessionExpiredError,
    StorageError,
)
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.format.refs import (
    BranchVersion,
    branch_floor_key,
    branch_tip_key,
    branch_version_key,
    branch_versions_prefix,
    decode_floor,
    encode_floor,
    parse_branch_version_key,
)
from icechunk_virtual.storage import Storage

__all__ = [
    "check_branch",
    "collect_versions",
    "create_version",
    "read_floor",
    "read_tip",
    "read_version",
    "versions_after",
]

_MAX_PROBES = 64
"""Probes past the hint before the listing is cheaper (a hint lags only by crashed writers)."""

_FETCH_WINDOW = 64
"""Rival versions fetched at once."""

IsAncestor = Callable[[SnapshotId, SnapshotId], Awaitable[bool]]
"""``is_ancestor(tip, snapshot)``: whether ``snapshot`` is in ``tip``'s history."""


async def _get_optional(storage: Storage, key: str) -> bytes | None:
    try:
        return await storage.get(key)
    except ObjectNotFoundError:
        return None


async def read_version(storage: Storage, name: str, version: int) -> BranchVersion | None:
    """Version ``version`` of the branch, or ``None`` if there is no such version (any more)."""
    key = branch_version_key(name, version)
    raw = await _get_optional(storage, key)
    return None if raw is None else BranchVersion.from_bytes(version, raw, where=_at(storage, key))


async def read_floor(storage: Storage, name: str) -> int:
    """The lowest version garbage collection kept (0 if it never collected any)."""
    key = branch_floor_key(name)
    raw = await _get_optional(storage, key)
    return 0 if raw is None else decode_floor(raw, where=_at(storage, key))


async def _read_hint(storage: Storage, name: str) -> BranchVersion | None:
    key = branch_tip_key(name)
    raw = await _get_optional(storage, key)
    if raw is None:
        return None
    try:
        return BranchVersion.from_hint_bytes(raw, where=_at(storage, key))
    except FormatError:
        return None  # only a hint: the listing is the truth (fsck reports the damage)


async def _hint_and_floor(storage: Storage, name: str) -> tuple[BranchVersion | None, int]:
    hint, floor = await asyncio.gather(_read_hint(storage, name), read_floor(storage, name))
    return (hint if hint is not None and hint.version >= floor else None), floor


async def _listed_versions(storage: Storage, name: str) -> list[int]:
    keys = await storage.list(branch_versions_prefix(name))
    parsed = (parse_branch_version_key(k) for k in keys)
    return sorted(p[1] for p in parsed if p is not None and p[0] == name)


async def _probe_forward(storage: Storage, name: str, known: BranchVersion) -> BranchVersion | None:
    """The last version of the contiguous run from ``known`` on (``None``: too far to probe)."""
    for _ in range(_MAX_PROBES):
        following = await read_version(storage, name, known.version + 1)
        if following is None:
            return known
        known = following
    return None


async def read_tip(storage: Storage, name: str) -> BranchVersion | None:
    """The branch's newest version (maybe a tombstone), or ``None`` if it never existed."""
    hint, _ = await _hint_and_floor(storage, name)
    if hint is not None and (tip := await _probe_forward(storage, name, hint)) is not None:
        return tip
    listed = await _listed_versions(storage, name)
    for version in reversed(listed):  # (the newest may be deleted by a concurrent gc: rare)
        if (record := await read_version(storage, name, version)) is not None:
            return record
    return None


async def versions_after(storage: Storage, name: str, version: int) -> list[BranchVersion]:
    """The versions the branch gained after ``version``, oldest first.

    Raises :class:`SessionExpiredError` if garbage collection deleted some of them.
    """
    hint, floor = await _hint_and_floor(storage, name)
    if version + 1 < floor:
        raise SessionExpiredError(name, version, floor)
    known = range(version + 1, hint.version + 1 if hint is not None else version + 1)
    found: list[BranchVersion] = []
    for start in range(known.start, known.stop, _FETCH_WINDOW):
        window = range(start, min(start + _FETCH_WINDOW, known.stop))
        fetched = await asyncio.gather(*(read_version(storage, name, v) for v in window))
        found += [record for record in fetched if record is not None]
    if len(found) != len(known):  # collected under our feet (we checked the floor first)
        raise SessionExpiredError(name, version, await read_floor(storage, name))
    last = found[-1].version if found else version
    while (following := await read_version(storage, name, last + 1)) is not None:
        found.append(following)
        last = following.version
    return found


async def create_version(
    storage: Storage, name: str, record: BranchVersion, *, is_ancestor: IsAncestor
) -> bool:
    """Create version ``record.version``; ``False`` if a rival holds it.

    Raises :class:`SessionExpiredError` if the number was one garbage collection had deleted (the
    version is removed again: it never was on the branch), and :class:`StorageError` if the
    outcome is unknown.
    """
    key = branch_version_key(name, record.version)
    if not await storage.put_if_absent(key, record.to_bytes()):
        return False
    floor = await read_floor(storage, name)
    if record.version < floor and not await _landed_anyway(storage, name, record, is_ancestor):
        await storage.delete([key])
        raise SessionExpiredError(name, record.version - 1, floor)
    await _write_hint(storage, name, record)
    return True


async def _write_hint(storage: Storage, name: str, record: BranchVersion) -> None:
    """Best effort: a hint that failed to land only lags, and lagging costs a probe."""
    with contextlib.suppress(StorageError):
        await storage.put(branch_tip_key(name), record.to_hint_bytes())


async def _landed_anyway(
    storage: Storage, name: str, record: BranchVersion, is_ancestor: IsAncestor
) -> bool:
    """Whether a version below the floor is a genuine one whose writer paused past the GC cutoff
    (the branch's history then holds its snapshot)."""
    tip = await read_tip(storage, name)
    if tip is None or tip.snapshot_id is None or record.snapshot_id is None:
        return False
    return await is_ancestor(tip.snapshot_id, record.snapshot_id)


async def collect_versions(
    storage: Storage, name: str, modified: Mapping[int, datetime], older_than: datetime
) -> list[str]:
    """Delete the branch's versions no live session can need; the keys deleted.

    ``modified`` maps each version to its last-modified time. The rule: a version is deleted
    only if it is not the tip and it was created before ``older_than`` — as for every object GC
    deletes, the cutoff must be older than the longest-running writer. A session opened after
    the cutoff stands on a version at least as new as every deleted one, so the versions it
    may replay, and the one it will try to create, are all kept. A session opened before it may
    find its base collected: it gets :class:`SessionExpiredError`, never a lost commit.

    The floor is raised before anything below it is deleted, so the versions a reader trusts
    (from the floor up) are one contiguous run ending at the tip at every moment; a run
    interrupted half-way leaves versions below the floor, which the next run deletes.
    """
    versions = sorted(modified)
    if not versions:
        return []
    newest = versions[-1]
    floor = next(v for v in versions if v == newest or modified[v] >= older_than)
    kept_from = await read_floor(storage, name)
    if floor > kept_from:
        tip = await read_tip(storage, name)
        if tip is not None:  # a fresh hint, so no reader's probe starts below the floor
            await _write_hint(storage, name, tip)
        await storage.put(branch_floor_key(name), encode_floor(floor))
    doomed = [branch_version_key(name, v) for v in versions if v < max(floor, kept_from)]
    for start in range(0, len(doomed), _DELETE_BATCH):
        await storage.delete(doomed[start : start + _DELETE_BATCH])
    return doomed


_DELETE_BATCH = 1000


async def check_branch(storage: Storage, name: str) -> list[tuple[str, str]]:
    """What breaks the invariants above, as ``(key, problem)`` pairs (for fsck)."""
    problems: list[tuple[str, str]] = []
    try:
        floor = await read_floor(storage, name)
    except FormatError as exc:
        return [(branch_floor_key(name), str(exc))]
    listed = [v for v in await _listed_versions(storage, name) if v >= floor]
    if not listed:
        return [(branch_versions_prefix(name), f"no version at or above the floor {floor}")]
    if missing := sorted(set(range(floor, listed[-1] + 1)) - set(listed)):
        problems.append((branch_versions_prefix(name), f"versions missing: {missing[:10]}"))
    raw = await _get_optional(storage, branch_tip_key(name))
    if raw is not None:
        try:
            hint = BranchVersion.from_hint_bytes(raw, where=_at(storage, branch_tip_key(name)))
        except FormatError as exc:
            return [*problems, (branch_tip_key(name), str(exc))]
        if hint.version > listed[-1]:
            problems.append((branch_tip_key(name), f"names version {hint.version}, past the tip"))
        elif hint.version >= floor and hint != await _read_unless_damaged(storage, name, hint):
            problems.append((branch_tip_key(name), f"disagrees with version {hint.version}"))
    return problems


async def _read_unless_damaged(storage: Storage, name: str, hint: BranchVersion) -> object:
    try:
        return await read_version(storage, name, hint.version)
    except FormatError:
        return hint  # a damaged record is reported as such, not as a disagreement


def _at(storage: Storage, key: str) -> str:
    return f"{storage.url}/{key}"
