"""Each conflict rule alone, on transaction logs written by hand: which paths conflict, and why.

The model test drives whole sessions; this one pins each rule's paths and kinds, so a rule that
stops firing (or fires for the wrong path) fails here by name.
"""

from __future__ import annotations

import numpy as np
import pytest

from icechunk_virtual.format.transaction import TransactionLog
from icechunk_virtual.repository.conflicts import find_conflicts


def _log(
    new: set[str] = frozenset(),  # type: ignore[assignment]
    deleted: set[str] = frozenset(),  # type: ignore[assignment]
    updated: set[str] = frozenset(),  # type: ignore[assignment]
    chunks: dict[str, list[list[int]]] | None = None,
    bulk: set[str] = frozenset(),  # type: ignore[assignment]
) -> TransactionLog:
    return TransactionLog(
        frozenset(new), frozenset(deleted), frozenset(updated),
        {p: np.asarray(c, dtype=np.int64).reshape(len(c), -1) for p, c in (chunks or {}).items()},
        frozenset(bulk),
    )  # fmt: skip


SAME = {"same": True, "differ": False}

CASES = [
    # (name, ours, theirs, metadata alike, expected [(path, kind prefix)])
    ("both create alike", _log(new={"/g"}), _log(new={"/g"}), "same", []),
    ("both create differently", _log(new={"/g"}), _log(new={"/g"}), "differ",
     [("/g", "new node")]),
    ("we create, they update", _log(new={"/g"}), _log(updated={"/g"}), "differ",
     [("/g", "metadata (both sides wrote it)")]),
    ("we create, they update alike", _log(new={"/g"}), _log(updated={"/g"}), "same", []),
    ("both update alike", _log(updated={"/a"}), _log(updated={"/a"}), "same", []),
    ("both update alike, we wrote chunks", _log(updated={"/a"}, chunks={"/a": [[0]]}),
     _log(updated={"/a"}), "same", [("/a", "metadata (both sides wrote it)")]),
    ("we write chunks, they update", _log(chunks={"/a": [[0]]}), _log(updated={"/a"}), "same",
     [("/a", "metadata (the other side updated it)")]),
    ("we write chunks, they create", _log(chunks={"/a": [[0]]}), _log(new={"/a"}), "same", []),
    ("we update, they write chunks", _log(updated={"/a"}), _log(chunks={"/a": [[1]]}), "differ",
     [("/a", "metadata (the other side wrote its chunks)")]),
    ("we update alike, they write chunks", _log(updated={"/a"}), _log(chunks={"/a": [[1]]}),
     "same", []),
    ("we replace, they write chunks", _log(new={"/a"}, updated={"/a"}),
     _log(chunks={"/a": [[1]]}), "same", [("/a", "chunks (we replaced")]),
    ("they replace, we write chunks", _log(chunks={"/a": [[1]]}),
     _log(new={"/a"}, updated={"/a"}), "same", [("/a", "metadata (the other side updated it)"),
                                               ("/a", "chunks (the other side replaced")]),
    ("both replace, we write chunks", _log(new={"/a"}, updated={"/a"}, chunks={"/a": [[1]]}),
     _log(new={"/a"}, updated={"/a"}), "same", [("/a", "new node")]),
    ("they delete what we updated", _log(updated={"/g/x"}), _log(deleted={"/g"}), "same",
     [("/g/x", "deleted node (the other side deleted it)")]),
    ("they delete what we wrote chunks to", _log(chunks={"/g/a": [[0]]}), _log(deleted={"/g"}),
     "same", [("/g/a", "deleted node (the other side deleted it)")]),
    ("we delete what they updated", _log(deleted={"/g"}), _log(updated={"/g/x"}), "same",
     [("/g/x", "deleted node (the other side changed it)")]),
    ("both delete", _log(deleted={"/g"}), _log(deleted={"/g"}), "same",
     [("/g", "deleted node (the other side deleted it)")]),
    ("deletes elsewhere", _log(deleted={"/h"}), _log(updated={"/g"}, chunks={"/gg": [[0]]}),
     "same", []),
    ("same chunk", _log(chunks={"/a": [[0, 1], [2, 2]]}), _log(chunks={"/a": [[2, 2]]}), "same",
     [("/a", "chunks")]),
    ("other chunks", _log(chunks={"/a": [[0, 1]]}), _log(chunks={"/a": [[1, 0]]}), "same", []),
    ("other arrays", _log(chunks={"/a": [[0]]}), _log(chunks={"/b": [[0]]}), "same", []),
    ("bulk", _log(chunks={"/a": [[0]]}), _log(chunks={"/a": [[5]]}, bulk={"/a"}), "same",
     [("/a", "chunks (one side streamed")]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "ours", "theirs", "alike", "expected"), CASES,
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_rule(
    name: str,
    ours: TransactionLog,
    theirs: TransactionLog,
    alike: str,
    expected: list[tuple[str, str]],
) -> None:
    found = find_conflicts(ours, theirs, same_metadata=lambda _: SAME[alike])
    assert len(found) == len(expected), found
    for conflict, (path, kind) in zip(found, expected, strict=True):
        assert conflict.path == path and conflict.kind.startswith(kind), conflict


def test_common_chunks_are_named() -> None:
    (conflict,) = find_conflicts(
        _log(chunks={"/a": [[0, 1], [2, 2], [3, 3]]}), _log(chunks={"/a": [[3, 3], [2, 2]]})
    )
    assert sorted(conflict.chunks) == [(2, 2), (3, 3)]


def test_metadata_is_compared_per_path() -> None:
    found = find_conflicts(
        _log(updated={"/a", "/b"}),
        _log(chunks={"/a": [[0]], "/b": [[0]]}),
        same_metadata=lambda path: path == "/a",
    )
    assert [(c.path, c.kind) for c in found] == [
        ("/b", "metadata (the other side wrote its chunks)")
    ]


def test_a_bulk_array_does_not_hide_the_next_arrays_chunks() -> None:
    found = find_conflicts(
        _log(chunks={"/a": [[0]], "/b": [[1]]}),
        _log(chunks={"/a": [[9]], "/b": [[1]]}, bulk={"/a"}),
    )
    assert [c.path for c in found] == ["/a", "/b"]
    assert found[1].chunks == ((1,),)
