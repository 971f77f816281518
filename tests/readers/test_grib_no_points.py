"""A GRIB message whose grid has no points (seen in fuzzed files; ecCodes reads it as 0 values)
is an empty variable, not a raw zarr ``ValueError`` ("chunk size must be positive")."""

from __future__ import annotations

from pathlib import Path

import pytest
import zarr
import zarr.storage

import readers.grib
from icechunk_virtual.ingestion.zarr_arrays import create_array
from readers.registry import open_virtual

SOURCE = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "corpus"
    / "grib"
    / "regular_ll_sfc.grib"
)


@pytest.mark.skipif(not SOURCE.exists(), reason="../shared/corpus/grib is not beside the checkout")
def test_a_grid_of_no_points_is_an_empty_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    # The grid ecCodes reports for such a message: no points. (No writer makes one on purpose,
    # so the real message's grid is replaced by the one the damaged message had.)
    monkeypatch.setattr(
        readers.grib, "_grid", lambda *args: readers.grib._Grid(("values",), (0,), {})
    )
    dataset = open_virtual(str(SOURCE))
    fields = [
        a
        for a in dataset.arrays.values()
        if a.codecs and a.codecs[0]["name"] == readers.grib.GRIB_CODEC
    ]
    assert fields and all(a.shape[-1] == 0 and a.refs.num_rows == 0 for a in fields)
    assert all(a.chunk_shape[-1] == 1 for a in fields)
    for array in fields:  # where the raw ValueError came from: zarr's array creation
        created = create_array(zarr.storage.MemoryStore(), "field", array)
        assert created.shape == array.shape and created[...].size == 0
