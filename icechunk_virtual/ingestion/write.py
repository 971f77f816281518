"""Writing a scanned dataset into a session: groups, arrays, the chunks a reader kept inline,
and the virtual refs each array still needs (returned, so they can be set here or in forks of
the session on a cluster)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import zarr
from zarr.core.buffer import default_buffer_prototype

from icechunk_virtual.ingestion.locations import join, location
from icechunk_virtual.ingestion.zarr_arrays import chunk_key, create_array
from icechunk_virtual.zarr.store import IcechunkVirtualStore
from readers.types import VirtualArray, VirtualDataset

__all__ = ["PendingRefs", "write_chunks", "write_dataset"]

type PendingRefs = list[tuple[str, dict[str, Any]]]
"""(array path, refs columns) still to set with ``set_virtual_refs``."""


def write_dataset(
    store: IcechunkVirtualStore,
    dataset: VirtualDataset,
    base: str,
    sources: Mapping[str, str | None],
) -> PendingRefs:
    """Create the dataset's groups and arrays under ``base``; the virtual refs each array still
    needs, with the checksum ``sources`` records for each source location."""
    source = location(dataset.url)
    for path, attributes in sorted(dataset.groups.items()):
        zarr.open_group(store, path=join(base, path), mode="a", attributes=dict(attributes))
    pending = []
    for path, array in sorted(dataset.arrays.items()):
        create_array(store, join(base, path), array)
        refs = write_chunks(store, array, join(base, path), source, sources)
        if refs is not None:
            pending.append(refs)
    return pending


def write_chunks(
    store: IcechunkVirtualStore,
    array: VirtualArray,
    path: str,
    source: str,
    sources: Mapping[str, str | None],
) -> tuple[str, dict[str, Any]] | None:
    """Store the chunks of an existing array the reader kept inline; its virtual refs."""
    refs = array.refs
    ndim = len(array.shape)
    if "inline" in refs.column_names:  # bytes the reader could not leave in the file
        stored = refs.filter(pc.is_valid(refs.column("inline")))
        prototype = default_buffer_prototype()
        for row in stored.to_pylist():  # compact datasets and re-encoded exception chunks: few
            key = f"{path}/{chunk_key(row, ndim)}"
            store.set_sync(key, prototype.buffer.from_bytes(row["inline"]))
        refs = refs.filter(pc.is_null(refs.column("inline")))
    n = refs.num_rows
    if n == 0:
        return None
    if "url" in refs.column_names:  # each chunk names its own file (reference files)
        urls = refs.column("url").cast(pa.string()).combine_chunks().dictionary_encode()
        indices = urls.indices
        dictionary = [location(u) if u else "" for u in urls.dictionary.to_pylist()]
    else:
        indices, dictionary = pa.array(np.zeros(n, dtype=np.int32)), [source]
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
