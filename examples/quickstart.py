"""Quick start: a versioned Zarr repository on local disk, written with xarray, read back in time.

Run with ``make demo``. Creates a repository in a temporary directory (or the path given as the
first argument), commits two versions of a dataset, tags the first, points chunks of an array at
byte ranges of a plain binary file (virtual refs), and shows the history and a diff.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

import icechunk_virtual as iv


def main(root: Path) -> None:
    repo = iv.Repository.create(str(root / "repo"))
    print(f"created {repo}")

    # 1. Write a dataset with xarray and commit it.
    times = np.arange("2024-01-01", "2024-01-11", dtype="datetime64[D]").astype("datetime64[ns]")
    ds = xr.Dataset(
        {
            "t2m": (
                ("time", "lat", "lon"),
                280 + np.random.default_rng(0).random((10, 18, 36)),
                {"units": "K"},
            )
        },
        coords={"time": times, "lat": np.linspace(-85, 85, 18), "lon": np.linspace(0, 350, 36)},
    )
    session = repo.writable_session("main")
    ds.to_zarr(session.store, consolidated=False, encoding={"t2m": {"chunks": (1, 18, 36)}})
    first = session.commit("ten days of t2m")
    repo.create_tag("v1", first)

    # 2. Change a day and commit again.
    session = repo.writable_session("main")
    zarr.open_array(session.store, path="t2m")[3] = 300.0
    second = session.commit("fix day 4")

    # 3. Virtual chunks: point an array's chunks at byte ranges of an existing file.
    source = root / "archive.bin"
    values = np.arange(8, dtype="<i4")
    source.write_bytes(values.tobytes())
    repo.authorize_virtual_source(root.as_uri() + "/")  # virtual chunks only from where you allow
    session = repo.writable_session("main")
    zarr.open_group(session.store, mode="a").create_array(
        "from_archive",
        shape=(8,),
        chunks=(4,),
        dtype="<i4",
        compressors=None,
        dimension_names=["n"],
    )
    session.set_virtual_refs(
        "/from_archive",
        {
            "coord": [[0], [1]],
            "location": [source.as_uri()] * 2,
            "offset": [0, 16],
            "length": [16, 16],
        },
    )
    third = session.commit("reference an archive file")

    # 4. Read any version back.
    now = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
    then = xr.open_zarr(repo.readonly_session(tag="v1").store, consolidated=False)
    print(
        f"day 4 mean now {float(now.t2m[3].mean()):.1f} K, at tag v1 {float(then.t2m[3].mean()):.1f} K"
    )
    archived = zarr.open_array(repo.readonly_session().store, path="from_archive", mode="r")[:]
    print(f"virtual array read from {source.name}: {archived.tolist()}")

    print("history of main:")
    for info in repo.ancestry(branch="main"):
        print(f"  {info.id}  {info.written_at:%H:%M:%S}  {info.message}")
    diff = repo.diff(first, third)
    print(
        f"diff v1 -> main: new arrays {sorted(diff.new_arrays)}, "
        f"changed chunks of /t2m {sorted(diff.chunk_set('/t2m'))}"
    )
    assert second in {i.id for i in repo.ancestry(branch="main")}


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
