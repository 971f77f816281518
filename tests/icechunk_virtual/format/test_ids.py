from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icechunk_virtual.errors import InvalidInputError
from icechunk_virtual.format.ids import ManifestId, SnapshotId


@given(st.binary(min_size=12, max_size=12))
def test_id_bytes_round_trip(raw: bytes) -> None:
    text = SnapshotId.from_bytes(raw)
    assert len(text) == 20
    assert SnapshotId.parse(text) == text
    assert SnapshotId.parse(text.lower()) == text
    assert SnapshotId.parse(text).to_bytes() == raw


def test_generated_ids_are_distinct_and_typed() -> None:
    ids = {SnapshotId.generate() for _ in range(1000)}
    assert len(ids) == 1000
    assert isinstance(ManifestId.generate(), ManifestId)


@pytest.mark.parametrize("bad", ["", "short", "I" * 20, "Z" * 20, "0" * 21])
def test_bad_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="SnapshotId"):
        SnapshotId.parse(bad)
