"""Transaction logs: what one commit changed, for conflict detection and ``diff``.

Written under ``transactions/<snapshot id>`` with the snapshot. Chunk coordinates are kept as
compressed int32 arrays, so a commit of a million chunks logs a few megabytes at most and a rival
writer checks overlap with one vectorised set intersection per array.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from icechunk_virtual.errors import FormatError
from icechunk_virtual.format.ids import SnapshotId

__all__ = ["TransactionLog", "transaction_key"]

type Coords = npt.NDArray[np.integer[Any]]


def transaction_key(snapshot_id: SnapshotId) -> str:
    return f"transactions/{snapshot_id}"


def _encode_coords(coords: Coords) -> dict[str, object]:
    raw = np.ascontiguousarray(coords, dtype="<i4").tobytes()
    return {
        "ndim": int(coords.shape[1]),
        "rows": int(coords.shape[0]),  # the bytes alone cannot tell for 0-d arrays
        "data": base64.b64encode(zlib.compress(raw)).decode(),
    }


def _decode_coords(doc: Mapping[str, object]) -> Coords:
    ndim = int(doc["ndim"])  # type: ignore[call-overload]  # JSON value checked by int()
    raw = zlib.decompress(base64.b64decode(str(doc["data"])))
    rows = int(doc["rows"]) if "rows" in doc else -1  # type: ignore[call-overload]
    return np.frombuffer(raw, dtype="<i4").reshape(rows, ndim)


@dataclass(frozen=True, slots=True)
class TransactionLog:
    """The paths and chunks one commit changed."""

    new_nodes: frozenset[str] = field(default=frozenset())
    deleted_nodes: frozenset[str] = field(default=frozenset())
    updated_metadata: frozenset[str] = field(default=frozenset())
    chunks: Mapping[str, Coords] = field(default_factory=dict)
    """Per array path: the (n, ndim) chunk coordinates written or deleted."""
    bulk: frozenset[str] = field(default=frozenset())
    """Arrays whose refs were streamed (spilled) in such numbers that ``chunks`` lists only the
    last of them; any chunk change to such an array by a concurrent commit is a conflict."""

    def is_empty(self) -> bool:
        return not (self.new_nodes or self.deleted_nodes or self.updated_metadata or self.chunks)

    def to_bytes(self) -> bytes:
        document = {
            "new_nodes": sorted(self.new_nodes),
            "deleted_nodes": sorted(self.deleted_nodes),
            "updated_metadata": sorted(self.updated_metadata),
            "chunks": {path: _encode_coords(c) for path, c in sorted(self.chunks.items())},
            "bulk": sorted(self.bulk),
        }
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str) -> TransactionLog:
        try:
            doc = json.loads(data)
            return cls(
                new_nodes=frozenset(doc["new_nodes"]),
                deleted_nodes=frozenset(doc["deleted_nodes"]),
                updated_metadata=frozenset(doc["updated_metadata"]),
                chunks={path: _decode_coords(c) for path, c in doc["chunks"].items()},
                bulk=frozenset(doc.get("bulk", ())),
            )
        except (ValueError, KeyError, TypeError, zlib.error) as exc:
            raise FormatError(f"{where}: transaction log does not parse: {exc!r}") from exc
