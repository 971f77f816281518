"""Ingest of archive files, one commit a call (plan -> scan -> check -> write -> ledger -> commit).

Built on the async repository; :func:`icechunk_virtual.ingest` and
:meth:`icechunk_virtual.Repository.ingest` are its synchronous entry points.
"""

from icechunk_virtual.ingestion.orchestrate import IngestReport, ingest_into
from icechunk_virtual.ingestion.plan import IngestPlan, OnChanged

__all__ = ["IngestPlan", "IngestReport", "OnChanged", "ingest_into"]
