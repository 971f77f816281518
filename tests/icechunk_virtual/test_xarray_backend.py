"""``xr.open_dataset(url, engine="icechunk_virtual")``: branches, tags, snapshots, groups, dask."""

from __future__ import annotations

from pathlib import Path

import dask.array
import numpy as np
import pytest
import xarray as xr

import icechunk_virtual as iv

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "hdf5"
AIR = CORPUS / "air.nc"

pytestmark = pytest.mark.skipif(
    not AIR.exists(), reason="../shared/corpus is not beside the checkout"
)


def test_engine_opens_branches_tags_snapshots_and_groups(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    repo = iv.Repository.create(url)
    first = iv.ingest(repo, [str(AIR)], progress=False).snapshot_id
    assert first is not None
    repo.create_tag("v1", first)
    session = repo.writable_session()
    extra = xr.Dataset({"extra": ("n", np.arange(3.0))})
    extra.to_zarr(session.store, mode="a", consolidated=False)
    second = session.commit("add a variable")
    expected = xr.open_dataset(AIR).load()

    now = xr.open_dataset(url, engine="icechunk_virtual")
    xr.testing.assert_identical(now["air"], expected["air"])
    xr.testing.assert_identical(now["extra"], extra["extra"])
    xr.testing.assert_identical(xr.open_dataset(url, engine="icechunk_virtual", tag="v1"), expected)
    at_first = xr.open_dataset(url, engine="icechunk_virtual", snapshot_id=str(first))
    xr.testing.assert_identical(at_first, expected)
    assert str(second) != str(first)
    xr.testing.assert_identical(
        xr.open_dataset(repo, engine="icechunk_virtual", tag="v1"), expected
    )

    grouped = iv.Repository.create(str(tmp_path / "grouped"))
    iv.ingest(grouped, [str(AIR), str(CORPUS / "basin_mask.nc")], progress=False)
    air = xr.open_dataset(str(tmp_path / "grouped"), engine="icechunk_virtual", group="air")
    xr.testing.assert_identical(air, expected)


def test_chunks_give_lazy_dask_arrays_with_the_stored_chunking(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    iv.ingest(iv.Repository.create(url), [str(AIR)], progress=False)
    ds = xr.open_dataset(url, engine="icechunk_virtual", chunks={})
    assert isinstance(ds["air"].data, dask.array.Array)
    np.testing.assert_array_equal(ds["air"].values, xr.open_dataset(AIR)["air"].values)


def ingested_hdf5(
    tmp_path: Path, *, shape: tuple[int, ...], chunks: tuple[int, ...]
) -> tuple[str, np.ndarray]:
    """A repository holding one zlib + shuffle HDF5 variable ``t`` of random floats."""
    import h5py

    source = tmp_path / "t.nc"
    data = np.random.default_rng(3).random(shape).astype("<f4")
    with h5py.File(source, "w") as f:
        f.create_dataset("t", data=data, chunks=chunks, compression="gzip", shuffle=True)
    url = str(tmp_path / "repo")
    iv.ingest(iv.Repository.create(url), [str(source)], progress=False)
    return url, data


def test_a_missing_repository_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(iv.RepositoryNotFoundError, match="nothing"):
        xr.open_dataset(str(tmp_path / "nothing"), engine="icechunk_virtual")


def test_engine_arrays_decode_on_our_pipeline_and_codecs_and_leave_zarr_config_alone(
    tmp_path: Path,
) -> None:
    import zarr

    from icechunk_virtual.zarr.fast_codecs import FastShuffle, FastZlib
    from icechunk_virtual.zarr.read_pipeline import SlicedReadPipeline

    url, data = ingested_hdf5(tmp_path, shape=(4, 30, 40), chunks=(1, 30, 40))
    before = (zarr.config.get("codec_pipeline.path"), dict(zarr.config.get("codecs")))
    ds = xr.open_dataset(url, engine="icechunk_virtual")
    wrapped = ds["t"].variable._data
    while not hasattr(wrapped, "_array"):  # xarray's lazy-indexing layers
        wrapped = wrapped.array
    pipeline = wrapped._array._async_array.codec_pipeline
    assert type(pipeline) is SlicedReadPipeline
    assert {type(c) for c in pipeline.bytes_bytes_codecs} == {FastShuffle, FastZlib}
    assert (zarr.config.get("codec_pipeline.path"), dict(zarr.config.get("codecs"))) == before
    np.testing.assert_array_equal(ds["t"].values, data)
    # the same store opened with zarr's defaults gets zarr's pipeline and codecs
    plain = zarr.open_array(iv.Repository.open(url).readonly_session().store, path="t")
    assert type(plain._async_array.codec_pipeline) is not SlicedReadPipeline
    np.testing.assert_array_equal(plain[:], data)


@pytest.mark.parametrize("chunks", [None, {}, "auto", {"time": 2}])
def test_engine_reads_every_kind_of_selection_in_the_calling_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunks: object
) -> None:
    """Basic and orthogonal selections read without zarr's event loop (with and without dask);
    vectorised ones fall back to zarr's own path; all equal the source."""
    import zarr.core.array

    url, data = ingested_hdf5(tmp_path, shape=(6, 20, 30), chunks=(1, 10, 30))
    ds = xr.open_dataset(url, engine="icechunk_virtual", chunks=chunks)
    t = ds["t"]
    dims = t.dims
    original = zarr.core.array.sync
    used_loop: list[object] = []

    def counting(*args: object, **kwargs: object) -> object:
        used_loop.append(args)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(zarr.core.array, "sync", counting)
    np.testing.assert_array_equal(t.values, data)
    np.testing.assert_array_equal(t.isel({dims[0]: 2}).values, data[2])
    np.testing.assert_array_equal(
        t.isel({dims[0]: slice(1, 5), dims[1]: slice(3, 17, 2)}).values, data[1:5, 3:17:2]
    )
    np.testing.assert_array_equal(
        t.isel({dims[0]: [0, 3, 5], dims[2]: [1, 7]}).values,
        data[np.ix_([0, 3, 5], range(20), [1, 7])],
    )
    assert used_loop == []
    pick = {dims[0]: xr.DataArray([0, 4]), dims[1]: xr.DataArray([2, 9])}  # vectorised: zarr's path
    np.testing.assert_array_equal(t.isel(pick).values, data[[0, 4], [2, 9]])


# ---- dask chunks: groups of stored chunks ------------------------------------------------------
def test_chunks_group_stored_chunks_into_tasks(tmp_path: Path) -> None:
    """``chunks={}`` gives groups of whole stored chunks of at most ``task_bytes`` (grown from
    the last dimension); ``task_bytes=0`` the stored chunks; ``"auto"`` aligns with the groups."""
    url, data = ingested_hdf5(tmp_path, shape=(12, 20, 30), chunks=(1, 10, 15))
    chunk_bytes = 10 * 15 * 4  # 600 B stored chunk, decoded
    cases = {
        0: ((1,) * 12, (10, 10), (15, 15)),  # stored chunks
        chunk_bytes: ((1,) * 12, (10, 10), (15, 15)),  # one stored chunk per task
        2 * chunk_bytes: ((1,) * 12, (10, 10), (30,)),  # whole rows
        3 * chunk_bytes: ((1,) * 12, (10, 10), (30,)),  # no partial row of chunks
        4 * chunk_bytes: ((1,) * 12, (20,), (30,)),  # whole planes
        4 * 5 * chunk_bytes: ((5, 5, 2), (20,), (30,)),  # five planes per task
    }
    for task_bytes, expected in cases.items():
        ds = xr.open_dataset(url, engine="icechunk_virtual", chunks={}, task_bytes=task_bytes)
        assert ds["t"].chunks == expected, task_bytes
        np.testing.assert_array_equal(ds["t"].values, data)
    auto = xr.open_dataset(
        url, engine="icechunk_virtual", chunks="auto", task_bytes=4 * chunk_bytes
    )
    assert auto["t"].chunks[1:] == ((20,), (30,))  # never splits a group
    np.testing.assert_array_equal(auto["t"].values, data)


def test_explicit_chunks_are_honoured(tmp_path: Path) -> None:
    """The user's ``chunks=`` are used as given; where they split a preferred group (not a stored
    chunk) xarray says so, as it does for a Zarr shard."""
    url, data = ingested_hdf5(tmp_path, shape=(12, 20, 30), chunks=(1, 10, 15))
    with pytest.warns(UserWarning, match="separate the stored chunks"):
        ds = xr.open_dataset(url, engine="icechunk_virtual", chunks={"phony_dim_0": 3})
    assert ds["t"].chunks[0] == (3, 3, 3, 3)
    np.testing.assert_array_equal(ds["t"].values, data)
    quiet = xr.open_dataset(url, engine="icechunk_virtual", chunks={"phony_dim_0": 3}, task_bytes=0)
    assert quiet["t"].chunks[0] == (3, 3, 3, 3)


# ---- the Zarr engine's keywords ------------------------------------------------------------------
def test_zarr_engine_keywords_are_accepted_or_refused_with_the_reason(tmp_path: Path) -> None:
    url, data = ingested_hdf5(tmp_path, shape=(4, 6), chunks=(2, 6))
    for keywords in ({"consolidated": True}, {"consolidated": False}, {"zarr_format": 3},
                     {"use_zarr_fill_value_as_mask": False}, {"cache_members": False},
                     {"mode": "r"}):  # fmt: skip
        ds = xr.open_dataset(url, engine="icechunk_virtual", **keywords)
        np.testing.assert_array_equal(ds["t"].values, data)
    refused = {"mode": ("a", "writable_session"), "zarr_format": (2, "Zarr v3 only"),
               "store": (object(), "pass the repository")}  # fmt: skip
    for name, (value, reason) in refused.items():
        with pytest.raises(iv.InvalidInputError, match=reason):
            xr.open_dataset(url, engine="icechunk_virtual", **{name: value})


def test_sessions_and_stores_open_directly(tmp_path: Path) -> None:
    url, data = ingested_hdf5(tmp_path, shape=(4, 6), chunks=(2, 6))
    session = iv.Repository.open(url).readonly_session()
    for source in (session, session.store):
        np.testing.assert_array_equal(xr.open_dataset(source, engine="icechunk_virtual")["t"], data)
    with pytest.raises(iv.InvalidInputError, match="already at one snapshot"):
        xr.open_dataset(session, engine="icechunk_virtual", tag="v1")


def test_open_datatree_and_groups_cover_every_group(tmp_path: Path) -> None:
    url = str(tmp_path / "repo")
    repo = iv.Repository.create(url)
    session = repo.writable_session()
    parts = {
        "/": xr.Dataset({"top": ("a", np.arange(3.0))}),
        "/forecasts": xr.Dataset({"f": ("b", np.arange(4))}),
        "/forecasts/ecmwf": xr.Dataset({"e": (("y", "x"), np.ones((2, 3)))}),
    }
    for path, part in parts.items():
        part.to_zarr(session.store, group=path, mode="a", consolidated=False)
    session.commit("three groups")
    groups = xr.open_groups(url, engine="icechunk_virtual")
    assert set(groups) == set(parts)
    for path, part in parts.items():
        xr.testing.assert_identical(groups[path], part)
    tree = xr.open_datatree(url, engine="icechunk_virtual")
    xr.testing.assert_identical(tree["forecasts/ecmwf"].to_dataset(), parts["/forecasts/ecmwf"])
    below = xr.open_groups(url, engine="icechunk_virtual", group="forecasts")
    assert set(below) == {"/", "/ecmwf"}
