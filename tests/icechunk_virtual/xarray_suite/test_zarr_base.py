"""xarray's own Zarr backend suite (``ZarrBase``), run against our repository.

As Icechunk runs it: each test's target is the store of a writable session on a fresh repository;
``to_zarr`` writes into it. Before each read the session commits what it wrote, and the dataset
is opened from a *read-only* session at the branch tip — once through xarray's ``engine="zarr"``
on our store, once through our own engine — so every round trip goes through a commit and the
snapshot it wrote, not through the writer's in-memory changes.

Skips carry their reasons next to them. Warnings are xarray's business here (its suite expects
some, e.g. zarr's note that consolidated metadata is not in the v3 spec), so the project's
warnings-are-errors rule is relaxed for this module.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import xarray as xr
import zarr
from xarray.tests.conftest import time_unit  # noqa: F401  # a fixture the suite uses
from xarray.tests.test_backends import (  # noqa: F401  # fixtures the suite uses
    ZarrBase,
    default_zarr_format,
    tmp_store,
)

import icechunk_virtual as iv
from icechunk_virtual.zarr.store import IcechunkVirtualStore

pytestmark = pytest.mark.filterwarnings("default")


class _RepositoryRoundTrips(ZarrBase):
    """``ZarrBase`` over a fresh repository: write in a session, commit, read a snapshot."""

    def open_committed(self, store: IcechunkVirtualStore, **kwargs: Any) -> xr.Dataset:
        raise NotImplementedError

    @contextlib.contextmanager
    def create_zarr_target(self) -> Iterator[IcechunkVirtualStore]:
        if zarr.config.config["default_zarr_format"] == 2:
            pytest.skip("a repository holds Zarr v3 metadata only")
        with tempfile.TemporaryDirectory() as tmp:
            self._url = f"{tmp}/repo"
            self._repo = iv.Repository.create(self._url)
            yield self._repo.writable_session().store

    def _commit(self, store: Any) -> None:
        session = getattr(store, "session", None)
        if session is not None and not session.read_only and session.has_uncommitted_changes:
            iv.Session(session).commit("written by xarray's test")

    @contextlib.contextmanager
    def open(self, path: Any, **kwargs: Any) -> Iterator[xr.Dataset]:
        if not isinstance(path, IcechunkVirtualStore):
            with super().open(path, **kwargs) as ds:
                yield ds
            return
        self._commit(path)
        with self.open_committed(path, **kwargs) as ds:
            yield ds

    @pytest.mark.parametrize("consolidated", [False, True, None])
    def test_roundtrip_consolidated(self, consolidated: Any) -> None:
        if consolidated is not False:
            pytest.skip("a repository has no consolidated metadata: its snapshot is the index")
        super().test_roundtrip_consolidated(consolidated)

    @pytest.mark.parametrize("consolidated", [False, True, None])
    @pytest.mark.parametrize("compute", [False, True])
    @pytest.mark.parametrize("use_dask", [False, True])
    @pytest.mark.parametrize("write_empty", [False, True, None])
    def test_write_region(
        self, consolidated: Any, compute: Any, use_dask: Any, write_empty: Any
    ) -> None:
        if consolidated is not False:
            pytest.skip("a repository has no consolidated metadata: its snapshot is the index")
        super().test_write_region(consolidated, compute, use_dask, write_empty)


class TestZarrEngineOverOurStore(_RepositoryRoundTrips):
    """``xr.open_dataset(read_only_session.store, engine="zarr")``."""

    def open_committed(self, store: IcechunkVirtualStore, **kwargs: Any) -> Any:
        readonly = self._repo.readonly_session("main")
        return xr.open_dataset(readonly.store, engine="zarr", mode="r", **kwargs)


STORED_CHUNKS_TESTS = {
    "test_warning_on_bad_chunks",
    "test_chunked_datetime64_or_timedelta64",
    "test_chunked_cftime_datetime",
}
"""xarray's tests that assert the Zarr engine's chunking: ``chunks={}`` gives the *stored* chunks,
and explicit chunks warn only where they split a stored chunk. Our engine's preferred chunks are
groups of stored chunks by default (as zarr's are shards, so ``chunks={}`` is fast); these tests
run with ``task_bytes=0``, which advertises the stored chunks, and the default's behaviour is
tested in ``test_xarray_backend.py`` (``test_chunks_group_stored_chunks_into_tasks``)."""


class TestOurEngine(_RepositoryRoundTrips):
    """``xr.open_dataset(repo_url, engine="icechunk_virtual")``."""

    @pytest.fixture(autouse=True)
    def _chunking(self, request: pytest.FixtureRequest) -> None:
        name = request.node.originalname
        self.engine_kwargs: dict[str, Any] = (
            {"task_bytes": 0} if name in STORED_CHUNKS_TESTS else {}
        )

    def open_committed(self, store: IcechunkVirtualStore, **kwargs: Any) -> Any:
        return xr.open_dataset(self._url, engine="icechunk_virtual", **self.engine_kwargs, **kwargs)
