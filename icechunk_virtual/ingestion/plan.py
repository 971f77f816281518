"""Planning an ingest: which of the given sources are new, changed or already ingested.

A plan is made before anything is scanned, from the sources' checksums and the group's ledger:
re-running a scheduled job over the same list finds nothing to do without reading any file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from icechunk_virtual._sync import sync
from icechunk_virtual.errors import InvalidInputError, StaleSourceError
from icechunk_virtual.ingestion.ledger import Ledgers
from icechunk_virtual.ingestion.locations import location
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


@dataclass(frozen=True, slots=True)
class IngestPlan:
    """The sources of one ingest call, sorted against the group's ledger."""

    group: str
    """The group written to (``""``: the root)."""
    ledger: dict[str, str | None]
    """The group's ledger before this ingest: source location -> checksum."""
    added: list[str]
    """Sources not in the ledger."""
    changed: list[str]
    """Sources in the ledger with another checksum now."""
    skipped: list[str]
    """Sources in the ledger, unchanged (and not scanned again)."""
    scan: list[str]
    """Sources to scan, in order: with ``concat_dim`` every source of the group (the combined
    dataset is rebuilt from all), otherwise only the new and changed ones."""
    checksums: dict[str, str | None]
    """The checksum to record for every source in :attr:`scan`."""
    checked: frozenset[str]
    """The sources whose checksum was taken now (the others' is the ledger's)."""

    @property
    def is_empty(self) -> bool:
        """Nothing is new or changed: the ingest commits nothing."""
        return not self.added and not self.changed


def checksums(urls: Sequence[str], options: Mapping[str, Any]) -> dict[str, str | None]:
    """Every source's checksum by location, taken before it is scanned (a file that changes
    afterwards is caught at read time as stale, never read as what was scanned)."""
    locations = [location(u) for u in urls]
    return dict(zip(locations, sync(fetch_checksums(locations, options)), strict=True))


def plan_ingest(
    urls: Sequence[str],
    *,
    ledgers: Ledgers,
    group: str,
    concatenated: bool,
    on_changed: OnChanged,
    options: Mapping[str, Any],
    check_ingested: bool = True,
) -> IngestPlan:
    """Sort ``urls`` against the group's ledger (see :class:`IngestPlan`).

    With ``check_ingested=False`` only the sources not in the ledger are looked at: the others
    are taken as unchanged (the plan then costs nothing per source ingested before).

    Raises
    ------
    InvalidInputError
        ``urls`` is a string or empty.
    StaleSourceError
        A source changed and ``on_changed`` is :attr:`OnChanged.ERROR`.
    """
    if isinstance(urls, str) or not urls:
        raise InvalidInputError("ingest needs a non-empty list of URLs")
    ledger = ledgers.get(group, {})
    listed = list(dict.fromkeys(location(u) for u in urls))
    looked_at = listed if check_ingested else [u for u in listed if u not in ledger]
    given = {**{u: ledger[u] for u in listed if u in ledger}, **checksums(looked_at, options)}
    added = [u for u in listed if u not in ledger]
    changed = [u for u in listed if u in ledger and ledger[u] != given[u]]
    skipped = [u for u in listed if u in ledger and ledger[u] == given[u]]
    if changed and on_changed is OnChanged.ERROR:
        raise StaleSourceError(
            f"{changed[0]} changed since it was ingested (checksum {ledger[changed[0]]} -> "
            f"{given[changed[0]]}); pass on_changed='reingest' to scan it again"
        )
    if concatenated:
        scan = sorted(set(ledger) | set(given))
        sums = {u: given.get(u, ledger.get(u)) for u in scan}
    else:
        scan = added + changed
        sums = {u: given[u] for u in scan}
    return IngestPlan(group, ledger, added, changed, skipped, scan, sums, frozenset(looked_at))


def recheck_unlisted(
    plan: IngestPlan, on_changed: OnChanged, options: Mapping[str, Any]
) -> IngestPlan:
    """``plan`` with the current checksums of the sources it rescans without having checked them
    (a rebuild of a combined dataset scans every source of the group, listed or not): a file
    that changed since it was ingested is never scanned anew under its old checksum.

    Raises :class:`StaleSourceError` for a changed one when ``on_changed`` is ``ERROR``; with
    ``REINGEST`` it is reported as changed and recorded with its new checksum.
    """
    unlisted = [u for u in plan.scan if u in plan.ledger and u not in plan.checked]
    if not unlisted:
        return plan
    now = checksums(unlisted, options)
    changed = [u for u in unlisted if now[u] != plan.ledger[u]]
    if changed and on_changed is OnChanged.ERROR:
        raise StaleSourceError(
            f"{changed[0]} changed since it was ingested (checksum {plan.ledger[changed[0]]} -> "
            f"{now[changed[0]]}); rebuilding this dataset rescans it: pass on_changed='reingest'"
        )
    return replace(plan, changed=plan.changed + changed, checksums={**plan.checksums, **now},
                   checked=plan.checked | set(now))  # fmt: skip
