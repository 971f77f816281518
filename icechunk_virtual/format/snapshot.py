"""Snapshots: immutable JSON documents naming every node of one version of the repository.

A snapshot holds its parent's id, when and why it was written, the node tree (each group's or
array's ``zarr.json`` document) and, per array, the list of manifests holding its chunk refs with the
coordinate range each covers. It is written once under ``snapshots/<id>`` and never changed after a
branch points to it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from icechunk_virtual.errors import FormatError
from icechunk_virtual.format.ids import ManifestId, SnapshotId

__all__ = [
    "LEDGER_KEY",
    "ManifestRef",
    "NodeKind",
    "NodeSnapshot",
    "Snapshot",
    "SnapshotInfo",
    "snapshot_key",
]

_SNAPSHOT_FORMAT = 1

LEDGER_KEY = "icechunk_virtual.ingest"
"""Snapshot metadata key of an ingest commit. Its value is ``{"ledger": "nodes"}``: the sources
an ingest recorded live in the reserved node tree (``ingestion/ledger.py``). Repositories
written before kept the whole ledger here (``{"groups": {group: {location: checksum}}}``) in
every ingest commit, so expiry keeps each branch's newest snapshot carrying the key."""


def snapshot_key(snapshot_id: SnapshotId) -> str:
    return f"snapshots/{snapshot_id}"


class NodeKind(StrEnum):
    GROUP = "group"
    ARRAY = "array"


@dataclass(frozen=True, slots=True)
class ManifestRef:
    """One manifest file of an array and the chunk coordinates it covers."""

    id: ManifestId
    rows: int
    """Number of chunk refs in the file."""
    first: tuple[int, ...]
    """Lexicographically smallest chunk coordinate in the file."""
    last: tuple[int, ...]
    """Lexicographically largest chunk coordinate in the file."""
    extent: tuple[int, ...]
    """Per-dimension maximum coordinate + 1 (the grid the file's coordinates fit in)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "rows": self.rows,
            "first": list(self.first),
            "last": list(self.last),
            "extent": list(self.extent),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ManifestRef:
        return cls(
            id=ManifestId.parse(doc["id"]),
            rows=int(doc["rows"]),
            first=tuple(doc["first"]),
            last=tuple(doc["last"]),
            extent=tuple(doc["extent"]),
        )


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    """A group or array as a snapshot records it."""

    path: str
    """Absolute node path: ``/`` for the root, ``/a/b`` below it."""
    kind: NodeKind
    zarr_json: Mapping[str, Any]
    """The node's Zarr v3 metadata document, parsed."""
    manifests: tuple[ManifestRef, ...] = field(default=())
    """For arrays: the manifests holding its chunk refs, sorted by coordinate."""
    text: str | None = None
    """The document as zarr wrote it (UTF-8 JSON text), so a store returns those very bytes
    (and ``getsize`` agrees with them); ``None`` for nodes written before it was kept."""

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind.value}
        if self.text is not None:
            doc["zarr_json_text"] = self.text  # parsed again on load: one copy, not two
        else:
            doc["zarr_json"] = self.zarr_json
        if self.manifests:
            doc["manifests"] = [m.to_json() for m in self.manifests]
        return doc

    @classmethod
    def from_json(cls, path: str, doc: Mapping[str, Any]) -> NodeSnapshot:
        text = doc.get("zarr_json_text")
        return cls(
            path=path,
            kind=NodeKind(doc["kind"]),
            zarr_json=json.loads(text) if text is not None else doc["zarr_json"],
            manifests=tuple(ManifestRef.from_json(m) for m in doc.get("manifests", ())),
            text=text,
        )

    @property
    def ndim(self) -> int:
        return len(self.zarr_json.get("shape", ()))


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """What ``ancestry`` reports of a snapshot."""

    id: SnapshotId
    parent_id: SnapshotId | None
    written_at: datetime
    """When the snapshot was written (UTC)."""
    message: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    original_parent_id: SnapshotId | None = None
    """The parent this snapshot was committed on, if expiry has since relinked it (else None)."""

    @property
    def committed_parent_id(self) -> SnapshotId | None:
        """The parent at commit time, whatever expiry did to the history since."""
        return self.original_parent_id or self.parent_id


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One immutable version of the repository."""

    info: SnapshotInfo
    nodes: Mapping[str, NodeSnapshot]
    """Every node by absolute path."""

    @property
    def id(self) -> SnapshotId:
        return self.info.id

    def to_bytes(self) -> bytes:
        info = self.info
        document = {
            "format": _SNAPSHOT_FORMAT,
            "id": str(info.id),
            "parent_id": str(info.parent_id) if info.parent_id else None,
            "written_at": info.written_at.isoformat(),
            "message": info.message,
            "metadata": dict(info.metadata),
            **(
                {"original_parent_id": str(info.original_parent_id)}
                if info.original_parent_id
                else {}
            ),
            "nodes": {path: node.to_json() for path, node in sorted(self.nodes.items())},
        }
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str) -> Snapshot:
        try:
            doc = json.loads(data)
            if doc.get("format") != _SNAPSHOT_FORMAT:
                raise FormatError(f"{where}: unknown snapshot format {doc.get('format')!r}")
            parent = doc["parent_id"]
            info = SnapshotInfo(
                id=SnapshotId.parse(doc["id"]),
                parent_id=SnapshotId.parse(parent) if parent else None,
                written_at=datetime.fromisoformat(doc["written_at"]).astimezone(UTC),
                message=doc["message"],
                metadata=doc.get("metadata", {}),
                original_parent_id=(
                    SnapshotId.parse(doc["original_parent_id"])
                    if doc.get("original_parent_id")
                    else None
                ),
            )
            nodes = {path: NodeSnapshot.from_json(path, n) for path, n in doc["nodes"].items()}
        except FormatError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FormatError(f"{where}: snapshot does not parse: {exc!r}") from exc
        return cls(info=info, nodes=nodes)
