"""A commit whose outcome is unknown (the branch-ref write's answer and its read-back both lost):
the session remembers it, its next ``commit()`` settles it, and nothing is applied twice."""

from __future__ import annotations

from typing import Any

import pytest
import zarr

import icechunk_virtual as iv
from icechunk_virtual.errors import StorageError

from ...conftest import RepoLocation


def _lose_ref_answers(monkeypatch: pytest.MonkeyPatch, repo: iv.Repository, *, land: bool) -> None:
    """The next branch-ref create on ``repo`` lands (or not) and then fails as a lost answer."""
    storage = repo.async_repository.storage
    real = storage.put_if_absent
    state = {"armed": True}

    async def put_if_absent(key: str, data: bytes) -> bool:
        if state["armed"] and key.startswith("refs/branch."):
            state["armed"] = False
            if land:
                await real(key, data)
            raise StorageError(f"{storage.url}: creating '{key}' failed: connection reset")
        return await real(key, data)

    monkeypatch.setattr(storage, "put_if_absent", put_if_absent)


def _repo(location: RepoLocation) -> iv.Repository:
    repo = iv.Repository.create(location.url, storage_options=location.storage_options)
    session = repo.writable_session()
    zarr.create_array(session.store, name="a", shape=(4,), chunks=(1,), dtype="i4", fill_value=0)
    session.commit("array")
    return repo


def _values(repo: iv.Repository) -> list[int]:
    return zarr.open_array(repo.readonly_session().store, path="a", mode="r")[:].tolist()  # type: ignore[no-any-return]


@pytest.mark.parametrize("landed", [True, False], ids=["landed", "lost"])
def test_the_next_commit_settles_an_unknown_outcome(
    memory_location: RepoLocation, monkeypatch: pytest.MonkeyPatch, landed: bool
) -> None:
    repo = _repo(memory_location)
    history = len(list(repo.ancestry(branch="main")))
    session = repo.writable_session()
    zarr.open_array(session.store, path="a")[0] = 7
    _lose_ref_answers(monkeypatch, repo, land=landed)
    with pytest.raises(iv.CommitOutcomeUnknownError, match="may have landed") as caught:
        session.commit("once")
    assert isinstance(caught.value, iv.StorageError)  # transient, as a handler would treat it
    again = session.commit("once")  # checks first: never applies the change twice
    tips = [i.id for i in repo.ancestry(branch="main")]
    assert tips[0] == again and len(tips) == history + 1
    assert _values(repo) == [7, 0, 0, 0]
    assert not session.has_uncommitted_changes
    message = next(repo.ancestry(branch="main")).message
    assert message == "once"


def test_settle_commit_says_whether_it_landed(
    memory_location: RepoLocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo(memory_location)
    session = repo.writable_session()
    assert session.settle_commit() is None  # nothing to settle
    zarr.open_array(session.store, path="a")[1] = 5
    _lose_ref_answers(monkeypatch, repo, land=True)
    with pytest.raises(iv.CommitOutcomeUnknownError):
        session.commit("landed")
    landed = session.settle_commit()
    assert landed == repo.lookup_branch("main")
    assert session.snapshot_id == landed and session.settle_commit() is None


def test_a_rival_after_a_lost_attempt_is_rebased_past(
    memory_location: RepoLocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo(memory_location)
    ours, theirs = repo.writable_session(), repo.writable_session()
    zarr.open_array(ours.store, path="a")[0] = 1
    zarr.open_array(theirs.store, path="a")[3] = 3
    _lose_ref_answers(monkeypatch, repo, land=False)
    with pytest.raises(iv.CommitOutcomeUnknownError):
        ours.commit("ours")
    theirs.commit("theirs")  # wins the version our lost attempt wanted
    ours.commit("ours")
    assert _values(repo) == [1, 0, 0, 3]
    assert [i.message for i in repo.ancestry(branch="main")][:2] == ["ours", "theirs"]


def test_s3_lost_answer_and_failed_read_back(
    s3_location: RepoLocation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On S3 the storage reads a lost create back; when that read fails too, the outcome is
    unknown (not a raw connection error, and not a conflict with the session's own snapshot)."""
    import s3fs

    repo = _repo(s3_location)
    session = repo.writable_session()
    zarr.open_array(session.store, path="a")[2] = 9
    storage: Any = repo.async_repository.storage
    real_pipe, real_get = s3fs.S3FileSystem._pipe_file, storage.get
    state = {"armed": True}

    async def pipe(self: Any, path: str, data: bytes, **kwargs: Any) -> Any:
        result = await real_pipe(self, path, data, **kwargs)
        if state["armed"] and "/refs/branch." in path and kwargs.get("mode") == "create":
            state["armed"] = False
            state["read_back"] = True
            raise ConnectionResetError("the answer was lost")
        return result

    async def get(key: str) -> bytes:
        if state.pop("read_back", False):
            raise OSError("the read-back failed too")
        return await real_get(key)

    monkeypatch.setattr(s3fs.S3FileSystem, "_pipe_file", pipe)
    monkeypatch.setattr(storage, "get", get)
    with pytest.raises(iv.CommitOutcomeUnknownError, match="outcome unknown"):
        session.commit("s3")
    landed = session.commit("s3")
    assert repo.lookup_branch("main") == landed
    assert _values(repo) == [0, 0, 9, 0]
    assert next(repo.ancestry(branch="main")).message == "s3"
