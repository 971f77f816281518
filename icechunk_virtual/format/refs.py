"""Branch and tag refs: the only mutable pointers, made safe by put-if-absent.

A branch is a sequence of versions ``refs/branch.<name>/<version>``, each naming a snapshot; a commit
creates the next version with put-if-absent, so two writers can never both win one. A deleted branch
ends with a tombstone version. Beside the versions, ``tip.json`` is a hint naming the newest version
its writer knew of, and ``floor.json`` the lowest version garbage collection kept
(:mod:`icechunk_virtual.repository.branch_log` says how they are used). A tag is one object ``refs/tag.<name>/ref.json`` created once; deleting
it adds ``refs/tag.<name>/deleted`` and the name can never be reused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from icechunk_virtual.errors import FormatError, InvalidInputError
from icechunk_virtual.format.ids import SnapshotId

__all__ = [
    "BRANCH_PREFIX",
    "TAG_PREFIX",
    "BranchVersion",
    "branch_floor_key",
    "branch_tip_key",
    "branch_version_key",
    "branch_versions_prefix",
    "decode_floor",
    "encode_floor",
    "parse_branch_version_key",
    "tag_deleted_key",
    "tag_key",
    "validate_ref_name",
]

BRANCH_PREFIX = "refs/branch."
TAG_PREFIX = "refs/tag."
_VERSION_DIGITS = 12
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


def validate_ref_name(name: str, *, kind: str) -> str:
    """``name`` if it is a valid branch/tag name (letters, digits, ``_.-``; no ``/``)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"{kind} name {name!r} is invalid: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter, digit or '_'"
        )
    return name


def branch_versions_prefix(name: str) -> str:
    return f"{BRANCH_PREFIX}{name}/"


def branch_version_key(name: str, version: int) -> str:
    return f"{BRANCH_PREFIX}{name}/{version:0{_VERSION_DIGITS}d}"


def branch_tip_key(name: str) -> str:
    return f"{BRANCH_PREFIX}{name}/tip.json"


def branch_floor_key(name: str) -> str:
    return f"{BRANCH_PREFIX}{name}/floor.json"


def parse_branch_version_key(key: str) -> tuple[str, int] | None:
    """``(branch, version)`` for a branch version key, ``None`` for any other key."""
    if not key.startswith(BRANCH_PREFIX):
        return None
    name, sep, version = key[len(BRANCH_PREFIX) :].partition("/")
    if not sep or len(version) != _VERSION_DIGITS or not version.isdigit():
        return None
    return name, int(version)


def tag_key(name: str) -> str:
    return f"{TAG_PREFIX}{name}/ref.json"


def tag_deleted_key(name: str) -> str:
    return f"{TAG_PREFIX}{name}/deleted"


@dataclass(frozen=True, slots=True)
class BranchVersion:
    """One version of a branch: the snapshot it names, or a tombstone if the branch was deleted."""

    version: int
    snapshot_id: SnapshotId | None
    """``None`` for a tombstone."""

    @property
    def deleted(self) -> bool:
        return self.snapshot_id is None

    def to_bytes(self) -> bytes:
        """The version record (its number is in its key)."""
        return json.dumps(self._fields()).encode()

    def to_hint_bytes(self) -> bytes:
        """The ``tip.json`` hint naming this version."""
        return json.dumps({"version": self.version, **self._fields()}).encode()

    def _fields(self) -> dict[str, object]:
        if self.snapshot_id is None:
            return {"deleted": True}
        return {"snapshot": str(self.snapshot_id)}

    @classmethod
    def from_bytes(cls, version: int, data: bytes, *, where: str) -> BranchVersion:
        try:
            doc = json.loads(data)
            if doc.get("deleted"):
                return cls(version, None)
            return cls(version, SnapshotId.parse(doc["snapshot"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FormatError(f"{where}: ref does not parse: {exc!r}") from exc

    @classmethod
    def from_hint_bytes(cls, data: bytes, *, where: str) -> BranchVersion:
        version = _version_field(data, "version", what="tip hint", where=where)
        return cls.from_bytes(version, data, where=where)


def encode_floor(version: int) -> bytes:
    return json.dumps({"floor": version}).encode()


def decode_floor(data: bytes, *, where: str) -> int:
    return _version_field(data, "floor", what="branch floor", where=where)


def _version_field(data: bytes, key: str, *, what: str, where: str) -> int:
    """A JSON document's non-negative integer ``key``, or :class:`FormatError`."""
    try:
        value = json.loads(data)[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{key} {value!r} is not a non-negative integer")
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"{where}: {what} does not parse: {exc!r}") from exc
    return value


def encode_tag(snapshot_id: SnapshotId) -> bytes:
    return json.dumps({"snapshot": str(snapshot_id)}).encode()


def decode_tag(data: bytes, *, where: str) -> SnapshotId:
    try:
        return SnapshotId.parse(json.loads(data)["snapshot"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"{where}: tag does not parse: {exc!r}") from exc
