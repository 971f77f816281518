"""Appending or inserting new files into a committed concatenated dataset, reading only them.

A daily job passes the whole, growing list of files; all but the new ones are in the group's
ledger. When the new files fall after the committed dataset's end along ``concat_dim`` — or
together in a gap between two committed files (a missing day arriving late) — the ingest scans
only the new files, combines them among themselves, checks them against what is *stored* (each
array's ``zarr.json`` — dtype, codecs, fill value, CF packing and time attributes, dimensions,
shape and chunks off the axis — and the stored values of the other coordinates), and then
extends the committed arrays: their ``zarr.json`` grows along the axis (the grid stays regular,
or becomes rectilinear where an append's lengths differ), the new files' refs are set at their
chunk positions, and the ``concat_dim`` coordinate grows by the new values in the stored units
(zarr rewrites its chunks from the new values on: the last one for an append). An insert first
moves every later chunk up along the axis (:meth:`AsyncSession.shift_chunks`: refs only,
vectorised); it needs a regular grid whose chunks the gap and the new length fill exactly. No
committed file is opened again.

Anything else — new values overlapping committed ones, a changed file, arrays that are not the
committed ones, a committed last chunk that is partial, a gap off the chunk grid — is not an
append: the caller rebuilds the combined dataset from every source, as the first ingest did, so
the checks and the errors are exactly those of a rebuild.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import zarr
import zarr.storage

from icechunk_virtual._sync import sync
from icechunk_virtual.errors import StaleSourceError
from icechunk_virtual.format.snapshot import NodeKind
from icechunk_virtual.ingestion.combine import (
    MUST_AGREE,
    LoadValues,
    comparable_values,
    concat_axis,
    coordinate_values,
)
from icechunk_virtual.ingestion.locations import join, location
from icechunk_virtual.ingestion.write import PendingRefs, write_chunks
from icechunk_virtual.ingestion.zarr_arrays import create_array
from icechunk_virtual.zarr.store import IcechunkVirtualStore
from readers.types import VirtualArray, VirtualDataset

__all__ = ["append_after", "check_against_stored", "gap_grid", "in_stored_units", "moved_along"]

_SAME_METADATA = ("data_type", "codecs", "fill_value", "dimension_names", "chunk_key_encoding")


def append_after(
    store: IcechunkVirtualStore,
    group: str,
    delta: VirtualDataset,
    first_new: VirtualDataset,
    concat_dim: str,
    load: LoadValues,
    sources: Mapping[str, str | None],
) -> PendingRefs | None:
    """Extend the committed arrays of ``group`` by ``delta`` (the new files, combined), after
    them or in a gap; the refs still to set, or ``None`` if ``delta`` is neither an append nor
    an insert (nothing is written then)."""
    checked = check_against_stored(store, group, delta, first_new, concat_dim, load)
    if checked is None:
        return None
    stored, proposed = checked
    coordinate = "/" + concat_dim
    place = _place(store, join(group, coordinate), delta.arrays[coordinate])
    if place is None:
        return None
    grown = {}
    for path, array in delta.arrays.items():
        axis = concat_axis(array, concat_dim)
        if path != coordinate and axis is not None:
            if place.at == place.stored:
                grid = _grown(stored[path], proposed[path], axis)
            else:
                grid = gap_grid(stored[path], proposed[path], axis, place.at)
            if grid is None:
                return None
            grown[path] = (grid, axis)
    _write_coordinate(store, join(group, coordinate), place)
    pending: PendingRefs = []
    for path, (grid, axis) in sorted(grown.items()):
        array = delta.arrays[path]
        shifted = _grow(store, join(group, path), stored[path], grid, array, axis)
        if place.at < place.stored:  # a late file: later chunks move up to make room
            added = proposed[path]["shape"][axis] // grid[1][axis]
            sync(store.session.shift_chunks(join(group, path), axis, grid[2], added))
        refs = write_chunks(store, shifted, join(group, path), location(delta.url), sources)
        if refs is not None:
            pending.append(refs)
    return pending


def check_against_stored(
    store: IcechunkVirtualStore,
    group: str,
    delta: VirtualDataset,
    first_new: VirtualDataset,
    concat_dim: str,
    load: LoadValues,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]] | None:
    """The stored and the new arrays' ``zarr.json`` by path, if the new files' arrays can
    continue the stored ones (the same arrays and metadata, the other coordinates' values equal
    those stored); else ``None`` (also when the stored values come from a file that changed
    since: a rebuild then checks every file)."""
    stored = _stored_metadata(store, group)
    if stored is None or set(stored) != set(delta.arrays):
        return None
    coordinate = "/" + concat_dim
    proposed = _proposed_metadata(delta)
    for path, array in delta.arrays.items():
        if not _fits(
            stored[path], proposed[path], concat_axis(array, concat_dim), path == coordinate
        ):
            return None
        if path != coordinate and _is_other_coordinate(array, concat_dim):
            try:
                mine = _stored_values(store, join(group, path))
            except StaleSourceError:  # stored from a file that changed: it cannot be compared
                return None
            theirs = load(first_new, array)
            equal_nan = mine.dtype.kind == "f"
            if mine.shape != theirs.shape or not np.array_equal(mine, theirs, equal_nan=equal_nan):
                return None
    return stored, proposed


def _is_other_coordinate(array: VirtualArray, concat_dim: str) -> bool:
    name = array.path.rsplit("/", 1)[-1]
    return array.dimension_names == (name,) and name != concat_dim


def _stored_metadata(store: IcechunkVirtualStore, group: str) -> dict[str, dict[str, Any]] | None:
    """Every array directly in ``group``, by its path within the group (``None``: no group)."""
    session = store.session
    prefix = "/" + group.strip("/") if group.strip("/") else ""
    if session.node(prefix or "/") is None:
        return None
    found = {}
    for path in session.node_paths():
        node = session.node(path)
        inside = path.startswith(prefix + "/") and "/" not in path[len(prefix) + 1 :]
        if inside and node is not None and node.kind is NodeKind.ARRAY:
            found[path[len(prefix) :]] = dict(node.zarr_json)
    return found


def _proposed_metadata(delta: VirtualDataset) -> dict[str, dict[str, Any]]:
    """The ``zarr.json`` the new files' arrays would have, written where nothing is kept."""
    scratch = zarr.storage.MemoryStore()
    for path, array in delta.arrays.items():
        create_array(scratch, path, array)
    return {p: json.loads(scratch._store_dict[f"{p.strip('/')}/zarr.json"].to_bytes())
            for p in delta.arrays}  # fmt: skip


def _lengths_along(
    metadata: Mapping[str, Any], axis: int, *, last_may_be_partial: bool
) -> list[int] | None:
    """Every chunk's length along ``axis``; ``None`` for a grid the append does not know, or
    one whose last chunk is partial when it may not be (a stored array's: nothing can follow)."""
    size = metadata["shape"][axis]
    grid = metadata["chunk_grid"]
    key = "chunk_shape" if grid["name"] == "regular" else "chunk_shapes"
    if grid["name"] not in ("regular", "rectilinear"):
        return None
    spec = grid["configuration"][key][axis]
    if isinstance(spec, int):
        if not spec or (size % spec and not last_may_be_partial):
            return None
        return [spec] * -(-size // spec)
    lengths: list[int] = []
    for entry in spec:
        lengths += [entry[0]] * entry[1] if isinstance(entry, list) else [entry]
    return lengths if sum(lengths) == size else None


def _off_axis(metadata: Mapping[str, Any], axis: int | None) -> tuple[list[Any], list[Any]]:
    """The shape and the chunk grid's entries off ``axis``."""
    grid = metadata["chunk_grid"]
    chunks = grid["configuration"]["chunk_shape" if grid["name"] == "regular" else "chunk_shapes"]
    keep = [i for i in range(len(metadata["shape"])) if i != axis]
    return [metadata["shape"][i] for i in keep], [chunks[i] for i in keep]


def _fits(
    stored: dict[str, Any], new: dict[str, Any], axis: int | None, is_coordinate: bool
) -> bool:
    """Whether the new files' array can continue the stored one: the same metadata (for the
    ``concat_dim`` coordinate, re-encoded into the stored units later, only its rank), the same
    shape and chunks off the axis, and a stored last chunk that is whole."""
    if len(stored["shape"]) != len(new["shape"]):
        return False
    if not is_coordinate:
        same = all(stored.get(k) == new.get(k) for k in _SAME_METADATA)
        mine, theirs = stored.get("attributes", {}), new.get("attributes", {})
        if not same or any(mine.get(k) != theirs.get(k) for k in MUST_AGREE):
            return False
    if _off_axis(stored, axis) != _off_axis(new, axis):
        return False
    return (
        axis is None
        or is_coordinate
        or (  # zarr itself grows the coordinate
            _lengths_along(stored, axis, last_may_be_partial=False) is not None
            and _lengths_along(new, axis, last_may_be_partial=True) is not None
        )
    )


def _stored_values(store: IcechunkVirtualStore, path: str) -> np.ndarray:
    return np.asarray(zarr.open_array(store, path=path, mode="r")[...])


@dataclass(frozen=True)
class _Placement:
    """Where the new ``concat_dim`` values go among the stored ones."""

    at: int
    """Their first index (the stored length for an append, less for a late file)."""
    stored: int
    values: np.ndarray
    """The new values in the stored units and dtype."""
    tail: np.ndarray
    """The stored values from ``at`` on, which move after them."""


def _place(store: IcechunkVirtualStore, path: str, new: VirtualArray) -> _Placement | None:
    """Where the new coordinate values fall: after the stored ones (reading only the last
    chunk), or in a gap between two of them (reading them all); ``None`` if they overlap the
    stored values or the stored dtype cannot hold them exactly."""
    array = zarr.open_array(store, path=path, mode="r")
    old = array.shape[0]
    template = in_stored_units(new, array)
    new_values = coordinate_values(new)
    new_keys = comparable_values(new_values, new)
    last = np.asarray(array[max(old - 1, 0) :])
    encoded = _encode_like(new_keys, new_values, new, template, last.dtype)
    if encoded is None or not new_keys.size:
        return None
    last_keys = comparable_values(last, template)
    if not last_keys.size or last_keys[-1] < new_keys[0]:
        return _Placement(old, old, encoded, last[:0])
    stored_values = np.asarray(array[...])
    keys = comparable_values(stored_values, template)
    at = int(np.searchsorted(keys, new_keys[0]))
    if keys[at] <= new_keys[-1] or (at > 0 and keys[at - 1] >= new_keys[0]):
        return None  # not a gap: the new values overlap stored ones
    return _Placement(at, old, encoded, stored_values[at:])


def in_stored_units(new: VirtualArray, stored: Any) -> VirtualArray:
    """``new`` (a file's ``concat_dim`` coordinate) described with the stored coordinate's
    ``units`` and ``calendar``: how the stored values are decoded to compare with the new."""
    attributes = dict(stored.attrs)
    kept = {k: attributes[k] for k in ("units", "calendar") if k in attributes}
    return replace(new, attributes={**new.attributes, **kept})


def _write_coordinate(store: IcechunkVirtualStore, path: str, place: _Placement) -> None:
    """Grow the coordinate by the new values at their place (zarr rewrites the chunks from
    there on: the last one for an append)."""
    array = zarr.open_array(store, path=path, mode="r+")
    array.resize((place.stored + place.values.shape[0],))
    array[place.at :] = np.concatenate([place.values, place.tail])


def gap_grid(
    stored: dict[str, Any], new: dict[str, Any], axis: int, at: int
) -> tuple[list[int], list[Any], int] | None:
    """Like :func:`_grown` for new values inserted at index ``at``: the grown shape, the grid
    (regular, unchanged) and the chunk index the gap opens at; ``None`` unless the stored and
    new chunks are regular, equally long, and the gap and the new length fall on chunk ends."""
    size = _regular_length(stored, axis)
    if not size or size != _regular_length(new, axis):
        return None
    if at % size or new["shape"][axis] % size:
        return None
    grown = _grown(stored, new, axis)  # regular, equally long chunks: the regular grid grown
    assert grown is not None
    return grown[0], grown[1], at // size


def _encode_like(
    keys: np.ndarray,
    values: np.ndarray,
    new: VirtualArray,
    stored: VirtualArray,
    dtype: np.dtype[Any],
) -> np.ndarray | None:
    """The new coordinate values in the stored units and dtype, or ``None`` if not exact."""
    units, calendar = stored.attributes.get("units"), stored.attributes.get("calendar", "standard")
    if isinstance(units, str) and " since " in units and units != new.attributes.get("units"):
        from xarray.coding.times import encode_cf_datetime

        numbers, _, _ = encode_cf_datetime(keys, units, calendar)
        values = np.asarray(numbers)
    converted = values.astype(dtype)
    if converted.shape != values.shape or not np.array_equal(converted, values):
        return None
    return converted


def _grown(
    stored: dict[str, Any], new: dict[str, Any], axis: int
) -> tuple[list[int], list[Any], int] | None:
    """The stored array's shape and chunk-grid entries grown by ``new`` along ``axis``, and the
    number of stored chunks along it; ``None`` where the grown grid cannot hold the new chunks
    (a rectilinear grid whose last chunk would be partial)."""
    shape = list(stored["shape"])
    shape[axis] += new["shape"][axis]
    if (size := _regular_length(stored, axis)) and size == _regular_length(new, axis):
        chunks: list[Any] = list(_off_axis(stored, axis)[1])  # regular stays regular
        chunks.insert(axis, size)
        return shape, chunks, stored["shape"][axis] // size
    before = _lengths_along(stored, axis, last_may_be_partial=False)
    after = _lengths_along(new, axis, last_may_be_partial=True)
    assert before is not None and after is not None  # checked by _fits
    lengths = before + after
    if len(set(lengths)) > 1 and sum(lengths) != shape[axis]:
        return None
    chunks = list(_off_axis(stored, axis)[1])
    chunks.insert(axis, lengths[0] if len(set(lengths)) == 1 else lengths)
    return shape, chunks, len(before)


def _regular_length(metadata: Mapping[str, Any], axis: int) -> int | None:
    """The chunk length along ``axis`` of a regular grid (``None``: rectilinear)."""
    grid = metadata["chunk_grid"]
    return grid["configuration"]["chunk_shape"][axis] if grid["name"] == "regular" else None


def _grow(
    store: IcechunkVirtualStore,
    path: str,
    stored: dict[str, Any],
    grown: tuple[list[int], list[Any], int],
    array: VirtualArray,
    axis: int,
) -> VirtualArray:
    """Write the stored array's ``zarr.json`` with the grown shape and grid; ``array`` with its
    refs moved to the chunk positions after the stored ones."""
    shape, chunks, stored_chunks = grown
    scratch = zarr.storage.MemoryStore()
    zarr.create_array(scratch, name="a", shape=tuple(shape), chunks=chunks, dtype="u1",
                      compressors=None)  # fmt: skip
    grid = json.loads(scratch._store_dict["a/zarr.json"].to_bytes())["chunk_grid"]
    store.set_sync(
        f"{path}/zarr.json", _json_buffer({**stored, "shape": shape, "chunk_grid": grid})
    )
    return moved_along(array, axis, stored_chunks)


def moved_along(array: VirtualArray, axis: int, by: int) -> VirtualArray:
    """``array`` with its refs ``by`` chunks further along ``axis`` (its place in the dataset)."""
    refs, column = array.refs, f"c{axis}"
    shifted = pc.add(refs.column(column), pa.scalar(by, refs.schema.field(column).type))
    return replace(
        array, refs=refs.set_column(refs.schema.get_field_index(column), column, shifted)
    )


def _json_buffer(document: Mapping[str, Any]) -> Any:
    from zarr.core.buffer import default_buffer_prototype

    return default_buffer_prototype().buffer.from_bytes(json.dumps(document).encode())
