"""Imports point down only (DESIGN.md "Packages and layers"), checked by parsing every module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = {"kerchunk", "virtualizarr", "icechunk"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_readers_never_import_the_core() -> None:
    for path in _modules("readers"):
        bad = {n for n in _imports(path) if n.split(".")[0] == "icechunk_virtual"}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_core_reaches_readers_only_through_registry_and_types() -> None:
    for path in _modules("icechunk_virtual"):
        bad = {
            n
            for n in _imports(path)
            if n.split(".")[0] == "readers"
            # registry and parallel scan any format; no specific reader is imported
            and n
            not in (
                "readers",
                "readers.registry",
                "readers.parallel",
                "readers.types",
                "readers.errors",
            )
        }
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_packages_never_import_the_anchors() -> None:
    for path in _modules("icechunk_virtual") + _modules("readers"):
        bad = {n for n in _imports(path) if n.split(".")[0] in ANCHORS}
        assert not bad, f"{path.relative_to(ROOT)} imports anchor {bad}"


def test_storage_and_format_do_not_import_sessions() -> None:
    upper = {
        "icechunk_virtual.repository.session",
        "icechunk_virtual.repository.repository",
        "icechunk_virtual.zarr.store",
        "icechunk_virtual.synchronous",
    }
    for package in ("icechunk_virtual/storage", "icechunk_virtual/format"):
        for path in _modules(package):
            bad = _imports(path) & upper
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
