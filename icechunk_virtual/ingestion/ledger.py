"""The source ledger: per group, every source an ``ingest`` recorded, with its checksum.

Each ingest commit records the whole ledger in its metadata (under
:data:`~icechunk_virtual.format.snapshot.LEDGER_KEY`), so the newest such commit on a branch is
the ledger; expiry keeps it (see :mod:`icechunk_virtual.maintenance.expire`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from icechunk_virtual._sync import sync_iter
from icechunk_virtual.errors import RefNotFoundError
from icechunk_virtual.format.snapshot import LEDGER_KEY

if TYPE_CHECKING:
    from icechunk_virtual.repository import AsyncRepository

__all__ = ["Ledgers", "ledger_metadata", "read_ledgers"]

type Ledgers = dict[str, dict[str, str | None]]
"""Group path -> source location -> checksum."""


def read_ledgers(repo: AsyncRepository, branch: str) -> Ledgers:
    """The ledgers of every group ingested into on ``branch`` (empty for a new branch)."""
    try:
        for info in sync_iter(repo.ancestry(branch=branch)):
            record = info.metadata.get(LEDGER_KEY)
            if record is not None:
                groups = record.get("groups", {"": record.get("sources", {})})
                return {g: dict(sources) for g, sources in groups.items()}
    except RefNotFoundError:
        pass
    return {}


def ledger_metadata(ledgers: Ledgers) -> dict[str, Any]:
    """The commit metadata that records ``ledgers``."""
    return {LEDGER_KEY: {"groups": ledgers}}
