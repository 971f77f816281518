"""The columns of a user's refs, in each form :func:`~.tables.virtual_refs` takes them.

Refs come as a ``pyarrow.Table`` or a mapping of columns; coordinates as one ``coord`` column
(an (n, ndim) array, nested lists or an Arrow list column) or one column per dimension
(``c0``, ``c1``, ...). Coordinates must be integers: numpy would silently truncate ``0.5`` to
``0`` (placing the ref in another chunk), wrap a null's NaN to a huge negative number, parse
``"1"`` and fail with a bare ``TypeError`` on ``None``; each of those is an ``InvalidInputError``
naming the problem instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from icechunk_virtual.errors import InvalidInputError
from icechunk_virtual.format.manifest_file import coord_names

__all__ = ["user_array", "user_column", "user_coords"]

type Refs = Mapping[str, Any] | pa.Table


def user_column(refs: Refs, name: str) -> Any:
    """The column ``name`` of a user's refs, or ``None`` if they have none."""
    if isinstance(refs, pa.Table):
        return refs.column(name) if name in refs.column_names else None
    return refs.get(name)


def user_array(refs: Refs, name: str, type_: pa.DataType) -> pa.Array:
    """The column ``name`` as ``type_`` (integers or strings): Python and numpy values converted,
    Arrow columns of the same kind cast (int64 offsets, dictionary-encoded locations), safely.

    Raises what pyarrow raises for values it cannot convert (``ArrowInvalid`` for a negative
    offset, ``ArrowTypeError`` for an Arrow column of another kind, ``TypeError`` if missing).
    """
    values = user_column(refs, name)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        return pa.array(values, type=type_)
    kind = values.type.value_type if pa.types.is_dictionary(values.type) else values.type
    if pa.types.is_integer(type_):
        same_kind = pa.types.is_integer(kind)
    else:
        same_kind = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    if not (same_kind or pa.types.is_null(kind)):
        raise pa.ArrowTypeError(f"'{name}' is a column of {values.type}, not {type_}")
    return values.cast(type_)


def _integers(values: Any, where: str) -> npt.NDArray[np.int64]:
    try:
        array = np.asarray(values)
    except ValueError as exc:  # ragged nested lists
        raise InvalidInputError(f"{where}: chunk coordinates are ragged: {exc}") from exc
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise InvalidInputError(f"{where}: chunk coordinates must be integers, got {array.dtype}")
    return array.astype(np.int64)


def user_coords(refs: Refs, ndim: int, where: str, *, rows: int) -> npt.NDArray[np.int64]:
    """The (n, ndim) int64 coordinates of a user's refs (``rows`` x 0 for a scalar array)."""
    names = coord_names(ndim)
    if all(user_column(refs, n) is not None for n in names) and ndim > 0:
        columns = [_integers(user_column(refs, n), where) for n in names]
        if any(c.ndim != 1 for c in columns) or len({len(c) for c in columns}) > 1:
            shapes = ", ".join(f"{n} {c.shape}" for n, c in zip(names, columns, strict=True))
            raise InvalidInputError(
                f"{where}: coordinate columns must be 1-dimensional and equally long, got {shapes}"
            )
        return np.column_stack(columns)
    coord = user_column(refs, "coord")
    if coord is None:
        if ndim == 0:  # a scalar array: coordinate () for each ref
            return np.zeros((rows, 0), dtype=np.int64)
        raise InvalidInputError(
            f"{where}: refs need a 'coord' column (n x {ndim}) or columns {', '.join(names)}"
        )
    return _coord_column(coord, ndim, where)


def _coord_column(coord: Any, ndim: int, where: str) -> npt.NDArray[np.int64]:
    if isinstance(coord, pa.ChunkedArray):
        coord = coord.combine_chunks()
    if isinstance(coord, pa.Array):
        widths = pc.unique(pc.list_value_length(coord))
        if widths.null_count or len(widths) > 1:
            raise InvalidInputError(f"{where}: 'coord' lists must all have {ndim} entries")
        flat = _integers(coord.flatten().to_numpy(zero_copy_only=False), where)
        array = flat.reshape(len(coord), widths[0].as_py() if len(widths) else ndim)
    else:
        array = _integers(coord, where)
    if array.ndim != 2 or array.shape[1] != ndim:
        raise InvalidInputError(
            f"{where}: 'coord' must have shape (n, {ndim}) for a {ndim}-dimensional array, "
            f"got {array.shape}"
        )
    return array
