"""Appends: a scheduled job passing the whole, growing list scans and reads only the new files.

The expected datasets come from ``xr.open_mfdataset`` over the same final file list (netCDF4
reading every file itself); which files an ingest touched is recorded at the two places a file
is read — the scan and the coordinate loader.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

import icechunk_virtual as iv
import icechunk_virtual.ingestion.orchestrate as orchestrate
from icechunk_virtual._sync import sync

from .test_combine import _files, _write


@pytest.fixture
def touched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files the ingests scan or read values from, in order."""
    seen: list[str] = []
    scan, load = orchestrate.scan_sources, orchestrate.load_values

    def scanning(urls: Any, *args: Any, **kwargs: Any) -> Any:
        seen.extend(Path(u).name for u in urls)
        return scan(urls, *args, **kwargs)

    def loading(dataset: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(Path(dataset.url).name)
        return load(dataset, *args, **kwargs)

    monkeypatch.setattr(orchestrate, "scan_sources", scanning)
    monkeypatch.setattr(orchestrate, "load_values", loading)
    return seen


def _repo() -> iv.Repository:
    return iv.Repository.create(f"memory://{uuid.uuid4().hex}")


def _open(repo: iv.Repository) -> xr.Dataset:
    return xr.open_dataset(repo, engine="icechunk_virtual").load()


def test_an_append_reads_only_the_new_files(tmp_path: Path, touched: list[str]) -> None:
    paths = [_write(tmp_path / f"2024-01-{d:02d}.nc", f"2024-01-{d:02d}", 24) for d in range(1, 7)]
    repo = _repo()
    iv.ingest(repo, [str(p) for p in paths[:3]], concat_dim="time", progress=False)
    touched.clear()
    report = iv.ingest(repo, [str(p) for p in paths[:5]], concat_dim="time", progress=False)
    assert [Path(u).name for u in report.added] == ["2024-01-04.nc", "2024-01-05.nc"]
    assert set(touched) == {"2024-01-04.nc", "2024-01-05.nc"}, touched
    touched.clear()
    iv.ingest(repo, [str(p) for p in paths], concat_dim="time", progress=False)  # the next day
    assert set(touched) == {"2024-01-06.nc"}, touched
    theirs = _files(paths)
    ours = _open(repo)
    xr.testing.assert_allclose(ours, theirs, rtol=1e-6)
    xr.testing.assert_identical(ours["time"], theirs["time"])
    assert ours["t2m"].attrs == theirs["t2m"].attrs
    grid = repo.readonly_session().async_session.node("/t2m").zarr_json["chunk_grid"]
    assert grid == {"name": "regular", "configuration": {"chunk_shape": [1, 7, 8]}}
    assert len(list(repo.ancestry(branch="main"))) == 4  # three ingests and the initial snapshot


def test_appends_of_other_lengths_make_a_rectilinear_grid(
    tmp_path: Path, touched: list[str]
) -> None:
    months = [("2023-01-01", 31), ("2023-02-01", 28), ("2023-03-01", 31)]
    paths = [_write(tmp_path / f"{m}.nc", m, n, chunk=n, step="days") for m, n in months]
    repo = _repo()
    iv.ingest(repo, [str(paths[0])], concat_dim="time", progress=False)
    touched.clear()
    iv.ingest(repo, [str(p) for p in paths], concat_dim="time", progress=False)
    assert set(touched) == {"2023-02-01.nc", "2023-03-01.nc"}
    theirs = _files(paths)
    xr.testing.assert_allclose(_open(repo), theirs, rtol=1e-6)
    ours = xr.open_dataset(repo, engine="icechunk_virtual", chunks={}, task_bytes=0)
    assert ours["t2m"].chunks[0] == (31, 28, 31)


def test_a_stored_partial_last_chunk_is_rebuilt_and_refused(tmp_path: Path) -> None:
    first = _write(tmp_path / "a.nc", "2024-02-01", 5, chunk=2)  # its last chunk is partial
    later = _write(tmp_path / "b.nc", "2024-03-01", 4, chunk=2)
    repo = _repo()
    iv.ingest(repo, [str(first)], concat_dim="time", progress=False)
    before = repo.lookup_branch("main")
    with pytest.raises(iv.IncompatibleSourcesError, match="partial chunk"):
        iv.ingest(repo, [str(first), str(later)], concat_dim="time", progress=False)
    assert repo.lookup_branch("main") == before


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"dtype": "i4"}, "dtype"),
        ({"units": "degC"}, "attribute 'units'"),
        ({"scale_factor": 0.02}, "attribute 'scale_factor'"),
        ({"lat": [0, 1, 2, 3, 4, 5, 6]}, "the values of '/lat'"),
    ],
)
def test_a_new_file_that_does_not_fit_what_is_stored_is_refused(
    tmp_path: Path, change: dict[str, Any], what: str
) -> None:
    """Checked against the stored arrays; one that does not fit is never appended: the ingest
    falls back to checking every file, which names both and commits nothing."""
    good = _write(tmp_path / "a.nc", "2024-01-01", 24)
    bad = _write(tmp_path / "b.nc", "2024-01-02", 24, **change)
    repo = _repo()
    iv.ingest(repo, [str(good)], concat_dim="time", progress=False)
    before = repo.lookup_branch("main")
    with pytest.raises(iv.IncompatibleSourcesError, match=what):
        iv.ingest(repo, [str(good), str(bad)], concat_dim="time", progress=False)
    assert repo.lookup_branch("main") == before


@pytest.mark.parametrize("late", [3, 1], ids=["a gap", "before the first"])
def test_a_late_file_is_inserted_reading_only_it(
    tmp_path: Path, touched: list[str], late: int
) -> None:
    """A missing day arriving late goes in time order; only it is read: the later chunks move
    along ``time`` (refs only), and a later day appends after it as usual."""
    days = [*(d for d in (1, 2, 3, 4) if d != late), late, 6]  # three, the late one, the next
    paths = [_write(tmp_path / f"2024-01-0{d}.nc", f"2024-01-0{d}", 24) for d in days]
    repo = _repo()
    iv.ingest(repo, [str(p) for p in paths[:3]], concat_dim="time", progress=False)
    touched.clear()
    report = iv.ingest(repo, [str(p) for p in paths[:4]], concat_dim="time", progress=False)
    assert set(touched) == {f"2024-01-0{late}.nc"}, touched
    assert [Path(u).name for u in report.added] == [f"2024-01-0{late}.nc"]
    theirs = _files(paths[:4])
    ours = _open(repo)
    xr.testing.assert_allclose(ours, theirs, rtol=1e-6)
    xr.testing.assert_identical(ours["time"], theirs["time"])
    touched.clear()
    iv.ingest(repo, [str(p) for p in paths], concat_dim="time", progress=False)
    assert set(touched) == {"2024-01-06.nc"}, touched
    xr.testing.assert_allclose(_open(repo), _files(paths), rtol=1e-6)


def test_a_late_file_off_the_chunk_grid_is_placed_by_a_rebuild(
    tmp_path: Path, touched: list[str]
) -> None:
    """Files of 24 hours in chunks of 24: a 12-hour late file cannot open a gap of whole chunks;
    the dataset is rebuilt from every file instead, and still equals the files."""
    paths = [
        _write(tmp_path / f"2024-01-0{d}.nc", f"2024-01-0{d}", 24, chunk=24) for d in (1, 2, 4)
    ]
    repo = _repo()
    iv.ingest(repo, [str(p) for p in paths], concat_dim="time", progress=False)
    half = _write(tmp_path / "2024-01-03.nc", "2024-01-03", 12, chunk=12)
    touched.clear()
    iv.ingest(repo, [str(p) for p in [*paths, half]], concat_dim="time", progress=False)
    assert len(set(touched)) == 4  # a rebuild: every file
    xr.testing.assert_allclose(_open(repo), _files([*paths, half]), rtol=1e-6)


def test_an_append_rewrites_only_the_last_chunk_of_the_coordinate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``concat_dim`` coordinate is stored in fixed-length chunks (here 16 values): an
    append writes the chunk the stored values end in and those after it, never the earlier
    ones, however long the archive."""
    import icechunk_virtual.ingestion.combine as combine

    monkeypatch.setattr(combine, "COORDINATE_CHUNK", 16)
    paths = [_write(tmp_path / f"2024-01-{d:02d}.nc", f"2024-01-{d:02d}", 24) for d in range(1, 5)]
    repo = _repo()
    iv.ingest(repo, [str(p) for p in paths[:3]], concat_dim="time", progress=False)  # 72 values

    def refs() -> list[object]:
        chunks = repo.readonly_session().async_session.chunks
        return [sync(chunks.chunk_ref("/time", (i,))) for i in range(6)]

    before = refs()
    assert before[4] is not None and before[5] is None  # 72 values: chunks 0..4
    iv.ingest(repo, [str(p) for p in paths], concat_dim="time", progress=False)
    after = refs()
    assert after[:4] == before[:4]  # untouched
    assert after[4] != before[4] and after[5] is not None  # values 64..95
    theirs = _files(paths)
    xr.testing.assert_identical(_open(repo)["time"], theirs["time"])


@pytest.mark.parametrize("changed", [2, 4, 1], ids=["a middle day", "the last day", "the first"])
def test_a_changed_file_is_reingested_in_place_reading_only_it(
    tmp_path: Path, touched: list[str], changed: int
) -> None:
    """Same times, new values: only that file is read, its refs replaced where they are. The
    first file holds the stored ``lat``/``lon`` a new file is checked against; when it changes
    they cannot be compared, and the dataset is rebuilt from every file instead."""
    paths = [_write(tmp_path / f"2024-01-0{d}.nc", f"2024-01-0{d}", 24) for d in (1, 2, 3, 4)]
    repo = _repo()
    iv.ingest(repo, [str(p) for p in paths], concat_dim="time", progress=False)
    path = paths[changed - 1]
    path.unlink()
    _write(path, path.stem, 24, seed=123)
    touched.clear()
    report = iv.ingest(repo, [str(p) for p in paths], concat_dim="time", progress=False,
                       on_changed="reingest")  # fmt: skip
    read = {p.name for p in paths} if changed == 1 else {path.name}
    assert set(touched) == read, touched
    assert [Path(u).name for u in report.changed] == [path.name]
    theirs = _files(paths)
    ours = _open(repo)  # no StaleSourceError: every ref into the file was replaced
    xr.testing.assert_allclose(ours, theirs, rtol=1e-6)
    xr.testing.assert_identical(ours["time"], theirs["time"])


def test_a_changed_file_of_another_extent_is_placed_by_a_rebuild(
    tmp_path: Path, touched: list[str]
) -> None:
    paths = [_write(tmp_path / f"2024-01-0{d}.nc", f"2024-01-0{d}", 24) for d in (1, 2, 3)]
    repo = _repo()
    iv.ingest(repo, [str(p) for p in paths], concat_dim="time", progress=False)
    paths[1].unlink()
    _write(paths[1], "2024-01-02", 12)  # half a day now
    touched.clear()
    iv.ingest(repo, [str(p) for p in paths], concat_dim="time", progress=False,
              on_changed="reingest")  # fmt: skip
    assert len(set(touched)) == 3  # a rebuild: every file
    xr.testing.assert_allclose(_open(repo), _files(paths), rtol=1e-6)
