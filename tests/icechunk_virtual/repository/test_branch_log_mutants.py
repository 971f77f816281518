"""Branch-log edge cases a mutation run (mutmut) showed no other test pinned down.

``check_branch`` is fsck's view of a branch: each invariant of ``branch_log`` (versions contiguous
from the floor, a hint that names a version and agrees with it, a parseable floor) breaks in
exactly one way here, and the whole ``(key, problem)`` list is compared, so a problem filed under
the wrong key, a message naming the wrong version or a problem that goes unreported all fail.
``versions_after`` is checked at the floor's edges (a base just below the floor still rebases, one
whose successor was collected does not) and against a garbage collection that runs between its
floor read and its fetch. A stale commit on a branch deleted since must not land.

The states are written straight into a ``MemoryStorage`` (the oracle is the storage itself, and
the expected lists are written out by hand), not produced by the code under test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest
import zarr

import icechunk_virtual as iv
from icechunk_virtual._sync import sync
from icechunk_virtual.errors import FormatError, SessionExpiredError, StorageError
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.format.refs import (
    BranchVersion,
    branch_floor_key,
    branch_tip_key,
    branch_version_key,
    encode_floor,
)
from icechunk_virtual.repository import branch_log
from icechunk_virtual.storage import MemoryStorage, Storage

PREFIX = "refs/branch.main/"
TIP = "refs/branch.main/tip.json"
FLOOR = "refs/branch.main/floor.json"


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage(uuid.uuid4().hex)


async def _versions(storage: Storage, versions: list[int]) -> dict[int, SnapshotId]:
    """Write branch ``main``'s versions (each naming a fresh snapshot id); their snapshots."""
    snapshots = {v: SnapshotId.generate() for v in versions}
    for v, snapshot in snapshots.items():
        await storage.put(branch_version_key("main", v), BranchVersion(v, snapshot).to_bytes())
    return snapshots


async def _hint(storage: Storage, version: int, snapshot: SnapshotId | None) -> None:
    await storage.put(branch_tip_key("main"), BranchVersion(version, snapshot).to_hint_bytes())


async def _floor(storage: Storage, floor: int) -> None:
    await storage.put(branch_floor_key("main"), encode_floor(floor))


# ---- check_branch ------------------------------------------------------------------------------


async def test_a_sound_branch_has_no_problems(storage: MemoryStorage) -> None:
    snapshots = await _versions(storage, [0, 1, 2, 3])
    await _hint(storage, 3, snapshots[3])
    assert await branch_log.check_branch(storage, "main") == []
    await _hint(storage, 1, snapshots[1])  # a lagging hint that agrees is fine
    assert await branch_log.check_branch(storage, "main") == []


async def test_a_damaged_floor_is_named(storage: MemoryStorage) -> None:
    await _versions(storage, [0, 1])
    await storage.put(FLOOR, b'{"floor": "x"}')
    [(key, problem)] = await branch_log.check_branch(storage, "main")
    assert key == FLOOR
    assert problem.startswith(f"{storage.url}/{FLOOR}: branch floor does not parse")


async def test_no_version_at_or_above_the_floor(storage: MemoryStorage) -> None:
    await _versions(storage, [0, 1, 2])
    await _floor(storage, 5)
    assert await branch_log.check_branch(storage, "main") == [
        (PREFIX, "no version at or above the floor 5")
    ]


async def test_missing_versions_are_listed_from_the_floor_up_to_the_tip(
    storage: MemoryStorage,
) -> None:
    await _versions(storage, [0, 2, 3, 5, 7])  # 1 is below the floor: collected, not missing
    await _floor(storage, 2)
    assert await branch_log.check_branch(storage, "main") == [(PREFIX, "versions missing: [4, 6]")]


async def test_only_the_first_ten_missing_versions_are_listed(storage: MemoryStorage) -> None:
    await _versions(storage, [0, 20])
    assert await branch_log.check_branch(storage, "main") == [
        (PREFIX, f"versions missing: {list(range(1, 11))}")
    ]


async def test_a_damaged_hint_is_named_after_missing_versions(storage: MemoryStorage) -> None:
    await _versions(storage, [0, 2])
    await storage.put(TIP, b'{"version": -1}')
    [missing, (key, problem)] = await branch_log.check_branch(storage, "main")
    assert missing == (PREFIX, "versions missing: [1]")
    assert key == TIP
    assert problem.startswith(f"{storage.url}/{TIP}: tip hint does not parse")


async def test_a_hint_past_the_tip(storage: MemoryStorage) -> None:
    snapshots = await _versions(storage, [0, 1, 2, 3])
    await _hint(storage, 7, snapshots[3])
    assert await branch_log.check_branch(storage, "main") == [
        (TIP, "names version 7, past the tip")
    ]


async def test_a_hint_that_disagrees_with_its_version_even_at_the_floor(
    storage: MemoryStorage,
) -> None:
    snapshots = await _versions(storage, [2, 3])
    await _floor(storage, 2)
    await _hint(storage, 2, snapshots[3])
    assert await branch_log.check_branch(storage, "main") == [(TIP, "disagrees with version 2")]
    await _hint(storage, 3, snapshots[2])
    assert await branch_log.check_branch(storage, "main") == [(TIP, "disagrees with version 3")]


async def test_a_hint_below_the_floor_is_not_compared(storage: MemoryStorage) -> None:
    """Readers ignore a hint below the floor, so fsck does not hold it to its version."""
    snapshots = await _versions(storage, [1, 2, 3])  # 1 is below the floor, not yet deleted
    await _floor(storage, 2)
    await _hint(storage, 1, snapshots[3])
    assert await branch_log.check_branch(storage, "main") == []


# ---- versions_after ----------------------------------------------------------------------------


async def test_a_base_just_below_the_floor_still_rebases(storage: MemoryStorage) -> None:
    """GC removed the session's base but kept every version after it: nothing to replay is lost."""
    snapshots = await _versions(storage, [3, 4, 5])
    await _floor(storage, 3)
    await _hint(storage, 5, snapshots[5])
    expected = [BranchVersion(v, snapshots[v]) for v in (3, 4, 5)]
    assert await branch_log.versions_after(storage, "main", 2) == expected
    await storage.delete([TIP])  # without the hint, probing finds the same versions
    assert await branch_log.versions_after(storage, "main", 2) == expected


async def test_a_base_whose_successor_was_collected_expires(storage: MemoryStorage) -> None:
    snapshots = await _versions(storage, [3, 4])
    await _floor(storage, 3)
    await _hint(storage, 4, snapshots[4])
    for hint in (True, False):
        if not hint:
            await storage.delete([TIP])
        with pytest.raises(SessionExpiredError) as caught:
            await branch_log.versions_after(storage, "main", 1)
        assert str(caught.value).startswith(
            "branch 'main': this session stands on version 1, but garbage collection kept only "
            "versions from 3 on"
        )


async def test_no_versions_after_the_tip_with_or_without_a_hint(storage: MemoryStorage) -> None:
    snapshots = await _versions(storage, [0, 1, 2])
    await _hint(storage, 2, snapshots[2])
    assert await branch_log.versions_after(storage, "main", 2) == []
    await storage.delete([TIP])
    assert await branch_log.versions_after(storage, "main", 2) == []


async def test_rivals_beyond_one_fetch_window_are_all_returned(storage: MemoryStorage) -> None:
    """More rivals than are fetched at once (64): every window's versions are kept, in order."""
    snapshots = await _versions(storage, list(range(151)))
    await _hint(storage, 140, snapshots[140])  # lagging: the last ten are found by probing
    after = await branch_log.versions_after(storage, "main", 3)
    assert after == [BranchVersion(v, snapshots[v]) for v in range(4, 151)]


class _CollectedDuringRead(MemoryStorage):
    """A storage where garbage collection raises the floor to 3 (deleting versions 0-2) right
    after the first read of the floor has returned the old one."""

    collected = False

    async def get(self, key: str) -> bytes:
        data = await super().get(key)
        if key == FLOOR and not self.collected:
            self.collected = True
            await _floor(self, 3)
            await self.delete([branch_version_key("main", v) for v in range(3)])
        return data


async def test_versions_collected_after_the_floor_was_read_expire_the_session() -> None:
    storage = _CollectedDuringRead(uuid.uuid4().hex)
    snapshots = await _versions(storage, [0, 1, 2, 3])
    await _floor(storage, 0)
    await _hint(storage, 3, snapshots[3])
    with pytest.raises(SessionExpiredError) as caught:
        await branch_log.versions_after(storage, "main", 1)
    assert "branch 'main': this session stands on version 1" in str(caught.value)
    assert "kept only versions from 3 on" in str(caught.value)


# ---- collect_versions --------------------------------------------------------------------------


async def test_a_version_written_exactly_at_the_cutoff_is_kept(storage: MemoryStorage) -> None:
    """The rule deletes versions created *before* the cutoff; one created at it is kept."""
    snapshots = await _versions(storage, [0, 1, 2])
    cutoff = datetime(2024, 1, 1, tzinfo=UTC)
    modified = {0: cutoff - timedelta(microseconds=1), 1: cutoff, 2: cutoff + timedelta(hours=1)}
    deleted = await branch_log.collect_versions(storage, "main", modified, cutoff)
    assert deleted == [branch_version_key("main", 0)]
    kept = [FLOOR, TIP, branch_version_key("main", 1), branch_version_key("main", 2)]
    assert sorted(await storage.list(PREFIX)) == sorted(kept)
    assert await branch_log.read_floor(storage, "main") == 1
    assert await branch_log.read_tip(storage, "main") == BranchVersion(2, snapshots[2])


async def test_a_run_after_an_interrupted_one_deletes_below_the_old_floor(
    storage: MemoryStorage,
) -> None:
    """An earlier run raised the floor to 5 and died before deleting: this run, whose cutoff
    keeps everything, still deletes what is below that floor and never lowers it."""
    await _versions(storage, list(range(7)))
    await _floor(storage, 5)
    cutoff = datetime(2024, 1, 1, tzinfo=UTC)
    deleted = await branch_log.collect_versions(
        storage, "main", dict.fromkeys(range(7), cutoff), cutoff
    )
    assert deleted == [branch_version_key("main", v) for v in range(5)]
    assert await branch_log.read_floor(storage, "main") == 5
    assert sorted(await storage.list(PREFIX)) == sorted(
        [FLOOR, branch_version_key("main", 5), branch_version_key("main", 6)]
    )


async def test_thousands_of_versions_are_deleted_in_batches(
    storage: MemoryStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshots = await _versions(storage, list(range(2501)))
    cutoff = datetime(2024, 1, 1, tzinfo=UTC)
    modified = dict.fromkeys(range(2501), cutoff - timedelta(days=1))
    batches: list[int] = []
    real = storage.delete

    async def delete(keys: Iterable[str]) -> None:
        keys = list(keys)
        batches.append(len(keys))
        await real(keys)

    monkeypatch.setattr(storage, "delete", delete)
    await branch_log.collect_versions(storage, "main", modified, cutoff)
    assert batches == [1000, 1000, 500]
    assert sorted(await storage.list(PREFIX)) == sorted(
        [FLOOR, TIP, branch_version_key("main", 2500)]
    )
    assert await branch_log.read_tip(storage, "main") == BranchVersion(2500, snapshots[2500])


# ---- create_version ----------------------------------------------------------------------------


def test_a_stale_commit_on_a_branch_deleted_since_does_not_land() -> None:
    """The stale writer re-creates a collected version below the floor of a branch whose tip is
    now a tombstone: its snapshot is in no history, so it must be removed and refused."""
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    setup = repo.writable_session()
    zarr.create_array(setup.store, name="a", shape=(2,), chunks=(1,), dtype="i4", fill_value=0)
    setup.commit("array")
    repo.create_branch("dev", repo.lookup_branch("main"))
    stale = repo.writable_session(branch="dev")
    zarr.open_array(stale.store, path="a")[0] = 1
    for value in (2, 3):
        session = repo.writable_session(branch="dev")
        zarr.open_array(session.store, path="a")[1] = value
        session.commit(f"a[1] = {value}")
    repo.delete_branch("dev")
    repo.garbage_collect(datetime.now(UTC) + timedelta(seconds=1))
    storage = repo.async_repository.storage
    kept = sorted(k for k in sync(storage.list("refs/branch.dev/")) if k[-1].isdigit())
    with pytest.raises(SessionExpiredError) as caught:
        stale.commit("too late")
    assert str(caught.value).startswith(
        "branch 'dev': this session stands on version 0, but garbage collection kept only "
        "versions from 3 on"
    )
    assert sorted(k for k in sync(storage.list("refs/branch.dev/")) if k[-1].isdigit()) == kept
    assert "dev" not in repo.list_branches()


class _HintWritesFail(MemoryStorage):
    async def put(self, key: str, data: bytes) -> None:
        if key == TIP:
            raise StorageError(f"{self.url}: writing '{key}' failed: injected")
        await super().put(key, data)


async def test_a_hint_that_fails_to_land_does_not_fail_the_version() -> None:
    """The version is created (the commit landed); the hint is best effort and only lags."""
    storage = _HintWritesFail(uuid.uuid4().hex)
    snapshots = await _versions(storage, [0])
    record = BranchVersion(1, SnapshotId.generate())

    async def never(tip: SnapshotId, snapshot: SnapshotId) -> bool:
        raise AssertionError("above the floor: no history walk")

    assert await branch_log.create_version(storage, "main", record, is_ancestor=never)
    assert not await storage.exists(TIP)
    assert await branch_log.read_tip(storage, "main") == record
    assert await branch_log.read_version(storage, "main", 0) == BranchVersion(0, snapshots[0])


async def test_a_damaged_version_is_a_format_error_naming_its_key(storage: MemoryStorage) -> None:
    await _versions(storage, [0])
    key = branch_version_key("main", 1)
    await storage.put(key, b"not json")
    with pytest.raises(FormatError) as caught:
        await branch_log.read_tip(storage, "main")
    assert str(caught.value).startswith(f"{storage.url}/{key}: ref does not parse")
