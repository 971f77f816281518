"""Branches, tags, commits and resets against a plain-dict model of what each ref should show."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import zarr
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

import icechunk_virtual as iv

names = st.sampled_from(["a", "b", "c"])


class RepositoryModel(RuleBasedStateMachine):
    """The model: per branch its tip's array contents, per tag its snapshot's contents."""

    snapshots = Bundle("snapshots")

    @initialize(target=snapshots)
    def create(self) -> iv.SnapshotId:
        self.repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
        session = self.repo.writable_session()
        zarr.open_group(session.store, mode="a").create_array(
            "x", shape=(4,), chunks=(2,), dtype="i4", fill_value=0
        )
        first = session.commit("array")
        self.contents: dict[iv.SnapshotId, list[int]] = {first: [0, 0, 0, 0]}
        self.branches: dict[str, iv.SnapshotId] = {"main": first}
        self.tags: dict[str, iv.SnapshotId] = {}
        self.deleted_tags: set[str] = set()
        return first

    @rule(
        target=snapshots,
        branch=st.sampled_from(["main", "a", "b"]),
        chunk=st.integers(0, 1),
        value=st.integers(1, 99),
    )
    def commit(self, branch: str, chunk: int, value: int) -> iv.SnapshotId:
        if branch not in self.branches:
            with pytest.raises(iv.RefNotFoundError):
                self.repo.writable_session(branch)
            return self.branches["main"]
        session = self.repo.writable_session(branch)
        zarr.open_array(session.store, path="x")[2 * chunk : 2 * chunk + 2] = value
        snapshot = session.commit(f"{branch} {chunk}={value}")
        expected = list(self.contents[self.branches[branch]])
        expected[2 * chunk : 2 * chunk + 2] = [value, value]
        self.contents[snapshot] = expected
        self.branches[branch] = snapshot
        return snapshot

    @rule(name=names, snapshot=snapshots)
    def create_branch(self, name: str, snapshot: iv.SnapshotId) -> None:
        if name in self.branches:
            with pytest.raises(iv.AlreadyExistsError):
                self.repo.create_branch(name, snapshot)
        else:
            self.repo.create_branch(name, snapshot)
            self.branches[name] = snapshot

    @rule(name=names)
    def delete_branch(self, name: str) -> None:
        if name in self.branches:
            self.repo.delete_branch(name)
            del self.branches[name]
        else:
            with pytest.raises(iv.RefNotFoundError):
                self.repo.delete_branch(name)

    @rule(branch=st.sampled_from(["main", "a"]), snapshot=snapshots)
    def reset(self, branch: str, snapshot: iv.SnapshotId) -> None:
        if branch in self.branches:
            self.repo.reset_branch(branch, snapshot)
            self.branches[branch] = snapshot

    @rule(name=names, snapshot=snapshots)
    def tag(self, name: str, snapshot: iv.SnapshotId) -> None:
        if name in self.tags or name in self.deleted_tags:
            with pytest.raises(iv.AlreadyExistsError):
                self.repo.create_tag(name, snapshot)
        else:
            self.repo.create_tag(name, snapshot)
            self.tags[name] = snapshot

    @rule(name=names)
    def delete_tag(self, name: str) -> None:
        if name in self.tags:
            self.repo.delete_tag(name)
            del self.tags[name]
            self.deleted_tags.add(name)
        else:
            with pytest.raises(iv.RefNotFoundError):
                self.repo.delete_tag(name)

    @invariant()
    def refs_show_the_model(self) -> None:
        if not hasattr(self, "repo"):
            return
        assert self.repo.list_branches() == sorted(self.branches)
        assert self.repo.list_tags() == sorted(self.tags)
        for branch, snapshot in self.branches.items():
            assert self.repo.lookup_branch(branch) == snapshot
            session = self.repo.readonly_session(branch)
            values = zarr.open_array(session.store, path="x", mode="r")[:]
            np.testing.assert_array_equal(values, self.contents[snapshot])
        for tag, snapshot in self.tags.items():
            assert self.repo.lookup_tag(tag) == snapshot


RepositoryModel.TestCase.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)
test_repository_model = RepositoryModel.TestCase
