"""Planning an ingest: which of the given sources are new, changed or already ingested.

A plan is made before anything is scanned, from the sources' checksums and the group's ledger:
re-running a scheduled job over the same list finds nothing to do without reading any file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cached_property
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from icechunk_virtual._sync import sync
from icechunk_virtual.errors import InvalidInputError, StaleSourceError
from icechunk_virtual.ingestion.ledger import Ledger
from icechunk_virtual.ingestion.locations import locations
from icechunk_virtual.io.checksums import fetch_checksums

__all__ = ["IngestPlan", "OnChanged", "checksums", "plan_ingest", "recheck_unlisted"]


class OnChanged(StrEnum):
    """What ``ingest`` does with a source whose checksum differs from the one it recorded."""

    ERROR = "error"
    """Raise :class:`StaleSourceError` and commit nothing."""
    REINGEST = "reingest"
    """Scan the source again and replace its refs."""

    @classmethod
    def parse(cls, value: OnChanged | str) -> OnChanged:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(repr(c.value) for c in cls)
            raise InvalidInputError(f"on_changed must be one of {choices}, not {value!r}") from None


@dataclass(frozen=True)
class IngestPlan:
    """The sources of one ingest call, sorted against the group's ledger."""

    ledger: Ledger
    """The group's ledger before this ingest."""
    added: list[str]
    """Sources not in the ledger."""
    changed: list[str]
    """Sources in the ledger with another checksum now."""
    skipped: list[str]
    """Sources in the ledger, taken as unchanged (and not scanned again)."""
    checksums: dict[str, str | None]
    """The checksum taken now of every added and changed source."""
    concatenated: bool
    """Whether the group's files make one dataset (``concat_dim``)."""
    skipped_checked: bool
    """Whether the skipped sources' checksums were taken now (else they are the ledger's)."""

    @property
    def group(self) -> str:
        """The group written to (``""``: the root)."""
        return self.ledger.group

    @property
    def is_empty(self) -> bool:
        """Nothing is new or changed: the ingest commits nothing."""
        return not self.added and not self.changed

    @cached_property
    def scan(self) -> list[str]:
        """The sources a rebuild scans, in order: with ``concat_dim`` every source of the group
        (the combined dataset is rebuilt from all), otherwise only the new and changed ones."""
        if self.concatenated:
            return sorted({*self.ledger.as_dict, *self.added})
        return self.added + self.changed

    def checksum(self, url: str) -> str | None:
        """The checksum to record for a source of :attr:`scan`."""
        return self.checksums[url] if url in self.checksums else self.ledger.as_dict[url]


def checksums(urls: Sequence[str], options: Mapping[str, Any]) -> dict[str, str | None]:
    """Every source's checksum by location, taken before it is scanned (a file that changes
    afterwards is caught at read time as stale, never read as what was scanned)."""
    found = locations(urls).to_pylist()
    return dict(zip(found, sync(fetch_checksums(found, options)), strict=True))


def plan_ingest(
    urls: Sequence[str],
    *,
    ledger: Ledger,
    concatenated: bool,
    on_changed: OnChanged,
    options: Mapping[str, Any],
    check_ingested: bool = True,
) -> IngestPlan:
    """Sort ``urls`` against the group's ledger (see :class:`IngestPlan`), in Arrow: the cost
    per listed source is a hash lookup (and its checksum, unless ``check_ingested=False``: then
    only the sources not in the ledger are looked at, the others taken as unchanged).

    Raises
    ------
    InvalidInputError
        ``urls`` is a string or empty.
    StaleSourceError
        A source changed and ``on_changed`` is :attr:`OnChanged.ERROR`.
    """
    if isinstance(urls, str) or not urls:
        raise InvalidInputError("ingest needs a non-empty list of URLs")
    listed = locations(urls)
    rows = ledger.rows(listed)
    known = pc.is_valid(rows)
    new = pc.filter(listed, pc.invert(known))
    if check_ingested:
        now = _checksum_array(listed, options)
        differs = pc.and_(known, pc.not_equal(now, pc.take(ledger.checksums, rows)))
        changed = pc.filter(listed, differs)
        sums = {**_as_dict(new, pc.filter(now, pc.invert(known))),
                **_as_dict(changed, pc.filter(now, differs))}  # fmt: skip
        skipped = pc.filter(listed, pc.and_(known, pc.invert(differs)))
    else:
        changed, skipped = pa.array([], pa.string()), pc.filter(listed, known)
        sums = _as_dict(new, _checksum_array(new, options))
    plan = IngestPlan(ledger, new.to_pylist(), changed.to_pylist(), skipped.to_pylist(), sums,
                      concatenated, check_ingested)  # fmt: skip
    if plan.changed and on_changed is OnChanged.ERROR:
        url = plan.changed[0]
        raise StaleSourceError(
            f"{url} changed since it was ingested (checksum {ledger.as_dict[url]} -> "
            f"{sums[url]}); pass on_changed='reingest' to scan it again"
        )
    return plan


def _checksum_array(urls: pa.Array, options: Mapping[str, Any]) -> pa.Array:
    """The sources' checksums now, as the ledger stores them (``""``: none)."""
    found = sync(fetch_checksums(urls.to_pylist(), options))
    return pa.array([c or "" for c in found], pa.string())


def _as_dict(urls: pa.Array, sums: pa.Array) -> dict[str, str | None]:
    return {u: c or None for u, c in zip(urls.to_pylist(), sums.to_pylist(), strict=True)}


def recheck_unlisted(
    plan: IngestPlan, on_changed: OnChanged, options: Mapping[str, Any]
) -> IngestPlan:
    """``plan`` with the current checksums of the sources it rescans without having checked them
    (a rebuild of a combined dataset scans every source of the group, listed or not): a file
    that changed since it was ingested is never scanned anew under its old checksum.

    Raises :class:`StaleSourceError` for a changed one when ``on_changed`` is ``ERROR``; with
    ``REINGEST`` it is reported as changed and recorded with its new checksum.
    """
    checked = set(plan.checksums) | (set(plan.skipped) if plan.skipped_checked else set())
    unlisted = [u for u in plan.scan if u not in checked]
    if not unlisted:
        return plan
    now = checksums(unlisted, options)
    recorded = plan.ledger.as_dict
    changed = [u for u in unlisted if now[u] != recorded[u]]
    if changed and on_changed is OnChanged.ERROR:
        raise StaleSourceError(
            f"{changed[0]} changed since it was ingested (checksum {recorded[changed[0]]} -> "
            f"{now[changed[0]]}); rebuilding this dataset rescans it: pass on_changed='reingest'"
        )
    return replace(plan, changed=plan.changed + changed, checksums={**plan.checksums, **now})
