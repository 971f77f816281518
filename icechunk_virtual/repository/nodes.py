"""Node paths and what the core needs to know of a node's ``zarr.json``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from icechunk_virtual.errors import InvalidInputError
from icechunk_virtual.format.snapshot import NodeKind

__all__ = ["RESERVED", "NodeView", "is_reserved", "normalize_path"]

RESERVED = "/.icechunk_virtual"
"""The tree this package keeps its own data in (the ingest ledger): versioned like any node,
hidden from the store's listings (zarr and xarray do not see it)."""


def is_reserved(path: str) -> bool:
    """Whether ``path`` (a node path) is in the :data:`RESERVED` tree."""
    return path == RESERVED or path.startswith(RESERVED + "/")


def normalize_path(path: str) -> str:
    """``/a/b`` for ``a/b``, ``/a/b/`` or ``/a/b``; ``/`` for the root."""
    if not isinstance(path, str):
        raise InvalidInputError(f"node path must be a string, got {path!r}")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise InvalidInputError(f"node path {path!r} may not contain '.' or '..'")
    return "/" + "/".join(parts)


@dataclass(frozen=True, slots=True)
class NodeView:
    """A node as a session sees it (committed or pending)."""

    path: str
    kind: NodeKind
    zarr_json: Mapping[str, Any]
    text: str | None = None
    """``zarr.json`` as written, when known (see ``NodeSnapshot.text``)."""

    def document(self) -> bytes:
        """The ``zarr.json`` bytes a store returns: as written, else the parsed document."""
        return self.text.encode() if self.text is not None else json.dumps(self.zarr_json).encode()

    @property
    def ndim(self) -> int:
        return len(self.zarr_json.get("shape", ()))
