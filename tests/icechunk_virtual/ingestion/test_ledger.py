"""The ledger as repository data: versioned with the arrays, hidden from zarr and xarray, read
from repositories written before it, and never lost when ingests race in other processes.

The expected ledgers are what the tests passed (each file's location and the checksum
:func:`icechunk_virtual.source_checksum` computes); the expected datasets come from
``xr.open_mfdataset`` over the same files.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr
import zarr

import icechunk_virtual as iv
from icechunk_virtual.format.snapshot import LEDGER_KEY
from icechunk_virtual.ingestion.ledger import read_ledgers

from .test_combine import _files, _write

WORKER = Path(__file__).with_name("ledger_worker.py")


def _days(folder: Path, *days: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [_write(folder / f"2024-01-{d:02d}.nc", f"2024-01-{d:02d}", 24) for d in days]


def _expected(paths: list[Path]) -> dict[str, str | None]:
    return {f"file://{p}": iv.source_checksum(str(p)) for p in paths}


def test_the_ledger_is_versioned_data_hidden_from_zarr_and_xarray(tmp_path: Path) -> None:
    paths = _days(tmp_path / "archive", 1, 2, 3)
    url = str(tmp_path / "repo")
    repo = iv.Repository.create(url)
    first = iv.ingest(repo, [str(p) for p in paths[:2]], concat_dim="time", progress=False)
    iv.ingest(repo, [str(p) for p in paths], concat_dim="time", progress=False)
    ledgers = read_ledgers(repo.async_repository, "main")
    assert ledgers == {"": _expected(paths)}
    assert next(repo.ancestry(branch="main")).metadata[LEDGER_KEY] == {"ledger": "nodes"}
    # versioned: the ledger as of the first ingest
    assert first.snapshot_id is not None
    repo.create_branch("then", first.snapshot_id)
    assert read_ledgers(repo.async_repository, "then") == {"": _expected(paths[:2])}
    # hidden: not a member of the root, not a group xarray opens
    root = zarr.open_group(repo.readonly_session().store, mode="r")
    assert not any(name.startswith(".") for name, _ in root.members(max_depth=None))
    assert set(xr.open_groups(url, engine="icechunk_virtual")) == {"/"}


def test_a_repository_written_before_the_tree_moves_its_ledger_into_it(tmp_path: Path) -> None:
    old, new = _days(tmp_path / "archive", 1), _days(tmp_path / "archive", 2)
    repo = iv.Repository.create(str(tmp_path / "repo"))
    session = repo.writable_session()
    zarr.open_group(session.store, path="forecasts", mode="a")
    legacy = {"forecasts": _expected(old), "": {"file:///elsewhere/x.nc": "1"}}
    session.commit("ingest (old format)", metadata={LEDGER_KEY: {"groups": legacy}})
    assert read_ledgers(repo.async_repository, "main") == legacy
    iv.ingest(repo, [str(new[0])], concat_dim="time", group="reanalysis", progress=False)
    assert read_ledgers(repo.async_repository, "main") == {**legacy, "reanalysis": _expected(new)}


@pytest.mark.parametrize("run", range(3))
def test_racing_ingests_in_other_processes_lose_no_ledger(tmp_path: Path, run: int) -> None:
    """Three writer processes at once: two into group ``x`` (disjoint new days: one of them
    conflicts and retries on the other's commit), one into ``y``. Every ledger and dataset ends
    as the files say."""
    x = _days(tmp_path / "x", 1, 2, 3)
    y = _days(tmp_path / "y", 1, 2)
    url = str(tmp_path / "repo")
    repo = iv.Repository.create(url)
    iv.ingest(repo, [str(x[0])], concat_dim="time", group="x", progress=False)
    iv.ingest(repo, [str(y[0])], concat_dim="time", group="y", progress=False)
    go = tmp_path / "go"
    writers = [
        subprocess.Popen([sys.executable, str(WORKER), str(go), url, str(path), group])
        for path, group in ((x[1], "x"), (x[2], "x"), (y[1], "y"))
    ]
    time.sleep(1.0)  # let them import and open the repository
    go.touch()
    assert [w.wait(timeout=300) for w in writers] == [0, 0, 0]
    assert read_ledgers(repo.async_repository, "main") == {"x": _expected(x), "y": _expected(y)}
    for group, paths in (("x", x), ("y", y)):
        ours = xr.open_dataset(url, engine="icechunk_virtual", group=group).load()
        theirs = _files(paths)
        xr.testing.assert_allclose(ours, theirs, rtol=1e-6)
