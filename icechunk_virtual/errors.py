"""The one exception tree of icechunk_virtual.

Every error a user can see derives from :class:`IcechunkVirtualError`, grouped by what a handler
would do about it::

    IcechunkVirtualError
    ├── ConflictError                 another writer changed what this session changed; rebase or retry
    │   └── SessionExpiredError       the session's base left the branch's kept history (gc)
    ├── NotFoundError (KeyError)      the named object does not exist
    │   ├── RepositoryNotFoundError   no repository at the URL
    │   ├── RefNotFoundError          branch or tag
    │   ├── SnapshotNotFoundError
    │   ├── NodeNotFoundError         group or array path
    │   ├── ObjectNotFoundError       a repository object missing from storage
    │   └── SourceNotFoundError       a virtual chunk's source file
    ├── AlreadyExistsError            repository, branch or tag name taken
    ├── ReadOnlyError (ValueError)    write through a read-only session or store (as zarr raises)
    ├── NotPicklableError (TypeError) a writable session or its store pickled; fork() it instead
    ├── InvalidInputError (ValueError)
    │   ├── NoChangesToCommitError
    │   └── UnsupportedSourceError    a reader cannot express a feature of a source file
    ├── StorageError (OSError)        transient or backend failure; safe to retry
    │   ├── CommitOutcomeUnknownError a commit may have landed; commit() again settles it
    │   └── UnsafeStorageError        backend without atomic create
    ├── StaleSourceError              a virtual source changed since it was referenced
    ├── UnauthorizedSourceError       a virtual source outside the authorised prefixes
    ├── CorruptSourceError            a source file does not parse
    ├── CorruptChunkError             a chunk's bytes do not decode (array, chunk, codecs named)
    ├── FormatError                   a repository object does not parse
    └── InternalError

Multiple inheritance keeps builtin ``except KeyError`` / ``except ValueError`` working.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "AlreadyExistsError",
    "Conflict",
    "ConflictError",
    "CorruptChunkError",
    "CorruptSourceError",
    "FormatError",
    "IcechunkVirtualError",
    "IncompatibleSourcesError",
    "InternalError",
    "InvalidInputError",
    "NoChangesToCommitError",
    "NodeNotFoundError",
    "NotFoundError",
    "NotPicklableError",
    "ObjectNotFoundError",
    "ReadOnlyError",
    "RefNotFoundError",
    "RepositoryNotFoundError",
    "SessionExpiredError",
    "SnapshotNotFoundError",
    "SourceNotFoundError",
    "StaleSourceError",
    "StorageError",
    "UnauthorizedSourceError",
    "UnsafeStorageError",
    "UnsupportedSourceError",
]


class IcechunkVirtualError(Exception):
    """Base of every error raised by icechunk_virtual."""


@dataclass(frozen=True, slots=True)
class Conflict:
    """One path that two writers both changed."""

    path: str
    """The group or array path, e.g. ``/t2m``."""
    kind: str
    """What collided: ``chunks``, ``metadata``, ``new node``, ``deleted node``."""
    chunks: tuple[tuple[int, ...], ...] = field(default=())
    """Chunk coordinates both sides wrote (for ``kind == "chunks"``), at most a sample of them."""

    def describe(self) -> str:
        if self.chunks:
            shown = ", ".join("c/" + "/".join(map(str, c)) for c in self.chunks[:5])
            more = f" (+{len(self.chunks) - 5} more)" if len(self.chunks) > 5 else ""
            return f"'{self.path}' {self.kind} {shown}{more}"
        return f"'{self.path}' {self.kind}"


class ConflictError(IcechunkVirtualError):
    """Another session committed changes that overlap this session's changes.

    Attributes
    ----------
    branch
        The branch both sessions committed to.
    winner
        The snapshot id that won the race.
    conflicts
        The overlapping paths (and chunk coordinates).
    """

    def __init__(self, branch: str, winner: str, conflicts: Sequence[Conflict]) -> None:
        self.branch = branch
        self.winner = winner
        self.conflicts = tuple(conflicts)
        listed = "; ".join(c.describe() for c in self.conflicts)
        super().__init__(
            f"branch '{branch}' moved to {winner} while this session was open and both changed "
            f"{listed}; discard and redo the change on the new tip, or reset the branch"
        )


class SessionExpiredError(ConflictError):
    """The branch's versions after this session's base were garbage-collected.

    Garbage collection keeps every branch version newer than its cutoff; a session whose base is
    older cannot replay what happened since, so its changes were not committed. Open a new
    session and redo them.
    """

    def __init__(self, branch: str, version: int, floor: int) -> None:
        self.branch = branch
        self.winner = ""
        self.conflicts = ()
        IcechunkVirtualError.__init__(
            self,
            f"branch '{branch}': this session stands on version {version}, but garbage "
            f"collection kept only versions from {floor} on, so what was committed since cannot "
            "be replayed; nothing was committed: open a new session and redo the change",
        )


class NotFoundError(IcechunkVirtualError, KeyError):
    """The named object does not exist."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else ""


class RepositoryNotFoundError(NotFoundError):
    """No repository (``config.json``) at the URL."""


class RefNotFoundError(NotFoundError):
    """A branch or tag does not exist."""


class SnapshotNotFoundError(NotFoundError):
    """A snapshot id is not in the repository."""


class NodeNotFoundError(NotFoundError):
    """A group or array path does not exist in the snapshot."""


class ObjectNotFoundError(NotFoundError):
    """A repository object (snapshot, manifest, chunk, ref version) is missing from storage."""


class SourceNotFoundError(NotFoundError):
    """A virtual chunk's source file is missing."""


class AlreadyExistsError(IcechunkVirtualError):
    """A repository, branch or tag with that name already exists (or existed, for tags)."""


class ReadOnlyError(IcechunkVirtualError, ValueError):
    """A write was attempted through a read-only session or store."""


class NotPicklableError(IcechunkVirtualError, TypeError):
    """A writable session or its store was pickled (pickle's own convention is ``TypeError``)."""


class InvalidInputError(IcechunkVirtualError, ValueError):
    """An argument is malformed; the message names the bad field."""


class NoChangesToCommitError(InvalidInputError):
    """``commit`` was called on a session without changes."""


class StorageError(IcechunkVirtualError, OSError):
    """The storage backend failed; the operation may be retried."""


class CommitOutcomeUnknownError(StorageError):
    """A commit may have landed: the branch ref was written but the storage's answer was lost.

    The session remembers the attempt; call ``commit()`` again (or ``settle_commit()``) and it
    first checks whether that snapshot reached the branch, returning its id if so. Never redo
    the changes in a new session: they may be on the branch already.
    """


class UnsafeStorageError(StorageError):
    """The storage backend cannot create objects atomically, so commits would not be safe."""


class StaleSourceError(IcechunkVirtualError):
    """A virtual chunk's source changed after it was referenced."""


class UnauthorizedSourceError(IcechunkVirtualError):
    """A virtual chunk's source is outside every prefix the repository authorises."""


class UnsupportedSourceError(InvalidInputError):
    """A source file uses a feature its reader cannot express (file, variable, feature named)."""


class IncompatibleSourcesError(InvalidInputError):
    """Files cannot be combined along a dimension: the message names both files and what differs."""


class CorruptSourceError(IcechunkVirtualError):
    """A source file does not parse as the format its bytes claim."""


class CorruptChunkError(IcechunkVirtualError):
    """A chunk's bytes do not decode with its array's codecs (a damaged source or native chunk).

    Attributes
    ----------
    array
        The array's path.
    chunk
        The chunk's key (``c/0/3``).
    codecs
        The names of the array's codecs.
    """

    def __init__(self, array: str, chunk: str, codecs: Sequence[str], cause: BaseException) -> None:
        self.array, self.chunk, self.codecs = array, chunk, tuple(codecs)
        super().__init__(
            f"array '{array}' chunk {chunk}: its bytes do not decode with {', '.join(codecs)} "
            f"({type(cause).__name__}: {cause}); fsck(check_sources=True) checks every source"
        )


class FormatError(IcechunkVirtualError):
    """A repository object (snapshot, manifest, ref, config) does not parse."""


class InternalError(IcechunkVirtualError):
    """A broken invariant inside icechunk_virtual; please report it."""
