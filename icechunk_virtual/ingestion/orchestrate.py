"""``ingest``: scan archive files with the readers and commit their chunk refs in one snapshot.

Files are scanned in parallel worker processes (see ``readers.parallel``). Each file's prefix
(its directory) is authorised as a virtual source. One file is written at the repository root;
several files are written each as-is under a group named after the file, unless ``concat_dim``
combines them along a dimension (``icechunk_virtual.ingestion.combine``). Reader errors are re-raised as
this package's errors, chained to the original, so callers catch one tree.
"""

from __future__ import annotations

import asyncio
import base64
import math
import os
import posixpath
import struct
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import zarr
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.errors import UnstableSpecificationWarning
from zarr.registry import get_codec_class

from icechunk_virtual._sync import sync
from icechunk_virtual.ingestion.combine import combine
from icechunk_virtual.ingestion.distributed import scan_on_cluster, set_refs_on_cluster
from icechunk_virtual.errors import (
    CorruptSourceError,
    InvalidInputError,
    RefNotFoundError,
    SourceNotFoundError,
    StaleSourceError,
    UnsupportedSourceError,
)
from icechunk_virtual.format.snapshot import LEDGER_KEY
from icechunk_virtual.format.ids import SnapshotId
from icechunk_virtual.io.sources import fetch_checksum, source_protocol
from readers.errors import CorruptFileError, ReaderError, UnsupportedFeatureError
from readers.parallel import scan_many
from readers.types import VirtualArray, VirtualDataset

if TYPE_CHECKING:
    from icechunk_virtual.synchronous import Repository, Session

__all__ = ["IngestReport", "ingest"]

"""Commit metadata key of the source ledger."""

_CHECKSUM_CONCURRENCY = 32


async def _checksums(urls: Sequence[str], options: Mapping[str, Any]) -> list[str | None]:
    """Every source's checksum, taken before it is scanned (a file that changes afterwards is
    caught at read time as stale, never read as what was scanned)."""
    limit = asyncio.Semaphore(_CHECKSUM_CONCURRENCY)

    async def one(url: str) -> str | None:
        async with limit:
            location = _location(url)
            return await fetch_checksum(location, options, where=location)

    return list(await asyncio.gather(*(one(u) for u in urls)))


def _scan_all(
    urls: Sequence[str], storage_options: Mapping[str, Any] | None, progress: bool, client: Any
) -> list[VirtualDataset]:
    """Scan every file (in worker processes when there are several, or on a dask cluster), as
    this package's errors."""
    if client is None:
        scans: Iterable[VirtualDataset] = scan_many(urls, storage_options=storage_options)
    else:
        scans = scan_on_cluster(client, urls, storage_options)
    if progress:
        from tqdm.auto import tqdm

        scans = tqdm(scans, total=len(urls), desc="scanning", unit="file")
    try:
        return list(scans)
    except UnsupportedFeatureError as exc:
        raise UnsupportedSourceError(str(exc)) from exc
    except CorruptFileError as exc:
        raise CorruptSourceError(str(exc)) from exc
    except ReaderError as exc:
        raise SourceNotFoundError(str(exc)) from exc


def _location(url: str) -> str:
    """The URL refs record: local paths become absolute ``file://`` URLs."""
    return url if "://" in url else "file://" + posixpath.abspath(url)


def _prefix(url: str) -> str:
    """The directory of a source, authorised as a virtual-source prefix."""
    return _location(url).rsplit("/", 1)[0] + "/"


def ingest(
    repo: Repository,
    urls: Sequence[str],
    *,
    concat_dim: str | None = None,
    branch: str = "main",
    message: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    on_changed: str = "error",
    group: str | None = None,
    client: Any = None,
    progress: bool = True,
) -> IngestReport:
    """Scan ``urls`` and commit every array's chunk refs to ``branch`` in one snapshot.

    Parameters
    ----------
    repo
        The repository to write to.
    urls
        Local paths or fsspec URLs of HDF5 / NetCDF4, NetCDF3 or GRIB files, or Kerchunk
        reference sets.
    concat_dim
        Combine the files along this dimension, ordered by its coordinate's values (see
        :mod:`icechunk_virtual.ingestion.combine`); without it each file is written as-is (one file at the
        root, several each under a group named after the file).
    branch
        Branch to commit to.
    message
        Commit message (default: ``ingest N new and M changed file(s)``).
    storage_options
        fsspec options to read the sources (used, never stored).
    on_changed
        What to do when a source ingested before has changed (its checksum differs): ``"error"``
        raises :class:`StaleSourceError` and commits nothing; ``"reingest"`` scans it again.
    group
        Write under this group (e.g. ``"forecasts/ecmwf"``) instead of at the root.
    client
        A ``dask.distributed.Client``: the files are scanned on its workers and the refs set in
        forks of the session on its workers, merged here into one commit. Without it, files are
        scanned by a local process pool.
    progress
        Show a progress bar while scanning.

    Returns
    -------
    IngestReport
        The new snapshot (``None`` when every source was ingested before, unchanged: re-running
        a scheduled job commits nothing) and the sources added, skipped and changed.

    Raises
    ------
    UnsupportedSourceError, CorruptSourceError, SourceNotFoundError
        A file could not be scanned; nothing is committed.
    IncompatibleSourcesError
        ``concat_dim`` was given and two files cannot be combined; nothing is committed.
    """
    if isinstance(urls, str) or not urls:
        raise InvalidInputError("ingest needs a non-empty list of URLs")
    if on_changed not in ("error", "reingest"):
        raise InvalidInputError(f"on_changed must be 'error' or 'reingest', not {on_changed!r}")
    started = time.perf_counter()
    options = dict(storage_options or {})
    checksums = sync(_checksums(urls, options))
    group = (group or "").strip("/")
    ledgers = _ledgers(repo, branch)
    ledger = ledgers.get(group, {})
    given = dict(zip((_location(u) for u in urls), checksums, strict=True))
    added = [u for u in given if u not in ledger]
    changed = [u for u in given if u in ledger and ledger[u] != given[u]]
    skipped = [u for u in given if u in ledger and ledger[u] == given[u]]
    if changed and on_changed == "error":
        raise StaleSourceError(
            f"{changed[0]} changed since it was ingested (checksum {ledger[changed[0]]} -> "
            f"{given[changed[0]]}); pass on_changed='reingest' to scan it again"
        )
    if not added and not changed:
        return IngestReport(None, [], skipped, [], time.perf_counter() - started)
    if concat_dim is not None:  # the combined dataset is rebuilt from every source, old and new
        urls = sorted(set(ledger) | set(given))
        checksums = [given.get(u, ledger.get(u)) for u in urls]
    else:  # each file is its own group: only new and changed ones are written
        urls = added + changed
        checksums = [given[u] for u in urls]
        skipped = [u for u in skipped if u not in urls]
    datasets = _scan_all(urls, options, progress, client)
    sources = dict(zip(urls, checksums, strict=True))  # urls are locations from here on
    # reference files (Kerchunk) point at other files: those are the sources
    pointed_at = [_referenced_urls(d) for d in datasets]
    used = {u for u, refs in zip(urls, pointed_at, strict=True) if not refs}
    referenced = {_location(u) for refs in pointed_at for u in refs}
    new = sorted(referenced - set(sources))
    sources.update(zip(new, sync(_checksums(new, options)), strict=True))
    for prefix in sorted({_prefix(u) for u in used | referenced}):
        if not any(prefix.startswith(p) for p in repo.virtual_sources):
            repo.authorize_virtual_source(prefix)
    if concat_dim is not None:
        loaded: dict[tuple[str, str], np.ndarray] = {}

        def load(d: VirtualDataset, a: VirtualArray) -> np.ndarray:
            key = (d.url, a.path)  # the first file's coordinates are compared with every other's
            if key not in loaded:
                loaded[key] = _load_values(d, a, options)
            return loaded[key]

        combined = combine(datasets, concat_dim, load)
        named: list[tuple[str, VirtualDataset]] = [("", combined)]
    else:
        alone = len(urls) == 1 and not ledger  # one file, and the first: at the root
        named = [("" if alone else posixpath.splitext(posixpath.basename(u))[0], d)
                 for u, d in zip(urls, datasets, strict=True)]  # fmt: skip
    session = repo.writable_session(branch)
    pending: list[tuple[str, dict[str, Any]]] = []
    for base, dataset in named:
        base = _join(group, base)
        pending += _write_dataset(session, dataset, base, _location(dataset.url), sources)
    if client is None:
        for path, refs in pending:
            session.set_virtual_refs(path, refs)
    else:
        set_refs_on_cluster(client, session, pending)
    ledgers[group] = {**ledger, **{u: sources[u] for u in urls}}
    snapshot = session.commit(
        message or f"ingest {len(added)} new and {len(changed)} changed file(s)",
        metadata={LEDGER_KEY: {"groups": ledgers}},
    )
    return IngestReport(snapshot, added, skipped, changed, time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What one ``ingest`` call did."""

    snapshot_id: SnapshotId | None
    """The new snapshot, or ``None`` when there was nothing new to commit."""
    added: list[str]
    """Sources ingested for the first time."""
    skipped: list[str]
    """Sources ingested before and unchanged."""
    changed: list[str]
    """Sources whose checksum changed since they were ingested (re-ingested)."""
    seconds: float


def _ledgers(repo: Repository, branch: str) -> dict[str, dict[str, str | None]]:
    """Per group ingested into, every source an ``ingest`` on ``branch`` recorded with its
    checksum: the newest ingest commit's record (each holds the whole ledger)."""
    try:
        for info in repo.ancestry(branch=branch):
            record = info.metadata.get(LEDGER_KEY)
            if record is not None:
                groups = record.get("groups", {"": record.get("sources", {})})
                return {g: dict(sources) for g, sources in groups.items()}
    except RefNotFoundError:
        pass
    return {}


def _referenced_urls(dataset: VirtualDataset) -> set[str]:
    """The files a reference file's chunks live in (empty for an archive file itself)."""
    found: set[str] = set()
    for array in dataset.arrays.values():
        if "url" in array.refs.column_names:
            column = array.refs.column("url").cast(pa.string())
            found.update(u for u in pc.unique(column).to_pylist() if u)
    return found


def _write_dataset(
    session: Session,
    dataset: VirtualDataset,
    base: str,
    location: str,
    sources: Mapping[str, str | None],
) -> list[tuple[str, dict[str, Any]]]:
    """Create the dataset's groups and arrays; the virtual refs each array still needs."""
    for path, attributes in sorted(dataset.groups.items()):
        zarr.open_group(
            session.store, path=_join(base, path), mode="a", attributes=dict(attributes)
        )
    pending = (
        _write_array(session, array, _join(base, path), location, sources)
        for path, array in sorted(dataset.arrays.items())
    )
    return [p for p in pending if p is not None]


def _join(base: str, path: str) -> str:
    return "/".join(p for p in (base, path.strip("/")) if p)


def _codec(spec: Mapping[str, Any]) -> Any:
    return get_codec_class(spec["name"]).from_dict(dict(spec))


def _zarr_attributes(array: VirtualArray) -> dict[str, Any]:
    """The array's attributes as Zarr keeps them. A netCDF ``_FillValue`` is written the way
    xarray's Zarr backend reads it (floats as the base64 of their 8 little-endian bytes, so NaN
    survives JSON), so xarray masks fill values exactly as it does reading the file itself."""
    attributes = dict(array.attributes)
    if "_FillValue" not in attributes:
        return attributes
    value, kind = attributes["_FillValue"], array.dtype.kind
    if kind == "f":
        attributes["_FillValue"] = base64.standard_b64encode(struct.pack("<d", value)).decode()
    elif kind in "iu" and math.isfinite(value):
        attributes["_FillValue"] = int(value)
    elif kind in "iu":  # a NaN fill for integers masks nothing: netCDF libraries ignore it too
        del attributes["_FillValue"]
    elif kind == "S":
        raw = value.encode() if isinstance(value, str) else bytes(value)
        attributes["_FillValue"] = base64.standard_b64encode(raw).decode()
    elif kind == "b":
        attributes["_FillValue"] = bool(value)
    return attributes


def _native(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The in-memory dtype of values stored as ``dtype`` (the bytes codec records the order)."""
    return dtype.newbyteorder("=") if dtype.kind in "biufcSV" else dtype


def _create_array(store: Any, path: str, array: VirtualArray) -> Any:
    """The Zarr array ``array`` describes, created empty at ``path`` of ``store``."""
    codecs = [_codec(c) for c in array.codecs]
    at = next(i for i, c in enumerate(codecs) if isinstance(c, ArrayBytesCodec))
    filters, serializer, compressors = codecs[:at], codecs[at], codecs[at + 1 :]
    chunks: Any = array.chunk_shape
    if array.chunk_sizes is not None:  # rectilinear: a list of lengths where they vary
        chunks = [list(s) if len(s) > 1 else s[0] for s in array.chunk_sizes]
    with warnings.catch_warnings():
        # zarr flags string and struct data types as not yet in the Zarr v3 spec; they are
        # what these files hold, and zarr-python reads them back.
        warnings.simplefilter("ignore", UnstableSpecificationWarning)
        return zarr.create_array(
            store,
            name=path,
            shape=array.shape,
            chunks=chunks,
            dtype=_native(array.dtype),
            filters=filters or None,
            serializer=serializer,
            compressors=compressors or None,
            fill_value=array.fill_value,
            attributes=_zarr_attributes(array),
            dimension_names=list(array.dimension_names) or None,
            overwrite=True,
        )


def _load_values(
    dataset: VirtualDataset, array: VirtualArray, options: Mapping[str, Any]
) -> np.ndarray:
    """An array's values, read from its file(s) and decoded by its own codecs (for the small
    coordinates ``combine`` compares and orders by)."""
    ndim = len(array.shape)
    rows = array.refs.to_pylist()  # a coordinate has one chunk or a few
    chunks = []
    for row in rows:
        data = row.get("inline")
        if data is None:
            data = _read_range(row.get("url") or dataset.url, row["offset"], row["length"], options)
        chunks.append(data)
    plain = _plain_decoder(array)
    if plain is not None:  # bytes + numcodecs compressors: decode directly, no zarr array
        padded = [-(-n // c) * c for n, c in zip(array.shape, array.chunk_shape, strict=True)]
        out = np.full(padded, array.fill_value, dtype=array.dtype)
        for row, data in zip(rows, chunks, strict=True):
            start = [row[f"c{i}"] * c for i, c in enumerate(array.chunk_shape)]
            block = plain(data).reshape(array.chunk_shape)
            out[tuple(slice(a, a + c) for a, c in zip(start, array.chunk_shape, strict=True))] = (
                block
            )
        return out[tuple(slice(0, n) for n in array.shape)]
    store = zarr.storage.MemoryStore()
    target = _create_array(store, "values", array)
    prototype = default_buffer_prototype()
    for row, data in zip(rows, chunks, strict=True):
        sync(store.set(f"values/{_chunk_key(row, ndim)}", prototype.buffer.from_bytes(data)))
    return np.asarray(target[...])


def _read_range(url: str, offset: int, length: int, options: Mapping[str, Any]) -> bytes:
    """``length`` bytes of a source from ``offset`` (local files without fsspec's overhead)."""
    if source_protocol(url) == "file":
        with open(url.removeprefix("file://"), "rb") as f:
            return os.pread(f.fileno(), length, offset)
    fs, path = fsspec.core.url_to_fs(url, **dict(options))
    data: bytes = fs.cat_file(path, start=offset, end=offset + length)
    return data


def _chunk_key(row: Mapping[str, Any], ndim: int) -> str:
    """The Zarr v3 key (default encoding) of the chunk a refs row describes."""
    return "/".join(["c", *(str(row[f"c{i}"]) for i in range(ndim))])


def _plain_decoder(array: VirtualArray) -> Callable[[bytes], np.ndarray] | None:
    """A direct decoder for the common chain (``bytes`` then numcodecs byte codecs), or None."""
    first, *rest = array.codecs
    if first["name"] != "bytes" or array.chunk_sizes is not None or array.dtype.kind not in "biuf":
        return None
    if not all(c["name"].startswith("numcodecs.") for c in rest):
        return None
    import numcodecs

    decoders = [numcodecs.get_codec({"id": c["name"].removeprefix("numcodecs."),
                                     **c.get("configuration", {})}) for c in reversed(rest)]  # fmt: skip
    endian = first.get("configuration", {}).get("endian", "little")
    dtype = array.dtype.newbyteorder("<" if endian == "little" else ">")

    def decode(data: bytes) -> np.ndarray:
        for codec in decoders:
            data = bytes(codec.decode(data))
        return np.frombuffer(data, dtype=dtype).astype(array.dtype.newbyteorder("="))

    return decode


def _write_array(
    session: Session,
    array: VirtualArray,
    path: str,
    location: str,
    sources: Mapping[str, str | None],
) -> tuple[str, dict[str, Any]] | None:
    """Create the array (and store the chunks the reader kept inline); its virtual refs."""
    _create_array(session.store, path, array)
    refs = array.refs
    ndim = len(array.shape)
    if "inline" in refs.column_names:  # bytes the reader could not leave in the file
        stored = refs.filter(pc.is_valid(refs.column("inline")))
        prototype = default_buffer_prototype()
        for row in stored.to_pylist():  # compact datasets and re-encoded exception chunks: few
            key = f"{path}/{_chunk_key(row, ndim)}"
            session.store.set_sync(key, prototype.buffer.from_bytes(row["inline"]))
        refs = refs.filter(pc.is_null(refs.column("inline")))
    n = refs.num_rows
    if n == 0:
        return None
    if "url" in refs.column_names:  # each chunk names its own file (reference files)
        urls = refs.column("url").cast(pa.string()).combine_chunks().dictionary_encode()
        indices = urls.indices
        dictionary = [_location(u) if u else "" for u in urls.dictionary.to_pylist()]
    else:
        indices, dictionary = pa.array(np.zeros(n, dtype=np.int32)), [location]
    checksums = pa.array([sources.get(u) for u in dictionary], pa.string()).take(indices)
    return (
        "/" + path,
        {
            **{f"c{i}": refs.column(f"c{i}") for i in range(ndim)},
            **({"coord": np.zeros((n, 0), dtype=np.int64)} if ndim == 0 else {}),
            "location": pa.DictionaryArray.from_arrays(indices, pa.array(dictionary)),
            "offset": refs.column("offset"),
            "length": refs.column("length"),
            "checksum": checksums,
        },
    )
