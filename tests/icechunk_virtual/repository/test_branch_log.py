"""Branch versions: the tip in a constant number of requests, whatever the history's length; a
hint that lags, is missing or damaged never changes the answer; garbage collection removes old
versions by its rule, and a session whose base it removed gets ``SessionExpiredError`` — never a
commit that lands beside the branch (the stray version re-created under a collected number).

The oracle for "which version is the tip" is the storage listing, read independently of the code
under test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import zarr

import icechunk_virtual as iv
from icechunk_virtual._sync import sync
from icechunk_virtual.format.refs import (
    BranchVersion,
    branch_tip_key,
    branch_version_key,
    parse_branch_version_key,
)
from icechunk_virtual.maintenance.gc import garbage_collect
from icechunk_virtual.repository import branch_log
from icechunk_virtual.storage import Storage

from ...conftest import RepoLocation

_METHODS = ("get", "get_range", "put", "put_if_absent", "list", "list_modified", "exists", "delete")


@contextmanager
def counted(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Count the storage requests made inside the block, by method (``ref-`` + method for
    requests naming a key under ``refs/``)."""
    counts: Counter[str] = Counter()
    with monkeypatch.context() as patch:
        for name in _METHODS:
            real = getattr(storage, name)

            async def wrapper(*args: Any, _real: Any = real, _name: str = name) -> Any:
                on_refs = isinstance(args[0], str) and args[0].startswith("refs/")
                counts[f"ref-{_name}" if on_refs else _name] += 1
                return await _real(*args)

            patch.setattr(storage, name, wrapper)
        yield counts


def listed_versions(storage: Storage, name: str = "main") -> list[int]:
    keys = sync(storage.list(f"refs/branch.{name}/"))
    return sorted(p[1] for k in keys if (p := parse_branch_version_key(k)) and p[0] == name)


def _repo(location: RepoLocation) -> iv.Repository:
    repo = iv.Repository.create(location.url, storage_options=location.storage_options)
    session = repo.writable_session()
    zarr.create_array(session.store, name="a", shape=(4,), chunks=(1,), dtype="i4", fill_value=0)
    session.commit("array")
    return repo


def _grow(repo: iv.Repository, versions: int) -> None:
    """Give main ``versions`` more versions quickly (each names the current tip snapshot, as a
    reset to the same snapshot would), through the code under test's own create."""
    objects = repo.async_repository.objects
    tip = sync(objects.branch_tip("main"))

    async def grow() -> None:
        for version in range(tip.version + 1, tip.version + 1 + versions):
            assert await objects.create_branch_version(
                "main", BranchVersion(version, tip.snapshot_id)
            )

    sync(grow())


def _write(repo: iv.Repository, index: int, value: int) -> iv.SnapshotId:
    session = repo.writable_session()
    zarr.open_array(session.store, path="a")[index] = value
    return session.commit(f"a[{index}] = {value}")


def _values(repo: iv.Repository) -> list[int]:
    return zarr.open_array(repo.readonly_session().store, path="a", mode="r")[:].tolist()  # type: ignore[no-any-return]


def test_tip_costs_the_same_at_ten_and_ten_thousand_versions(
    memory_location: RepoLocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo(memory_location)
    storage = repo.async_repository.storage
    costs = []
    for grow_by in (10, 10_000):
        _grow(repo, grow_by)
        expected = listed_versions(storage)[-1]
        with counted(storage, monkeypatch) as tip_requests:
            tip = sync(repo.async_repository.objects.branch_tip("main"))
        assert tip.version == expected
        with counted(storage, monkeypatch) as commit_requests:
            _write(repo, 0, grow_by)
        assert listed_versions(storage)[-1] == expected + 1
        costs.append({k: n for k, n in commit_requests.items() if k.startswith("ref-")})
        assert tip_requests == Counter({"ref-get": 3})  # hint, floor, one probe: no listing
        assert not {"list", "ref-list", "list_modified"} & set(commit_requests)
    assert costs[0] == costs[1]
    assert _values(repo) == [10_000, 0, 0, 0]


def test_rebase_past_rivals_reads_each_once_without_listing(
    memory_location: RepoLocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo(memory_location)
    _grow(repo, 2_000)
    session = repo.writable_session()
    zarr.open_array(session.store, path="a")[3] = 3
    for i in range(5):
        _write(repo, 0, i)
    storage = repo.async_repository.storage
    with counted(storage, monkeypatch) as requests:
        session.commit("after five rivals")
    assert not {"list", "ref-list"} & set(requests)
    assert requests["ref-get"] == 2 + 5 + 1 + 1  # hint and floor, 5 rivals, 1 probe, 1 floor
    assert _values(repo) == [4, 0, 0, 3]


@pytest.mark.parametrize("damage", ["missing", "lagging", "garbage", "ahead-of-floor"])
def test_a_bad_hint_never_changes_the_tip(memory_location: RepoLocation, damage: str) -> None:
    repo = _repo(memory_location)
    _grow(repo, 5)
    storage = repo.async_repository.storage
    first = _write(repo, 1, 1)
    hint_key = branch_tip_key("main")
    old_hint = sync(storage.get(hint_key))
    second = _write(repo, 2, 2)
    if damage == "missing":
        sync(storage.delete([hint_key]))
    elif damage == "lagging":  # a slow writer put its older hint after a newer one
        sync(storage.put(hint_key, old_hint))
    elif damage == "garbage":
        sync(storage.put(hint_key, b'{"version": "x"}'))
    else:  # a hint naming a collected version: below the floor, so not trusted
        sync(storage.put(hint_key, BranchVersion(0, first).to_hint_bytes()))
        sync(storage.put("refs/branch.main/floor.json", b'{"floor": 3}'))
        sync(storage.delete([branch_version_key("main", v) for v in range(3)]))
    assert repo.lookup_branch("main") == second
    third = _write(repo, 3, 3)  # the next commit also finds the tip and lands on it
    assert [i.id for i in repo.ancestry(branch="main")][:3] == [third, second, first]
    assert _values(repo) == [0, 1, 2, 3]


def test_gc_keeps_the_tip_and_recent_versions(
    location: RepoLocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo(location)
    for i in range(4):
        _write(repo, 0, i)
    storage = repo.async_repository.storage
    cutoff = datetime.now(UTC) + timedelta(seconds=1)  # every version so far is older
    history = [i.id for i in repo.ancestry(branch="main")]
    report = repo.garbage_collect(cutoff - timedelta(hours=1))
    assert report.branch_versions == 0 and listed_versions(storage) == list(range(6))
    sync(storage.put(branch_tip_key("main"), BranchVersion(1, history[-2]).to_hint_bytes()))
    report = repo.garbage_collect(cutoff)
    assert report.branch_versions == 5 and listed_versions(storage) == [5]
    with counted(storage, monkeypatch) as requests:  # gc left a fresh hint: no listing
        assert repo.lookup_branch("main") == history[0]
    assert requests == Counter({"ref-get": 3})
    assert repo.garbage_collect(cutoff).branch_versions == 0
    assert [i.id for i in repo.ancestry(branch="main")] == history
    assert sync(branch_log.read_floor(storage, "main")) == 5
    assert repo.fsck().ok
    _write(repo, 1, 9)  # a session opened after gc commits as usual
    assert listed_versions(storage) == [5, 6] and _values(repo) == [3, 9, 0, 0]


def test_a_session_whose_base_gc_removed_is_expired_and_commits_nothing(
    location: RepoLocation,
) -> None:
    """The stale session's commit re-creates a collected version number (put-if-absent cannot
    tell): it must see the floor, delete that version, and raise — without the floor check it
    would report success for a commit that is on no branch."""
    repo = _repo(location)
    stale = repo.writable_session()  # base: version 1
    zarr.open_array(stale.store, path="a")[3] = 42
    for i in range(3):
        tip = _write(repo, 0, i)  # versions 2, 3, 4
    repo.garbage_collect(datetime.now(UTC) + timedelta(seconds=1))  # floor 4
    storage = repo.async_repository.storage
    with pytest.raises(iv.SessionExpiredError, match="version 1") as caught:
        stale.commit("too late")
    assert isinstance(caught.value, iv.ConflictError)
    assert listed_versions(storage) == [4]  # the stray version 2 is gone again
    assert repo.lookup_branch("main") == tip and _values(repo) == [2, 0, 0, 0]
    assert repo.fsck().ok
    with pytest.raises(iv.SessionExpiredError):
        stale.rebase()
    sync(storage.delete([branch_tip_key("main")]))  # without the hint, the floor alone decides
    with pytest.raises(iv.SessionExpiredError):
        stale.rebase()


def test_a_session_gc_left_its_versions_rebases(memory_location: RepoLocation) -> None:
    """GC removed versions older than the session's base only: it needs none of them."""
    repo = _repo(memory_location)
    _write(repo, 0, 1)
    session = repo.writable_session()  # base: version 2
    zarr.open_array(session.store, path="a")[3] = 3
    repo.garbage_collect(datetime.now(UTC) + timedelta(seconds=1))  # keeps 2 only
    _write(repo, 0, 2)  # version 3
    session.commit("rebased")
    assert listed_versions(repo.async_repository.storage) == [2, 3, 4]
    assert _values(repo) == [2, 0, 0, 3]


async def test_a_writer_paused_past_the_cutoff_still_landed(memory_location: RepoLocation) -> None:
    """A genuine version that gc removed before its writer read the floor (the writer paused for
    longer than the cutoff): the branch's history holds the snapshot, so the commit succeeded."""
    repo = await iv.AsyncRepository.create(memory_location.url)
    storage = repo.storage
    setup = await repo.writable_session()
    setup.set_node_metadata("/", {"zarr_format": 3, "node_type": "group"})
    await setup.commit("group")
    paused = await repo.writable_session()
    paused.set_node_metadata("/", {"zarr_format": 3, "node_type": "group", "attributes": {"x": 1}})
    real = storage.put_if_absent
    during: list[iv.SnapshotId] = []

    async def create_then_pause(key: str, data: bytes) -> bool:
        created = await real(key, data)
        if created and key == branch_version_key("main", 2) and not during:
            follower = await repo.writable_session()  # stands on the paused writer's commit
            follower.set_node_metadata(
                "/", {"zarr_format": 3, "node_type": "group", "attributes": {"x": 2}}
            )
            during.append(await follower.commit("while paused"))
            await garbage_collect(repo, datetime.now(UTC) + timedelta(seconds=1))
        return created

    storage.put_if_absent = create_then_pause  # type: ignore[method-assign]
    landed = await paused.commit("paused")
    assert during and await repo.lookup_branch("main") == during[0]
    history = [info.id async for info in repo.ancestry(branch="main")]
    assert history[:2] == [during[0], landed]
