"""Every private zarr-python name this package relies on, in one place.

Checked against zarr-python 3.4.2 (``pyproject.toml`` caps zarr below 3.5 for this reason). The
read pipeline (:mod:`.read_pipeline`) subclasses ``FusedCodecPipeline`` and shares its thread
pool; it decodes through zarr's own ``decode_and_scatter_chunk`` so errors stay zarr's; the
inline reads reach a sync ``Array``'s async twin. When zarr changes one of these, this module is
the one to adapt (``tests/icechunk_virtual/zarr/test_zarr_internals.py`` fails first).
"""

from __future__ import annotations

from typing import Any

from zarr.core.chunk_utils import decode_and_scatter_chunk
from zarr.core.codec_pipeline import FusedCodecPipeline, _get_pool, _resolve_max_workers

__all__ = [
    "CHECKED_ZARR",
    "FusedCodecPipeline",
    "async_array_of",
    "decode_and_scatter_chunk",
    "pipeline_pool",
    "pool_workers",
]

CHECKED_ZARR = "3.4.2"
"""The zarr-python release these adapters were last checked against."""

pipeline_pool = _get_pool
"""``pipeline_pool(max_workers)``: the thread pool zarr's fused pipeline decodes on."""

pool_workers = _resolve_max_workers
"""``pool_workers()``: the number of decode threads zarr's config asks for."""


def async_array_of(array: Any) -> Any:
    """The ``AsyncArray`` a sync ``zarr.Array`` runs (``Array._async_array``)."""
    return array._async_array
