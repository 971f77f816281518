"""The read path with real byte sources: HDF5 files written by h5py, referenced by hand from h5py's
chunk index, read back through zarr and xarray from local disk and from S3 (moto)."""

from __future__ import annotations

import shutil
from pathlib import Path

import boto3
import h5py
import numpy as np
import pytest
import xarray as xr
import zarr
from zarr.codecs.numcodecs import Shuffle, Zlib

import icechunk_virtual as iv
from icechunk_virtual._sync import sync
from icechunk_virtual.chunk_refs.tables import ChunkRef
from icechunk_virtual.format.manifest_file import ChunkKind
from icechunk_virtual.io.read_path import ReadOptions, ReadPath
from icechunk_virtual.storage import MemoryStorage

SHAPE, CHUNKS = (6, 20, 30), (1, 20, 30)


def write_hdf5(path: Path, *, compressed: bool) -> np.ndarray:
    data = np.random.default_rng(7).random(SHAPE).astype("<f4")
    with h5py.File(path, "w") as f:
        if compressed:
            f.create_dataset(
                "t", data=data, chunks=CHUNKS, compression="gzip", compression_opts=4, shuffle=True
            )
        else:
            f.create_dataset("t", data=data, chunks=CHUNKS)
    return data


def hdf5_refs(path: Path, url: str) -> dict[str, object]:
    """Chunk refs from h5py's chunk index (what the HDF5 reader automates)."""
    with h5py.File(path, "r") as f:
        ds = f["t"]
        infos = [ds.id.get_chunk_info(i) for i in range(ds.id.get_num_chunks())]
    return {
        "coord": [
            [o // c for o, c in zip(info.chunk_offset, CHUNKS, strict=True)] for info in infos
        ],
        "location": [url] * len(infos),
        "offset": [info.byte_offset for info in infos],
        "length": [info.size for info in infos],
        "checksum": [iv.source_checksum(url, storage_options=_opts(url))] * len(infos),
    }


_S3: dict[str, object] = {}


def _opts(url: str) -> dict[str, object] | None:
    return _S3.get("options") if url.startswith("s3://") else None  # type: ignore[return-value]


def make_array(session: iv.Session, *, compressed: bool) -> None:
    zarr.open_group(session.store, mode="a").create_array(
        "t",
        shape=SHAPE,
        chunks=CHUNKS,
        dtype="<f4",
        compressors=[Shuffle(elementsize=4), Zlib(level=4)] if compressed else None,
        fill_value=np.nan,
        dimension_names=["time", "y", "x"],
    )


@pytest.fixture(params=["local", "s3"])
def source(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[str, Path, dict[str, object] | None]:
    """(url prefix, local directory of the files, options to read them)."""
    if request.param == "local":
        return f"file://{tmp_path}/", tmp_path, None
    endpoint = request.getfixturevalue("s3_endpoint")
    from ...conftest import s3_options

    bucket = "archive-" + tmp_path.name[-8:].lower().replace("_", "-")
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    _S3["options"] = s3_options(endpoint)
    return f"s3://{bucket}/", tmp_path, s3_options(endpoint)


def publish(source: tuple[str, Path, dict[str, object] | None], path: Path) -> str:
    prefix, _, options = source
    if prefix.startswith("s3://"):
        import s3fs

        s3fs.S3FileSystem(**options).put_file(str(path), prefix + path.name)  # type: ignore[arg-type]
    return prefix + path.name


def referenced_repo(
    source: tuple[str, Path, dict[str, object] | None], *, compressed: bool
) -> tuple[iv.Repository, Path, np.ndarray]:
    """An HDF5 file at the source and a repository whose array ``/t`` references its chunks."""
    prefix, directory, options = source
    path = directory / "file.h5"
    data = write_hdf5(path, compressed=compressed)
    url = publish(source, path)
    repo = iv.Repository.create(
        f"memory://{directory.name}-{compressed}", source_options={prefix: options or {}}
    )
    repo.authorize_virtual_source(prefix)
    session = repo.writable_session()
    make_array(session, compressed=compressed)
    session.set_virtual_refs("/t", hdf5_refs(path, url))
    session.commit("hdf5 refs")
    return repo, path, data


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "zlib+shuffle"])
def test_hdf5_chunks_read_back_through_zarr_and_xarray(source, compressed: bool) -> None:  # type: ignore[no-untyped-def]
    repo, path, data = referenced_repo(source, compressed=compressed)
    store = repo.readonly_session().store
    np.testing.assert_array_equal(zarr.open_array(store, path="t", mode="r")[:], data)
    ds = xr.open_zarr(store, consolidated=False)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(ds.t.values, f["t"][:])


def test_one_array_mixes_native_inline_and_virtual_chunks(tmp_path: Path) -> None:
    path = tmp_path / "file.h5"
    data = write_hdf5(path, compressed=False)
    repo = iv.Repository.create(
        str(tmp_path / "repo"), config=iv.RepositoryConfig(inline_chunk_threshold_bytes=3000)
    )
    repo.authorize_virtual_source(f"file://{tmp_path}/")
    session = repo.writable_session()
    make_array(session, compressed=False)
    refs = hdf5_refs(path, f"file://{path}")
    session.set_virtual_refs("/t", {k: v[:4] for k, v in refs.items()})  # type: ignore[index]
    arr = zarr.open_array(session.store, path="t")
    arr[4] = data[4]  # a native chunk (2400 bytes: inline, below the threshold)
    arr[5] = data[5]
    session.commit("mixed")
    kinds = {
        sync(repo.readonly_session()._async.chunks.chunk_ref("/t", (i, 0, 0))).kind
        for i in range(6)
    }  # type: ignore[union-attr]
    assert kinds == {ChunkKind.VIRTUAL, ChunkKind.INLINE}
    np.testing.assert_array_equal(
        zarr.open_array(repo.readonly_session().store, path="t", mode="r")[:], data
    )

    big = iv.Repository.create(
        str(tmp_path / "repo2"), config=iv.RepositoryConfig(inline_chunk_threshold_bytes=0)
    )
    big.authorize_virtual_source(f"file://{tmp_path}/")
    session = big.writable_session()
    make_array(session, compressed=False)
    session.set_virtual_refs("/t", {k: v[:3] for k, v in refs.items()}, inline_below=10_000)  # type: ignore[index]
    zarr.open_array(session.store, path="t")[3:] = data[3:]
    session.commit("virtual inlined at ingest + native files")
    kinds = {
        sync(big.readonly_session()._async.chunks.chunk_ref("/t", (i, 0, 0))).kind for i in range(6)
    }  # type: ignore[union-attr]
    assert kinds == {ChunkKind.INLINE, ChunkKind.NATIVE}
    np.testing.assert_array_equal(
        zarr.open_array(big.readonly_session().store, path="t", mode="r")[:], data
    )


def test_unauthorised_sources_are_refused_before_any_io(tmp_path: Path) -> None:
    path = tmp_path / "file.h5"
    write_hdf5(path, compressed=False)
    repo = iv.Repository.create(str(tmp_path / "repo"))
    session = repo.writable_session()
    make_array(session, compressed=False)
    refs = hdf5_refs(path, f"file://{path}")
    with pytest.raises(
        iv.UnauthorizedSourceError, match=r"file://.*file\.h5 is not under an authorised prefix"
    ):
        session.set_virtual_refs("/t", refs)
    repo.authorize_virtual_source(f"file://{tmp_path}/")
    session = repo.writable_session()
    make_array(session, compressed=False)
    session.set_virtual_refs("/t", refs)
    session.commit("authorised")
    assert f"file://{tmp_path}/" in iv.Repository.open(str(tmp_path / "repo")).virtual_sources
    # a reader whose view of the authorised prefixes lacks the source never touches it
    reader = ReadPath(MemoryStorage("x"), authorized=["s3://elsewhere/"])
    ref = ChunkRef(ChunkKind.VIRTUAL, f"file://{tmp_path}/does-not-exist", 0, 10)
    with pytest.raises(iv.UnauthorizedSourceError):
        sync(reader.read(ref, where="test"))


def test_modified_source_raises_stale_source_error(source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo, path, _ = referenced_repo(source, compressed=True)
    with h5py.File(path, "a") as f:  # rewrite the file in place: same size, new bytes
        f["t"][0] = 0.0
    if source[0].startswith("s3://"):
        publish(source, path)
    else:
        import os
        import time

        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(iv.StaleSourceError, match=r"file\.h5 changed since it was referenced"):
        zarr.open_array(repo.readonly_session().store, path="t", mode="r")[:]


def test_deleted_source_raises_source_not_found(tmp_path: Path) -> None:
    copy = tmp_path / "copy.h5"
    write_hdf5(tmp_path / "file.h5", compressed=False)
    shutil.copy(tmp_path / "file.h5", copy)
    repo = iv.Repository.create(str(tmp_path / "repo"))
    repo.authorize_virtual_source(f"file://{tmp_path}/")
    session = repo.writable_session()
    make_array(session, compressed=False)
    session.set_virtual_refs("/t", hdf5_refs(copy, f"file://{copy}"))
    session.commit("refs")
    copy.unlink()
    with pytest.raises(iv.SourceNotFoundError, match=r"copy\.h5 does not exist"):
        zarr.open_array(repo.readonly_session().store, path="t", mode="r")[:]


def test_batched_reads_coalesce_neighbouring_chunks(tmp_path: Path) -> None:
    path = tmp_path / "file.h5"
    data = write_hdf5(path, compressed=False)
    refs = hdf5_refs(path, f"file://{path}")
    chunk_refs = [
        ChunkRef(ChunkKind.VIRTUAL, f"file://{path}", int(o), int(n))  # type: ignore[call-overload]
        for o, n in zip(refs["offset"], refs["length"], strict=True)  # type: ignore[call-overload]
    ]
    calls: list[tuple[int, int]] = []
    reader = ReadPath(
        MemoryStorage("x"),
        authorized=[f"file://{tmp_path}/"],
        options=ReadOptions(max_gap_bytes=1 << 20),
    )
    original = reader._fetch_virtual

    async def counting(url: str, start: int, end: int, where: str) -> bytes:
        calls.append((start, end))
        return await original(url, start, end, where)

    reader._fetch_virtual = counting  # type: ignore[method-assign]
    got = sync(reader.read_many(chunk_refs, where=["t"] * len(chunk_refs)))
    assert len(calls) == 1  # six contiguous chunks, one request
    for i, raw in enumerate(got):
        np.testing.assert_array_equal(np.frombuffer(raw, "<f4").reshape(CHUNKS)[0], data[i])
