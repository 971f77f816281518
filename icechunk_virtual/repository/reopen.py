"""Read-only sessions across processes: what a pickle carries, and reopening it on arrival.

A read-only session is a view of one immutable snapshot, so another process can rebuild it from
an address: how the repository's storage was opened (URL and the caller's storage options), the
caller's source options, the repository's settings and authorised source prefixes as this process
saw them, and the snapshot id. Nothing is read from storage to pickle; unpickling opens the
storage (no request), then reads the snapshot — once per process: each process keeps the
sessions it reopened (and one set of repository caches per repository), so the thousand tasks of
a dask graph that each carry the session share one reopened view and its manifest cache.

Credentials travel as the caller gave them: the options passed to ``Repository.open`` are part of
the pickle (never anything from the repository itself). To keep secrets out of task graphs, open
the repository without keys and let each worker's environment supply them (AWS environment
variables, instance roles), which fsspec reads on the worker.
"""

from __future__ import annotations

import os
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from icechunk_virtual._sync import sync
from icechunk_virtual.errors import InvalidInputError, NotPicklableError
from icechunk_virtual.format.config import RepositoryConfig
from icechunk_virtual.repository.objects import RepositoryObjects
from icechunk_virtual.storage import StorageAddress, open_storage

__all__ = ["SessionAddress", "pickled_session", "reopened"]

_KEPT_SESSIONS = 64
"""Reopened sessions a process keeps (each holds its snapshot; manifests live in the repo's cache)."""


@dataclass(frozen=True)
class SessionAddress:
    """Everything another process needs to reopen a read-only session."""

    storage: StorageAddress
    source_options: dict[str, dict[str, Any]]
    config: RepositoryConfig
    virtual_sources: tuple[str, ...]
    snapshot_id: str
    branch: str | None
    origin_pid: int = field(default_factory=os.getpid)
    """The process that pickled it: a ``memory://`` repository exists in that process only."""


class _Session(Protocol):
    """What pickling needs of a session (the session module imports this one, not the reverse)."""

    @property
    def read_only(self) -> bool: ...
    @property
    def branch(self) -> str | None: ...
    @property
    def snapshot_id(self) -> object: ...


def pickled_session(session: _Session, objects: RepositoryObjects) -> tuple[Any, ...]:
    """``session.__reduce__``: rebuild with :func:`reopened` from the session's address.

    Raises :class:`NotPicklableError` for a writable session (its changes live in this process)
    or storage that was not opened from a URL.
    """
    if not session.read_only:
        raise NotPicklableError(
            f"a writable session (branch '{session.branch}') cannot be pickled: its uncommitted "
            "changes live in this process; send session.fork() to workers and merge() the forks, "
            "or pickle repo.readonly_session(...) to read elsewhere"
        )
    storage = objects.storage.address
    if storage is None:
        raise NotPicklableError(
            f"{objects.storage.url}: this storage was built directly, not opened from a URL, so "
            "another process could not reopen it; open the repository with Repository.open(url)"
        )
    address = SessionAddress(
        storage=storage,
        source_options=objects.source_options,
        config=objects.config,
        virtual_sources=objects.virtual_sources,
        snapshot_id=str(session.snapshot_id),
        branch=session.branch,
    )
    return (reopened, (address, type(session)))


class _Reopened:
    """This process's reopened repositories and sessions (rebuilt after ``fork``)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.repositories: dict[bytes, RepositoryObjects] = {}
        self.sessions: OrderedDict[tuple[bytes, str], Any] = OrderedDict()


_reopened = _Reopened()


def _here() -> _Reopened:
    global _reopened
    if _reopened.pid != os.getpid():
        _reopened = _Reopened()
    return _reopened


def _repository_objects(address: SessionAddress, key: bytes, here: _Reopened) -> RepositoryObjects:
    objects = here.repositories.get(key)
    if objects is None:
        storage = open_storage(
            address.storage.url,
            storage_options=address.storage.storage_options,
            unsafe_single_writer=address.storage.unsafe_single_writer,
        )
        objects = RepositoryObjects(storage, address.config, source_options=address.source_options)
        objects.virtual_sources = address.virtual_sources
        here.repositories[key] = objects
    return objects


def reopened[S](address: SessionAddress, session_class: Callable[..., S]) -> S:
    """The read-only session at ``address`` in this process: built the first time, the same
    object afterwards.

    Raises
    ------
    InvalidInputError
        A ``memory://`` repository reached another process.
    SnapshotNotFoundError
        The snapshot is gone (expired and collected since it was pickled).
    """
    if address.storage.url.startswith("memory://") and address.origin_pid != os.getpid():
        raise InvalidInputError(
            f"{address.storage.url}: an in-memory repository lives in the process that created "
            f"it (pid {address.origin_pid}), so a session on it cannot be reopened in process "
            f"{os.getpid()}; put the repository on local disk or object storage"
        )
    here = _here()
    repo_key = pickle.dumps((address.storage, address.source_options))
    session_key = (repo_key, address.snapshot_id)
    with here.lock:
        found = here.sessions.get(session_key)
        if found is not None:
            here.sessions.move_to_end(session_key)
            return found  # type: ignore[no-any-return]
        objects = _repository_objects(address, repo_key, here)
    snapshot = sync(objects.load_snapshot(address.snapshot_id))
    session = session_class(objects, snapshot, branch=address.branch, version=None, read_only=True)
    with here.lock:
        session = here.sessions.setdefault(session_key, session)
        while len(here.sessions) > _KEPT_SESSIONS:
            here.sessions.popitem(last=False)
    return session
