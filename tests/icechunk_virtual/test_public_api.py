"""The public surface: every name the README uses resolves, the entry points load, and the sync
veneer is one line per method over its async twin with the documentation written once."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import xarray as xr
from zarr.registry import get_codec_class

import icechunk_virtual as iv
from icechunk_virtual import synchronous

ROOT = Path(__file__).resolve().parents[2]

EXPECTED_PUBLIC = {
    "Repository", "Session", "AsyncRepository", "AsyncSession", "ForkedSession", "ingest",
    "IngestReport", "OnChanged", "RepositoryConfig", "SnapshotId", "SnapshotInfo", "Diff",
    "IcechunkVirtualStore", "read_config", "source_checksum", "ExpireReport", "GCReport",
    "FsckReport", "FsckProblem", "IcechunkVirtualError", "ConflictError", "NotFoundError",
    "InvalidInputError", "StaleSourceError", "UnauthorizedSourceError", "ReadOnlyError",
}  # fmt: skip

ASYNC_ONLY = {
    # the store's and the sync veneer's plumbing: zarr reaches nodes and chunks through the store
    "node", "node_paths", "set_node_metadata", "delete_node", "chunk_coords", "write_chunk",
    "delete_chunk", "stored_manifests",
    # lookups the sync API spells as keywords of readonly_session / ancestry
    "resolve", "snapshot_as_of", "refresh_virtual_sources", "load_snapshot",
    "objects", "storage", "source_options", "chunks", "spill_rows",
}  # fmt: skip


def _readme_names() -> set[str]:
    """Dotted names of the package the README's Python uses (``iv.X``, ``icechunk_virtual.X``,
    ``readers.X``), from its code blocks and inline code."""
    text = (ROOT / "README.md").read_text()
    code = " ".join(
        re.findall(r"```python\n(.*?)```", text, re.S) + re.findall(r"`([^`\n]+)`", text)
    )
    found = re.findall(r"\b((?:iv|icechunk_virtual|readers)(?:\.[A-Za-z_]\w*)+)", code)
    names = {name.replace("iv.", "icechunk_virtual.", 1) if name.startswith("iv.") else name
             for name in found}  # fmt: skip
    # the objects the examples call methods on, by the names they use for them
    for variable, cls in (
        ("repo", "Repository"),
        ("session", "Session"),
        ("fork", "ForkedSession"),
    ):
        names |= {f"icechunk_virtual.{cls}.{m}" for m in re.findall(rf"\b{variable}\.(\w+)", code)}
    return names


def _resolve(dotted: str) -> Any:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            value = getattr(value, part)
        return value
    raise ImportError(dotted)


def test_the_package_exports_its_nouns() -> None:
    assert set(iv.__all__) >= EXPECTED_PUBLIC
    for name in iv.__all__:
        assert getattr(iv, name) is not None


@pytest.mark.parametrize("name", sorted(_readme_names()))
def test_every_name_the_readme_uses_resolves(name: str) -> None:
    try:
        _resolve(name)
    except (ImportError, AttributeError):
        # the README also names zarr codecs ("icechunk_virtual.grib"): those must be registered
        get_codec_class(name)


def test_the_readme_names_were_found() -> None:
    names = _readme_names()  # the parametrised test above is only as good as this scan
    assert {"icechunk_virtual.Repository.create", "icechunk_virtual.ingest"} <= names
    assert "icechunk_virtual.Session.set_virtual_refs" in names
    assert len(names) > 20


def test_entry_points_load() -> None:
    scripts = {e.name: e for e in entry_points(group="console_scripts")}
    assert scripts["icechunk-virtual"].load() is iv.cli.main_exit  # type: ignore[attr-defined]
    assert "icechunk_virtual" in xr.backends.list_engines()
    codecs = {e.name: e for e in entry_points(group="zarr.codecs")}
    for name in ("icechunk_virtual.grib", "hdf5_lz4", "hdf5_szip", "hdf5_nbit"):
        assert codecs[name].load() is not None


def _veneer_methods() -> list[tuple[type, str]]:
    return [
        (cls, name)
        for cls in (iv.Repository, iv.Session)
        for name, member in vars(cls).items()
        if not name.startswith("_") and (callable(member) or isinstance(member, classmethod))
        and name not in ("async_repository", "async_session", "store")
    ]  # fmt: skip


def _function(cls: type, name: str) -> Any:
    member = vars(cls)[name]
    return member.__func__ if isinstance(member, classmethod) else member


@pytest.mark.parametrize(
    ("cls", "name"), _veneer_methods(), ids=lambda v: getattr(v, "__name__", v)
)
def test_each_sync_method_runs_its_twin_with_its_docs(cls: type, name: str) -> None:
    method = _function(cls, name)
    implementation = method.__implementation__
    assert method.__doc__ == implementation.__doc__ and implementation.__doc__
    assert inspect.getdoc(getattr(cls, name)) == inspect.getdoc(implementation)  # what help() shows
    # the same parameters, names, kinds and defaults (the veneer adds nothing, drops nothing)
    ours = list(inspect.signature(method).parameters.values())
    theirs = list(inspect.signature(implementation).parameters.values())
    strip = {"self", "cls", "repo"}
    assert [(p.name, p.kind, p.default) for p in ours if p.name not in strip] == [
        (p.name, p.kind, p.default) for p in theirs if p.name not in strip
    ]
    # written once: the veneer's source holds no docstring of its own, and one statement
    source = textwrap.dedent(inspect.getsource(method))
    tree = ast.parse(source).body[0]
    assert isinstance(tree, ast.FunctionDef)
    assert ast.get_docstring(tree) is None
    assert len(tree.body) == 1, f"{cls.__name__}.{name} should be one delegating statement"


def test_every_async_verb_has_a_sync_twin() -> None:
    for async_cls, sync_cls in ((iv.AsyncRepository, iv.Repository), (iv.AsyncSession, iv.Session)):
        verbs = {n for n in vars(async_cls) if not n.startswith("_")} - ASYNC_ONLY
        missing = sorted(v for v in verbs if not hasattr(sync_cls, v))
        assert not missing, f"{sync_cls.__name__} lacks {missing}"


def test_sync_properties_carry_the_async_docs() -> None:
    for name in ("snapshot_id", "branch", "read_only", "has_uncommitted_changes"):
        assert getattr(iv.Session, name).__doc__ == getattr(iv.AsyncSession, name).__doc__
    for name in ("config", "url", "virtual_sources"):
        assert getattr(iv.Repository, name).__doc__ == getattr(iv.AsyncRepository, name).__doc__


def test_ingest_takes_either_twin(tmp_path: Path) -> None:
    source = tmp_path / "empty.nc"
    import netCDF4

    with netCDF4.Dataset(source, "w") as ds:
        ds.createDimension("x", 3)
        ds.createVariable("v", "f4", ("x",))[:] = [1, 2, 3]
    repo = iv.Repository.create(str(tmp_path / "repo"))
    report = iv.ingest(repo.async_repository, [str(source)], progress=False)
    assert report.added == [f"file://{source}"]
    again = synchronous.ingest(repo, [str(source)], progress=False)
    assert again.snapshot_id is None and again.skipped == [f"file://{source}"]


API_BEFORE_THE_LAYOUT = {
    # the sync API as it was before the async classes became public (names users pass by keyword)
    "Session.set_virtual_refs": ["array_path", "refs", "inline_below"],
    "Session.commit": ["message", "metadata"],
    "Repository.readonly_session": ["branch", "tag", "snapshot_id", "as_of"],
    "Repository.create": [
        "url",
        "storage_options",
        "config",
        "unsafe_single_writer",
        "source_options",
    ],
    "Repository.ingest": [
        "urls",
        "concat_dim",
        "branch",
        "message",
        "storage_options",
        "on_changed",
        "group",
        "client",
        "progress",
        "check_ingested",
    ],
    "Repository.expire_snapshots": [
        "older_than",
        "delete_expired_branches",
        "delete_expired_tags",
    ],
    "Repository.ancestry": ["branch", "tag", "snapshot_id"],
    "Repository.diff": ["from_snapshot_id", "to_snapshot_id"],
    "Repository.fsck": ["check_sources"],
}


@pytest.mark.parametrize("name", sorted(API_BEFORE_THE_LAYOUT))
def test_the_sync_api_kept_its_parameters(name: str) -> None:
    cls, method = name.split(".")
    parameters = inspect.signature(getattr(getattr(iv, cls), method)).parameters
    assert [p for p in parameters if p not in ("self", "cls")] == API_BEFORE_THE_LAYOUT[name]
