"""Scanning sources with the readers, as this package's errors.

Files are scanned in worker processes (``readers.parallel``) or on a dask cluster; reader errors
are re-raised as :mod:`icechunk_virtual.errors` types, chained to the original, so callers catch
one tree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from icechunk_virtual.errors import CorruptSourceError, SourceNotFoundError, UnsupportedSourceError
from icechunk_virtual.ingestion.distributed import scan_on_cluster
from readers.errors import CorruptFileError, ReaderError, UnsupportedFeatureError
from readers.parallel import scan_many
from readers.types import VirtualDataset

__all__ = ["referenced_urls", "scan_sources"]


def scan_sources(
    urls: Sequence[str], options: Mapping[str, Any] | None, *, progress: bool, client: Any
) -> list[VirtualDataset]:
    """Scan every file (in worker processes, or on the client's dask cluster), in order.

    Raises
    ------
    UnsupportedSourceError, CorruptSourceError, SourceNotFoundError
        A file could not be scanned.
    """
    if client is None:
        scans: Iterable[VirtualDataset] = scan_many(urls, storage_options=options)
    else:
        scans = scan_on_cluster(client, urls, options)
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


def referenced_urls(dataset: VirtualDataset) -> set[str]:
    """The files a reference file's chunks live in (empty for an archive file itself)."""
    found: set[str] = set()
    for array in dataset.arrays.values():
        if "url" in array.refs.column_names:
            column = array.refs.column("url").cast(pa.string())
            found.update(u for u in pc.unique(column).to_pylist() if u)
    return found
