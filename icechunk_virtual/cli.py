"""The ``icechunk-virtual`` command: a repository from the shell.

    icechunk-virtual init REPO
    icechunk-virtual ingest REPO URL... [--concat-dim time] [--branch main] [--message M]
    icechunk-virtual log REPO [--branch main] [-n 20]
    icechunk-virtual branch REPO [NAME [--at SNAPSHOT]]    (no NAME: list branches)
    icechunk-virtual tag REPO [NAME [--at SNAPSHOT]]       (no NAME: list tags)
    icechunk-virtual diff REPO FROM TO                     (snapshot ids, branch or tag names)
    icechunk-virtual info REPO [--branch main]
    icechunk-virtual expire REPO --older-than AGE [--delete-expired-branches] [--delete-expired-tags]
    icechunk-virtual gc REPO [--older-than AGE]            (default: objects older than 1 day)
    icechunk-virtual fsck REPO [--check-sources]           (exit status 1 if anything is wrong)

AGE is a duration back from now (``30d``, ``12h``, ``90m``, ``45s``) or an ISO 8601 time.

Errors print as one line (``error: ...``) and exit with status 1 (2 for bad usage); ``--debug``
shows the traceback. ``--quiet`` hides progress bars and informational output.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from icechunk_virtual.errors import IcechunkVirtualError, InvalidInputError, NotFoundError
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.synchronous import Repository, ingest

__all__ = ["main", "main_exit"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        status = args.run(args)
    except (IcechunkVirtualError, OSError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return int(status or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="icechunk-virtual", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress or chatter")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, run: object, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help)
        sub.add_argument("repo", help="repository URL or path")
        sub.set_defaults(run=run)
        return sub

    command("init", _init, "create a repository")
    sub = command("ingest", _ingest, "scan archive files and commit their chunk refs")
    sub.add_argument("urls", nargs="+", metavar="URL")
    sub.add_argument("--concat-dim", help="combine the files along this dimension")
    sub.add_argument("--branch", default="main")
    sub.add_argument("--message", "-m")
    sub.add_argument("--on-changed", choices=("error", "reingest"), default="error")
    sub.add_argument(
        "--new-only",
        action="store_true",
        help="look only at the sources not ingested before (a daily job's fast path)",
    )
    sub = command("log", _log, "a branch's history, newest first")
    sub.add_argument("--branch", default="main")
    sub.add_argument("-n", type=int, default=20, help="at most this many snapshots")
    for kind, plural in (("branch", "branches"), ("tag", "tags")):
        sub = command(kind, _ref, f"list {plural}, or create one")
        sub.set_defaults(kind=kind)
        sub.add_argument("name", nargs="?")
        sub.add_argument("--at", help="snapshot id, branch or tag (default: main's tip)")
    sub = command("diff", _diff, "what changed between two snapshots")
    sub.add_argument("before")
    sub.add_argument("after")
    sub = command("info", _info, "a repository's branches, tags, sources and arrays")
    sub.add_argument("--branch", default="main")
    sub = command("expire", _expire, "drop old snapshots from every branch's history")
    sub.add_argument("--older-than", required=True, type=_cutoff, metavar="AGE")
    sub.add_argument("--delete-expired-branches", action="store_true")
    sub.add_argument("--delete-expired-tags", action="store_true")
    sub = command("gc", _gc, "delete objects no branch or tag reaches")
    sub.add_argument("--older-than", default=_cutoff("1d"), type=_cutoff, metavar="AGE")
    sub = command("fsck", _fsck, "check that everything a branch or tag reaches is intact")
    sub.add_argument("--check-sources", action="store_true", help="also stat every virtual source")
    return parser


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _cutoff(text: str) -> datetime:
    """A cutoff time from ``30d``/``12h``/``90m``/``45s``/``2w`` ago, or an ISO 8601 time."""
    match = _DURATION.match(text.strip())
    if match:
        seconds = float(match[1]) * _UNIT_SECONDS[match[2]]
        return datetime.now(UTC) - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (30d, 12h, 90m, 45s) nor an ISO 8601 time"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text)


def _resolve(repo: Repository, name: str) -> SnapshotId:
    """A snapshot id from an id, a branch name or a tag name."""
    if name in repo.list_branches():
        return repo.lookup_branch(name)
    if name in repo.list_tags():
        return repo.lookup_tag(name)
    try:
        return SnapshotId.parse(name)
    except InvalidInputError as exc:
        raise NotFoundError(f"{repo.url}: no branch, tag or snapshot named {name!r}") from exc


def _init(args: argparse.Namespace) -> None:
    repo = Repository.create(args.repo)
    _say(args, f"created {repo.url}")


def _ingest(args: argparse.Namespace) -> None:
    report = ingest(
        Repository.open(args.repo),
        args.urls,
        concat_dim=args.concat_dim,
        branch=args.branch,
        message=args.message,
        on_changed=args.on_changed,
        check_ingested=not args.new_only,
        progress=not args.quiet,
    )
    what = (
        f"{len(report.added)} added, {len(report.skipped)} skipped, {len(report.changed)} changed"
    )
    if report.snapshot_id is None:
        _say(args, f"nothing new: {what}")
    else:
        _say(args, f"committed {report.snapshot_id}: {what} ({report.seconds:.1f} s)")


def _log(args: argparse.Namespace) -> None:
    repo = Repository.open(args.repo)
    for i, info in enumerate(repo.ancestry(branch=args.branch)):
        if i >= args.n:
            break
        print(f"{info.id}  {info.written_at:%Y-%m-%d %H:%M:%S}  {info.message}")


def _ref(args: argparse.Namespace) -> None:
    """``branch`` and ``tag``: list them, or create one at a snapshot."""
    repo = Repository.open(args.repo)
    names, lookup, create = {
        "branch": (repo.list_branches, repo.lookup_branch, repo.create_branch),
        "tag": (repo.list_tags, repo.lookup_tag, repo.create_tag),
    }[args.kind]
    if args.name is None:
        for name in names():
            print(f"{name}  {lookup(name)}")
        return
    target = _resolve(repo, args.at or "main")
    create(args.name, target)
    _say(args, f"{args.kind} {args.name} at {target}")


def _diff(args: argparse.Namespace) -> None:
    repo = Repository.open(args.repo)
    diff = repo.diff(_resolve(repo, args.before), _resolve(repo, args.after))
    for label, paths in (
        ("new group", diff.new_groups), ("new array", diff.new_arrays),
        ("deleted group", diff.deleted_groups), ("deleted array", diff.deleted_arrays),
        ("updated group", diff.updated_groups), ("updated array", diff.updated_arrays),
    ):  # fmt: skip
        for path in sorted(paths):
            print(f"{label}: {path}")
    for path, chunks in sorted(diff.updated_chunks.items()):
        print(f"chunks changed: {path} ({len(chunks)})")


def _info(args: argparse.Namespace) -> None:
    import zarr

    repo = Repository.open(args.repo)
    print(f"repository: {repo.url}")
    print(f"branches: {', '.join(repo.list_branches())}")
    print(f"tags: {', '.join(repo.list_tags()) or '-'}")
    print(f"virtual sources: {', '.join(repo.virtual_sources) or '-'}")
    group = zarr.open_group(repo.readonly_session(args.branch).store, mode="r")
    for path, array in sorted(group.arrays(), key=lambda item: item[0]):
        print(f"  {path}  {array.shape}  {array.dtype}")
    for path, sub in sorted(group.groups(), key=lambda item: item[0]):
        for name, array in sorted(sub.arrays(), key=lambda item: item[0]):
            print(f"  {path}/{name}  {array.shape}  {array.dtype}")


def _expire(args: argparse.Namespace) -> None:
    report = Repository.open(args.repo).expire_snapshots(
        args.older_than,
        delete_expired_branches=args.delete_expired_branches,
        delete_expired_tags=args.delete_expired_tags,
    )
    _say(
        args,
        f"expired {report.expired_snapshots} snapshots (relinked {report.rewritten_snapshots})",
    )
    for name in report.deleted_branches:
        _say(args, f"deleted branch {name}")
    for name in report.deleted_tags:
        _say(args, f"deleted tag {name}")


def _gc(args: argparse.Namespace) -> None:
    report = Repository.open(args.repo).garbage_collect(args.older_than)
    _say(
        args,
        f"deleted {report.total} objects: {report.snapshots} snapshots, {report.manifests} "
        f"manifests, {report.chunks} chunks, {report.transactions} transaction logs, "
        f"{report.leftovers} leftovers of interrupted writes, {report.branch_versions} old "
        "branch versions",
    )


def _fsck(args: argparse.Namespace) -> int:
    report = Repository.open(args.repo).fsck(check_sources=args.check_sources)
    text = str(report)
    if report.ok:
        _say(args, text)
        return 0
    print(text, file=sys.stderr)
    return 1


def main_exit() -> None:
    """The console script's entry point."""
    sys.exit(main())


if __name__ == "__main__":
    main_exit()
