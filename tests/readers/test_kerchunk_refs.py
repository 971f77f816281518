"""Kerchunk references into a repository: hand-written JSON v0 / v1 and Parquet sets, and ones
kerchunk itself wrote; each array reads back exactly."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path

import h5py
import numcodecs
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xarray as xr
import zarr

import icechunk_virtual as iv
from readers.errors import UnsupportedFeatureError
from readers.registry import open_virtual

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "hdf5"
VALUES = np.arange(24, dtype="<f4").reshape(4, 6) / 3


def _archive(tmp_path: Path) -> tuple[Path, list[list[int]]]:
    """A raw file of two chunks of VALUES (rows 0-1 and 2-3): shuffle + zlib, as Zarr v2 would."""
    path = tmp_path / "data.bin"
    pieces, ranges, position = [], [], 16
    for block in (VALUES[:2], VALUES[2:]):
        encoded = numcodecs.Zlib(4).encode(numcodecs.Shuffle(4).encode(block.tobytes()))
        pieces.append(encoded)
        ranges.append([position, len(encoded)])
        position += len(encoded)
    path.write_bytes(b"\0" * 16 + b"".join(pieces))
    return path, ranges


def _zarray(**changes: object) -> str:
    meta = {"shape": [4, 6], "chunks": [2, 6], "dtype": "<f4", "order": "C", "fill_value": "NaN",
            "filters": [{"id": "shuffle", "elementsize": 4}],
            "compressor": {"id": "zlib", "level": 4}, "zarr_format": 2}  # fmt: skip
    return json.dumps({**meta, **changes})


def _ingest(path: Path) -> iv.Repository:
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    iv.ingest(repo, [str(path)], progress=False)
    return repo


def test_json_version_0_with_a_range_and_inline_data(tmp_path: Path) -> None:
    archive, ranges = _archive(tmp_path)
    inline = numcodecs.Zlib(4).encode(numcodecs.Shuffle(4).encode(VALUES[2:].tobytes()))
    refs = {
        ".zgroup": json.dumps({"zarr_format": 2}),
        ".zattrs": json.dumps({"title": "hand made"}),
        "v/.zarray": _zarray(),
        "v/.zattrs": json.dumps({"_ARRAY_DIMENSIONS": ["y", "x"], "units": "K"}),
        "v/0.0": [str(archive), *ranges[0]],
        "v/1.0": "base64:" + base64.b64encode(inline).decode(),
        "w/.zarray": _zarray(
            filters=None, compressor=None, shape=[3], chunks=[3], dtype="|u1", fill_value=0
        ),
        "w/.zattrs": json.dumps({"_ARRAY_DIMENSIONS": ["z"]}),
        "w/0": "abc",
    }
    path = tmp_path / "refs.json"
    path.write_text(json.dumps(refs))
    repo = _ingest(path)
    ds = xr.open_zarr(repo.readonly_session().store, consolidated=False)
    np.testing.assert_array_equal(ds["v"].values, VALUES)
    assert ds["v"].dims == ("y", "x") and ds["v"].attrs["units"] == "K"
    assert ds.attrs["title"] == "hand made"
    assert ds["w"].values.tobytes() == b"abc"
    assert any(str(tmp_path) in p for p in repo.virtual_sources)  # the data file, authorised


def test_json_version_1_templates(tmp_path: Path) -> None:
    _, ranges = _archive(tmp_path)
    document = {
        "version": 1,
        "templates": {"root": str(tmp_path)},
        "refs": {
            ".zgroup": json.dumps({"zarr_format": 2}),
            "v/.zarray": _zarray(),
            "v/.zattrs": json.dumps({"_ARRAY_DIMENSIONS": ["y", "x"]}),
            "v/0.0": ["{{root}}/data.bin", *ranges[0]],
            "v/1.0": ["{{ root }}/data.bin", *ranges[1]],
        },
    }
    path = tmp_path / "refs.json"
    path.write_text(json.dumps(document))
    group = zarr.open_group(_ingest(path).readonly_session().store, mode="r")
    np.testing.assert_array_equal(group["v"][...], VALUES)


def test_parquet_references(tmp_path: Path) -> None:
    archive, ranges = _archive(tmp_path)
    root = tmp_path / "refs.parq"
    (root / "v").mkdir(parents=True)
    metadata = {".zgroup": json.dumps({"zarr_format": 2}), "v/.zarray": _zarray(),
                "v/.zattrs": json.dumps({"_ARRAY_DIMENSIONS": ["y", "x"]})}  # fmt: skip
    (root / ".zmetadata").write_text(json.dumps({"metadata": metadata, "record_size": 1}))
    for index, (offset, size) in enumerate(ranges):  # one chunk per file: record_size 1
        table = pa.table({"path": [str(archive)], "offset": [offset], "size": [size],
                          "raw": pa.array([None], pa.binary())})  # fmt: skip
        pq.write_table(table, root / "v" / f"refs.{index}.parq")
    group = zarr.open_group(_ingest(root).readonly_session().store, mode="r")
    np.testing.assert_array_equal(group["v"][...], VALUES)


@pytest.mark.parametrize(
    ("change", "feature"),
    [
        ({"order": "F"}, "Fortran"),
        ({"compressor": {"id": "nosuchcodec"}}, "nosuchcodec"),
        ({"dtype": "|O"}, "dtype"),
    ],
)
def test_what_zarr_v3_cannot_hold_is_a_typed_error(
    tmp_path: Path, change: dict[str, object], feature: str
) -> None:
    path = tmp_path / "refs.json"
    path.write_text(json.dumps({".zgroup": json.dumps({"zarr_format": 2}),
                                "v/.zarray": _zarray(**change)}))  # fmt: skip
    with pytest.raises(UnsupportedFeatureError, match=feature) as caught:
        open_virtual(str(path))
    assert caught.value.variable == "/v"
    with pytest.raises(iv.UnsupportedSourceError):
        _ingest(path)


def test_references_written_by_kerchunk(tmp_path: Path) -> None:
    pytest.importorskip("kerchunk.hdf", reason="kerchunk is in the bench extra")
    source = CORPUS / "air.nc"
    path = tmp_path / "air.json"
    # in a process of its own: kerchunk drives h5py and zarr's event loop together, which can
    # deadlock with the zarr work other tests left in this process
    script = ("import json, sys; from kerchunk.hdf import SingleHdf5ToZarr; "
              "json.dump(SingleHdf5ToZarr(sys.argv[1], inline_threshold=100).translate(), "
              "open(sys.argv[2], 'w'))")  # fmt: skip
    subprocess.run([sys.executable, "-c", script, str(source), str(path)], check=True, timeout=300)
    group = zarr.open_group(_ingest(path).readonly_session().store, mode="r")
    with h5py.File(source) as f:
        for name in ("air", "lat", "lon", "time"):
            np.testing.assert_array_equal(group[name][...], f[name][...])
