"""Every private xarray name this package relies on, in one place.

Checked against xarray 2026.9.0 (``pyproject.toml`` caps xarray below 2027). The engine reads
through subclasses of xarray's zarr backend classes: ``ZarrArrayWrapper._getitem`` / ``_oindex``
(the lazy array's basic and orthogonal reads) and ``ZarrStore.open_store_variable`` /
``members`` (how the store wraps each array). Their basic and orthogonal reads run zarr's async
read code to its end in the calling thread (:func:`~.read_pipeline.read_inline`), with no hop
through zarr's event-loop thread, so dask's threads read side by side; anything else falls back
to xarray's own code.
"""

from __future__ import annotations

from typing import Any

import xarray as xr
from xarray.backends.zarr import ZarrArrayWrapper, ZarrStore
from xarray.core import indexing

from icechunk_virtual.zarr.read_pipeline import NOT_INLINE, read_inline
from icechunk_virtual.zarr.task_chunks import DEFAULT_TASK_BYTES, grouped_chunks

__all__ = ["CHECKED_XARRAY", "InlineArrayWrapper", "InlineReadingStore"]

CHECKED_XARRAY = "2026.9.0"
"""The xarray release these adapters were last checked against."""


class InlineArrayWrapper(ZarrArrayWrapper):
    """xarray's lazy zarr array, reading in the calling thread (see ``read_inline``)."""

    def _getitem(self, key: Any) -> Any:
        value = read_inline(self._array, lambda inner: inner.getitem(key))
        return super()._getitem(key) if value is NOT_INLINE else value  # type: ignore[no-untyped-call]

    def _oindex(self, key: Any) -> Any:
        value = read_inline(self._array, lambda inner: inner.oindex.getitem(key))
        return super()._oindex(key) if value is NOT_INLINE else value  # type: ignore[no-untyped-call]


class InlineReadingStore(ZarrStore):
    """xarray's zarr store, with its arrays wrapped in :class:`InlineArrayWrapper` and their
    preferred chunks grouped into tasks of about :attr:`task_bytes` (see ``task_chunks``)."""

    task_bytes: int = DEFAULT_TASK_BYTES

    def open_store_variable(self, name: str) -> xr.Variable:
        variable: xr.Variable = super().open_store_variable(name)  # type: ignore[no-untyped-call]
        array: Any = self.members[name]  # an array: xarray asks for arrays only
        preferred = variable.encoding.get("preferred_chunks")
        if preferred and all(d in preferred for d in variable.dims):
            itemsize = array.dtype.itemsize or 8  # variable-length strings: a guess
            grouped = grouped_chunks(
                variable.shape,
                tuple(preferred[d] for d in variable.dims),
                itemsize,
                self.task_bytes,
            )
            variable.encoding["preferred_chunks"] = dict(zip(variable.dims, grouped, strict=True))
        wrapper = InlineArrayWrapper(array)  # type: ignore[no-untyped-call]
        return variable.copy(deep=False, data=indexing.LazilyIndexedArray(wrapper))  # type: ignore[arg-type]
