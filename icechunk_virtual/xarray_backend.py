"""The xarray backend: ``xr.open_dataset(repo_url, engine="icechunk_virtual", ...)``.

It opens the repository (a URL, or a :class:`~icechunk_virtual.Repository` already open — or takes
a read-only :class:`~icechunk_virtual.Session` or its store), takes a read-only session on a
branch, tag, snapshot or time, and hands the session's Zarr store to xarray's Zarr backend, so CF
decoding and lazy loading behave as they do for any Zarr store. ``open_datatree`` and
``open_groups_as_dict`` open every group below ``group`` the same way.

The keywords are xarray's Zarr engine's, with the same meaning, plus where to read (``branch``,
``tag``, ``snapshot_id``, ``as_of``, ``source_options``) and ``task_bytes``. The Zarr keywords
that cannot mean anything for a repository snapshot are refused with the reason: ``mode`` other
than ``"r"`` (write through ``repo.writable_session().store``), ``zarr_format=2`` (a repository
holds Zarr v3) and ``store=`` (pass the repository instead). ``consolidated`` is accepted and
changes nothing: a snapshot already holds every node's metadata in one object.

**Dask chunks.** Each variable's preferred chunks are groups of whole stored chunks of about
``task_bytes`` decoded (64 MiB by default; :mod:`~icechunk_virtual.zarr.task_chunks`), so
``chunks={}`` makes tasks that each read many chunks through the batched pipeline, and
``chunks="auto"`` aligns with them. ``task_bytes=0`` advertises the stored chunks themselves. An
explicit ``chunks=`` is honoured as given (xarray warns where it splits a preferred group).

The arrays are opened with :func:`~icechunk_virtual.zarr.read_pipeline.read_config`: our codec
pipeline (each pool task fetches a slice of the chunks in one store call and decodes zlib/shuffle
chunks straight into the output) and faster zlib and shuffle decoders under the standard codec
names. The choice is made when an array is opened and stays with it, so other zarr arrays in the
process are not affected. xarray reads through subclasses of its own zarr backend classes
(:mod:`icechunk_virtual.zarr.xarray_internals`) whose basic and orthogonal reads run zarr's async
reading code to its end in the calling thread, so dask's threads read side by side.

Datasets opened here pickle (to dask workers, other processes): their read-only session travels
as its address and is reopened where it arrives (:mod:`icechunk_virtual.repository.reopen`).

This module sits on the top floor with the sync API: it accepts an open
:class:`~icechunk_virtual.Repository` as well as a URL.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import xarray as xr
import zarr
from xarray.backends import BackendEntrypoint
from xarray.backends.store import StoreBackendEntrypoint

from icechunk_virtual.errors import InvalidInputError
from icechunk_virtual.synchronous import Repository, Session
from icechunk_virtual.zarr.read_pipeline import read_config
from icechunk_virtual.zarr.store import IcechunkVirtualStore
from icechunk_virtual.zarr.task_chunks import DEFAULT_TASK_BYTES
from icechunk_virtual.zarr.xarray_internals import InlineReadingStore

__all__ = ["IcechunkVirtualBackend"]

_Source = str | os.PathLike[str] | Repository | Session | IcechunkVirtualStore


class IcechunkVirtualBackend(BackendEntrypoint):
    """Opens a branch, tag or snapshot of an icechunk_virtual repository as a Dataset."""

    description = "Open a versioned icechunk_virtual repository (virtual and native chunks)"
    url = "https://github.com/icechunk-virtual/icechunk_virtual"
    open_dataset_parameters = (
        "filename_or_obj", "drop_variables", "branch", "tag", "snapshot_id", "as_of", "group",
        "storage_options", "source_options", "task_bytes", "mask_and_scale", "decode_times",
        "decode_timedelta", "use_cftime", "concat_characters", "decode_coords", "mode",
        "consolidated", "zarr_format", "store", "engine", "use_zarr_fill_value_as_mask",
        "cache_members",
    )  # fmt: skip

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: _Source,
        *,
        drop_variables: str | Iterable[str] | None = None,
        branch: str | None = None,
        tag: str | None = None,
        snapshot_id: str | None = None,
        as_of: datetime | None = None,
        group: str | None = None,
        storage_options: dict[str, Any] | None = None,
        source_options: dict[str, dict[str, Any]] | None = None,
        task_bytes: int = DEFAULT_TASK_BYTES,
        mask_and_scale: bool = True,
        decode_times: Any = True,
        decode_timedelta: Any = None,
        use_cftime: bool | None = None,
        concat_characters: bool = True,
        decode_coords: Any = True,
        mode: str = "r",
        consolidated: bool | None = None,
        zarr_format: int | None = None,
        store: Any = None,
        engine: Any = None,
        use_zarr_fill_value_as_mask: bool | None = None,
        cache_members: bool = True,
    ) -> xr.Dataset:
        _check_zarr_keywords(mode, zarr_format, store)
        session = _readonly_store(
            filename_or_obj, branch=branch, tag=tag, snapshot_id=snapshot_id, as_of=as_of,
            storage_options=storage_options, source_options=source_options,
        )  # fmt: skip
        with zarr.config.set(read_config()):
            opened = InlineReadingStore.open_group(
                session, group=group, mode="r", consolidated=False, zarr_format=3,
                use_zarr_fill_value_as_mask=use_zarr_fill_value_as_mask,
                cache_members=cache_members,
            )  # fmt: skip
            opened.task_bytes = task_bytes
            return StoreBackendEntrypoint().open_dataset(
                opened,
                drop_variables=drop_variables,
                mask_and_scale=mask_and_scale,
                decode_times=decode_times,
                decode_timedelta=decode_timedelta,
                use_cftime=use_cftime,
                concat_characters=concat_characters,
                decode_coords=decode_coords,
            )

    def open_groups_as_dict(  # type: ignore[override]
        self,
        filename_or_obj: _Source,
        *,
        drop_variables: str | Iterable[str] | None = None,
        group: str | None = None,
        task_bytes: int = DEFAULT_TASK_BYTES,
        mode: str = "r",
        consolidated: bool | None = None,
        zarr_format: int | None = None,
        **options: Any,
    ) -> dict[str, xr.Dataset]:
        """Every group at or below ``group`` (the root by default), by path, as a Dataset;
        ``options`` are :meth:`open_dataset`'s (where to read, and xarray's decoding)."""
        _check_zarr_keywords(mode, zarr_format, None)
        where = {k: options.pop(k, None) for k in _WHERE}
        session = _readonly_store(filename_or_obj, **where)
        parent = "/" + (group or "").strip("/")
        with zarr.config.set(read_config()):
            stores = InlineReadingStore.open_store(
                session, group=parent, mode="r", consolidated=False, zarr_format=3
            )
            groups = {}
            for path, opened in stores.items():
                opened.task_bytes = task_bytes
                name = "/" + path.removeprefix(parent).strip("/")
                groups[name] = StoreBackendEntrypoint().open_dataset(
                    opened, drop_variables=drop_variables, **options
                )
        return groups

    def open_datatree(  # type: ignore[override]
        self, filename_or_obj: _Source, **kwargs: Any
    ) -> xr.DataTree:
        """The groups of :meth:`open_groups_as_dict` as one tree."""
        return xr.DataTree.from_dict(self.open_groups_as_dict(filename_or_obj, **kwargs))

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        return isinstance(filename_or_obj, Repository | Session | IcechunkVirtualStore)


def _check_zarr_keywords(mode: str, zarr_format: int | None, store: Any) -> None:
    """Refuse, with the reason, the Zarr engine's keywords a repository snapshot cannot honour."""
    if mode != "r":
        raise InvalidInputError(
            f"mode={mode!r}: the icechunk_virtual engine reads a snapshot; to write, use "
            "ds.to_zarr(repo.writable_session(branch).store, mode=...) and commit"
        )
    if zarr_format not in (None, 3):
        raise InvalidInputError(f"zarr_format={zarr_format!r}: a repository holds Zarr v3 only")
    if store is not None:
        raise InvalidInputError(
            "store=: pass the repository (a URL, a Repository, or a read-only Session or its "
            "store) as the first argument instead"
        )


_WHERE = ("branch", "tag", "snapshot_id", "as_of", "storage_options", "source_options")
"""The keywords that choose what to read (:func:`_readonly_store`'s)."""


def _readonly_store(
    source: _Source,
    *,
    branch: str | None,
    tag: str | None,
    snapshot_id: str | None,
    as_of: datetime | None,
    storage_options: dict[str, Any] | None,
    source_options: dict[str, dict[str, Any]] | None,
) -> IcechunkVirtualStore:
    """The store of the read-only session the keywords name."""
    if isinstance(source, Session | IcechunkVirtualStore):
        chosen = [k for k, v in {"branch": branch, "tag": tag, "snapshot_id": snapshot_id,
                                 "as_of": as_of}.items() if v is not None]  # fmt: skip
        if chosen:
            raise InvalidInputError(
                f"{', '.join(chosen)}: a session is already at one snapshot; pass the "
                "repository to choose another"
            )
        return source.store if isinstance(source, Session) else source
    repo = (
        source
        if isinstance(source, Repository)
        else Repository.open(
            os.fspath(source), storage_options=storage_options, source_options=source_options
        )
    )
    return repo.readonly_session(branch, tag=tag, snapshot_id=snapshot_id, as_of=as_of).store
