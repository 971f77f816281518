"""Branch and tag pointers: a branch's next version, and tags' create-once records.

A branch is a sequence of versions ``refs/branch.<name>/<version>``, each created with
put-if-absent, so two writers can never both write one version (:mod:`.branch_log`); a deleted
branch's last version is a tombstone. A tag is one record created once; deleting it adds a second record, so a tag's
name is never reused.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from icechunk_virtual.errors import AlreadyExistsError, ObjectNotFoundError, RefNotFoundError
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.format.refs import (
    BRANCH_PREFIX,
    TAG_PREFIX,
    BranchVersion,
    decode_tag,
    encode_tag,
    parse_branch_version_key,
    tag_deleted_key,
    tag_key,
    validate_ref_name,
)

if TYPE_CHECKING:
    from icechunk_virtual.repository.objects import RepositoryObjects

__all__ = ["advance_branch", "create_tag", "list_branches", "list_tags", "lookup_tag"]


async def list_branches(objects: RepositoryObjects) -> list[str]:
    """Names of the branches whose newest version is not a tombstone, sorted."""
    keys = await objects.storage.list(BRANCH_PREFIX)
    names = {p[0] for p in map(parse_branch_version_key, keys) if p is not None}
    tips = await asyncio.gather(*(objects.latest_version(n) for n in names))
    return sorted(n for n, tip in zip(names, tips, strict=True) if tip and not tip.deleted)


async def advance_branch(
    objects: RepositoryObjects, name: str, snapshot_id: SnapshotId | None, *, create: bool
) -> None:
    """Write the branch's next version (a snapshot, or a tombstone for ``None``)."""
    storage = objects.storage
    while True:
        latest = await objects.latest_version(name)
        exists = latest is not None and not latest.deleted
        if create and exists:
            raise AlreadyExistsError(f"{storage.url}: branch '{name}' already exists")
        if not create and not exists:
            raise RefNotFoundError(f"{storage.url}: no branch '{name}'")
        record = BranchVersion(latest.version + 1 if latest else 0, snapshot_id)
        if await objects.create_branch_version(name, record):
            return


async def create_tag(objects: RepositoryObjects, name: str, snapshot_id: SnapshotId) -> None:
    """Record tag ``name`` for a snapshot, once ever."""
    storage = objects.storage
    if await storage.exists(tag_deleted_key(name)):
        raise AlreadyExistsError(
            f"{storage.url}: tag '{name}' was deleted; tag names are never reused"
        )
    if not await storage.put_if_absent(tag_key(name), encode_tag(snapshot_id)):
        raise AlreadyExistsError(f"{storage.url}: tag '{name}' already exists")


async def lookup_tag(objects: RepositoryObjects, name: str) -> SnapshotId:
    """The snapshot a live tag names."""
    validate_ref_name(name, kind="tag")
    storage = objects.storage
    try:
        raw = await storage.get(tag_key(name))
    except ObjectNotFoundError as exc:
        raise RefNotFoundError(f"{storage.url}: no tag '{name}'") from exc
    if await storage.exists(tag_deleted_key(name)):
        raise RefNotFoundError(f"{storage.url}: tag '{name}' was deleted")
    return decode_tag(raw, where=f"{storage.url}/{tag_key(name)}")


async def list_tags(objects: RepositoryObjects) -> list[str]:
    """Names of the tags not deleted, sorted."""
    keys = set(await objects.storage.list(TAG_PREFIX))
    names = {k[len(TAG_PREFIX) :].partition("/")[0] for k in keys}
    return sorted(n for n in names if tag_key(n) in keys and tag_deleted_key(n) not in keys)
