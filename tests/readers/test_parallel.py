"""Scanning many files in worker processes gives what scanning them one by one gives."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from readers.errors import CorruptFileError, ReaderError, UnsupportedFeatureError
from readers.parallel import scan_alone, scan_many
from readers.registry import open_virtual


def _files(tmp_path: Path, count: int) -> list[str]:
    paths = []
    for i in range(count):
        path = tmp_path / f"f{i:02d}.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("x", data=np.arange(10 * (i + 1)), chunks=(7,), compression="gzip")
        paths.append(str(path))
    return paths


def test_worker_processes_return_each_files_scan_in_order(tmp_path: Path) -> None:
    paths = _files(tmp_path, 12)
    scans = list(scan_many(paths, workers=2))
    assert [s.url for s in scans] == paths
    for path, scan in zip(paths, scans, strict=True):
        assert scan.arrays["/x"].refs.equals(open_virtual(path).arrays["/x"].refs)


def test_a_reader_error_in_a_worker_reaches_the_caller_intact(tmp_path: Path) -> None:
    paths = _files(tmp_path, 8)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f.create_dataset("refs", shape=(2,), dtype=h5py.ref_dtype)
    paths[5] = str(tmp_path / "bad.h5")
    with pytest.raises(UnsupportedFeatureError) as caught:
        list(scan_many(paths, workers=2))
    assert (caught.value.url, caught.value.variable) == (paths[5], "/refs")


@pytest.mark.parametrize(
    "error",
    [
        ReaderError("s3://b/f.nc", "the file does not exist"),
        UnsupportedFeatureError("f.nc", "/v", "HDF5 filter 307"),
        CorruptFileError("f.nc", 12, "bad superblock"),
    ],
)
def test_reader_errors_pickle(error: ReaderError) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and str(back) == str(error) and back.url == error.url


def test_file_urls_and_paths_scan_alike(tmp_path: Path) -> None:
    path = _files(tmp_path, 1)[0]
    copy = shutil.copy(path, tmp_path / "copy.h5")
    assert (
        open_virtual(f"file://{copy}")
        .arrays["/x"]
        .refs.equals(open_virtual(path).arrays["/x"].refs)
    )


def crash(url: str, options: dict[str, object]) -> None:
    """Stands in for a format library that segfaults on a file."""
    import os
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)


def test_a_file_that_crashes_its_process_is_a_corrupt_file_error(tmp_path: Path) -> None:
    path = _files(tmp_path, 1)[0]
    with pytest.raises(CorruptFileError, match="crashed") as caught:
        scan_alone(path, {}, scan=crash)
    assert caught.value.url == path
    assert scan_alone(path, {}).arrays["/x"].shape == (10,)


def test_a_worker_killed_mid_scan_costs_nothing(tmp_path: Path) -> None:
    import os
    import signal
    import threading
    import time

    import readers.parallel as parallel

    paths = _files(tmp_path, 40) * 10
    list(scan_many(paths[:4], workers=2))  # the pool is up
    pool = parallel._pool
    assert pool is not None
    victim = next(iter(pool._processes))  # type: ignore[attr-defined]

    def kill_soon() -> None:
        time.sleep(0.05)
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill_soon)
    killer.start()
    scans = list(scan_many(paths, workers=2))
    killer.join()
    assert [s.url for s in scans] == paths
    assert parallel._pool is not pool  # the broken pool was replaced


def test_a_script_without_a_main_guard_can_scan(tmp_path: Path) -> None:
    """Worker processes must not re-run the calling script (no ``if __name__ == ...`` needed)."""
    import subprocess
    import sys

    paths = _files(tmp_path, 4)
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import sys\n"
        "from readers.parallel import scan_many\n"
        "print('scanned', len(list(scan_many(sys.argv[1:], workers=2))), flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script), *paths], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["scanned", "4"]


def test_a_job_of_a_few_files_is_scanned_here_while_no_pool_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daily append must not pay the pool's start-up; an explicit ``workers=`` still uses it."""
    import readers.parallel as parallel

    paths = _files(tmp_path, 3)
    monkeypatch.setattr(parallel, "_pool", None)
    here = list(scan_many(paths[:2]))
    assert parallel._pool is None
    assert [s.url for s in here] == paths[:2]
    assert here[1].arrays["/x"].refs.equals(open_virtual(paths[1]).arrays["/x"].refs)
    monkeypatch.setattr(parallel, "IN_PROCESS_AT_MOST", 0)
    assert [s.url for s in scan_many(paths[:1], workers=0)] == paths[:1]
    assert parallel._pool is None
    list(scan_many(paths[:1]))
    assert parallel._pool is not None
    pool = parallel._pool
    list(scan_many(paths[:1]))  # a pool that runs is used, however few the files
    assert parallel._pool is pool
    pool.shutdown()  # the pool this test started (the one before it is put back)


@pytest.mark.parametrize("error", [TypeError, AttributeError])
def test_a_readers_own_bug_surfaces_but_a_librarys_error_is_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    """A ``TypeError`` from a reader's own code is a bug, not a damaged file; raised inside a
    format library (here: code run as a module of h5py) it is the file's damage."""
    from readers.hdf5 import Hdf5Reader

    path = _files(tmp_path, 1)[0]

    def buggy(self: object, url: str, **kwargs: object) -> None:
        raise error("a bug in the reader")

    monkeypatch.setattr(Hdf5Reader, "scan", buggy)
    with pytest.raises(error, match="a bug in the reader"):
        open_virtual(path)
    library: dict[str, object] = {"__name__": "h5py._hl.dataset", "error": error}
    exec("def scan(self, url, **kwargs):\n    raise error('damaged metadata')", library)
    monkeypatch.setattr(Hdf5Reader, "scan", library["scan"])
    with pytest.raises(CorruptFileError, match="damaged metadata"):
        open_virtual(path)
