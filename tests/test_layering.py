"""The package's architecture, checked by parsing every module (``docs/architecture.md``).

- every module of ``icechunk_virtual`` sits on a floor, and imports point down: a module imports
  modules of its own subpackage or of a lower floor, never a sibling subpackage of its floor or
  anything above;
- no import cycle anywhere, counting every import: module level, inside functions, and under
  ``TYPE_CHECKING`` (an annotation that needs an upper module is an upward dependency too);
- ``readers`` never import the package, and the package reaches them only through the registry,
  the parallel scan and their interchange types; neither imports the benchmark anchors;
- no module above 400 lines, no function above cyclomatic complexity 20 (radon's grade C).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from radon.complexity import cc_visit

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = {"kerchunk", "virtualizarr", "icechunk"}
MAX_LINES = 400
MAX_COMPLEXITY = 20

P = "icechunk_virtual"
FLOORS: list[list[str]] = [
    [f"{P}.errors", f"{P}._sync"],
    [f"{P}.format", f"{P}.storage"],
    [f"{P}.chunk_refs"],
    [f"{P}.io"],
    [f"{P}.repository"],
    [f"{P}.zarr"],
    [f"{P}.ingestion", f"{P}.maintenance"],
    [f"{P}.synchronous"],
    [f"{P}.cli", f"{P}.xarray_backend", P],
]
"""Lowest first. A unit is a module or a subpackage; the last unit ``icechunk_virtual`` is the
package's ``__init__`` (public names only)."""

READERS_SEEN_BY_CORE = {"readers", "readers.registry", "readers.parallel", "readers.types",
                        "readers.errors"}  # fmt: skip


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _paths(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


MODULES = {_module_name(p): p for pkg in (P, "readers") for p in _paths(pkg)}


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every module ``path`` imports (any level, any branch), with the line."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if candidate in MODULES else base), node.lineno


def _unit(module: str) -> str | None:
    best = None
    for floor in FLOORS:
        for unit in floor:
            if (module == unit or module.startswith(unit + ".")) and (
                best is None or len(unit) > len(best)
            ):
                best = unit
    return best


def _floor(unit: str) -> int:
    return next(i for i, floor in enumerate(FLOORS) if unit in floor)


def _graph() -> dict[str, set[str]]:
    return {
        name: {target for target, _ in _imports(path) if target in MODULES and target != name}
        for name, path in MODULES.items()
    }


def test_every_module_sits_on_a_floor() -> None:
    orphans = [m for m in MODULES if m.startswith(P) and _unit(m) is None]
    assert not orphans, f"modules on no floor (add them to FLOORS and the docs): {orphans}"


def test_imports_point_down() -> None:
    bad = []
    for name, path in MODULES.items():
        if not name.startswith(P):
            continue
        unit = _unit(name)
        assert unit is not None
        for target, line in _imports(path):
            if not target.startswith(P) or target == P:
                continue
            target_unit = _unit(target)
            assert target_unit is not None, target
            if target_unit == unit:
                continue
            if _floor(target_unit) >= _floor(unit):
                bad.append(f"{path.relative_to(ROOT)}:{line} ({unit}) imports {target}")
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_no_import_cycle() -> None:
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles() -> None:
    # the check above is only as good as this search
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_readers_never_import_the_core() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for path in _paths("readers")
        for target, line in _imports(path)
        if target.split(".")[0] == P
    ]
    assert not bad, bad


def test_core_reaches_readers_only_through_registry_and_types() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for path in _paths(P)
        for target, line in _imports(path)
        if target.split(".")[0] == "readers" and target not in READERS_SEEN_BY_CORE
    ]
    assert not bad, bad


def test_packages_never_import_the_anchors() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports anchor {target}"
        for path in _paths(P) + _paths("readers")
        for target, line in _imports(path)
        if target.split(".")[0] in ANCHORS
    ]
    assert not bad, bad


def test_modules_stay_small() -> None:
    big = {
        str(path.relative_to(ROOT)): n
        for path in _paths(P) + _paths("readers")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not big, f"modules above {MAX_LINES} lines (split them by concept): {big}"


def _blocks(blocks: list[Any]) -> Iterator[Any]:
    """radon's functions, methods and closures, flattened."""
    for block in blocks:
        yield block
        yield from _blocks([*getattr(block, "methods", []), *getattr(block, "closures", [])])


def test_functions_stay_simple() -> None:
    complex_ = [
        f"{path.relative_to(ROOT)}:{block.lineno} {block.fullname} ({block.complexity})"
        for path in _paths(P) + _paths("readers")
        for block in _blocks(cc_visit(path.read_text()))
        if block.complexity > MAX_COMPLEXITY
    ]
    assert not complex_, f"functions above complexity {MAX_COMPLEXITY}: {complex_}"
