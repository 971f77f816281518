"""Keeping a repository small and sound: expiring history, collecting garbage, checking.

Async functions over an :class:`~icechunk_virtual.AsyncRepository`; the sync
:class:`~icechunk_virtual.Repository` has each as a method.
"""

from icechunk_virtual.maintenance.expire import ExpireReport, expire_snapshots
from icechunk_virtual.maintenance.fsck import FsckProblem, FsckReport, fsck
from icechunk_virtual.maintenance.gc import GCReport, garbage_collect

__all__ = [
    "ExpireReport",
    "FsckProblem",
    "FsckReport",
    "GCReport",
    "expire_snapshots",
    "fsck",
    "garbage_collect",
]
