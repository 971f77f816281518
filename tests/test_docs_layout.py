"""README's "Layout" section is generated from the tree: every module with the first line of its
docstring. Run ``python tests/test_docs_layout.py`` to print the block after moving modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("icechunk_virtual", "readers")
WIDTH = 100
_COLUMN = 30


def _summary(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    first = re.sub(r":(?:class|func|mod|meth|data|attr):`~?([^`]+)`", r"\1", first)
    first = first.replace("``", "")
    sentence = re.split(r"(?<=[a-z)\]])[.;:] ", first + " ")[0].rstrip(". ")
    room = WIDTH - _COLUMN
    return sentence if len(sentence) <= room else sentence[: room - 3].rstrip() + "..."


def _entries(folder: Path, depth: int) -> list[str]:
    lines = []
    children = sorted(folder.iterdir(), key=lambda p: (p.is_dir(), p.name != "__init__.py", p.name))
    for child in children:
        if child.name == "__pycache__":
            continue
        indent = "  " * depth
        if child.is_dir() and (child / "__init__.py").exists():
            name = f"{indent}{child.name}/"
            lines.append(f"{name:<{_COLUMN}}{_summary(child / '__init__.py')}")
            lines += [e for e in _entries(child, depth + 1) if not e.strip().startswith("__init__")]
        elif child.suffix == ".py":
            name = f"{indent}{child.name}"
            lines.append(f"{name:<{_COLUMN}}{_summary(child)}")
    return lines


def layout() -> str:
    """The README block: each package's modules, indented by subpackage."""
    lines = []
    for package in PACKAGES:
        lines.append(f"{package + '/':<{_COLUMN}}{_summary(ROOT / package / '__init__.py')}")
        lines += [e for e in _entries(ROOT / package, 1) if not e.lstrip().startswith("__init__")]
    return "\n".join(lines)


def _readme_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Layout", 1)[1]
    return section.split("```", 2)[1].strip("\n")


def test_readme_layout_is_the_tree() -> None:
    expected = layout()
    assert _readme_block() == expected, (
        "README's Layout block is out of date; replace it with:\n" + expected
    )


if __name__ == "__main__":
    print(layout())
