"""The codec pipeline the xarray engine reads with: zarr's fused pipeline, fetching in slices.

zarr's ``FusedCodecPipeline`` reads a batch of chunks on a thread pool, one task per chunk: fetch
(``store.get_sync``), decode, copy into the output. With our store each fetch is a key parse, a
manifest lookup and a ``pread``, in Python, under the GIL, so two decode threads spend much of their
time waiting for each other. This pipeline hands each pool task a slice of the batch instead: the
slice's chunks are fetched in one :meth:`IcechunkVirtualStore.get_many_sync` call (refs looked up
in one vectorised search, files opened once, remote sources in one coalesced async batch). Chunks
whose codecs are plain bytes under our zlib and/or shuffle decoders are then decoded on per-thread
scratch buffers and copied straight into the output; any other chunk is decoded and copied by
zarr's own functions, and anything else (another store, sharding) is zarr's own path.

:func:`read_config` selects this pipeline and the faster decoders of :mod:`fast_codecs` for arrays
opened inside it; the xarray engine uses it, and a user opening a store with zarr directly can too::

    with zarr.config.set(icechunk_virtual.read_config()):
        arr = zarr.open_array(session.store, path="t2m")

The choice is made when an array is opened and stays with it; arrays opened outside keep zarr's
defaults.

:func:`read_inline` runs one of zarr's async reads to its end in the calling thread, with this
pipeline's ``read`` reading right there instead of hopping to a thread: the xarray engine reads so,
and dask's threads then read side by side instead of queueing on zarr's one event-loop thread.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any, Literal, cast

import numpy as np
import zarr
from zarr.abc.codec import GetResult
from zarr.codecs.bytes import BytesCodec
from zarr.core.array_spec import ArraySpec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.core.indexing import SelectorTuple
from zarr.registry import register_pipeline
from zarr.storage import StorePath

from icechunk_virtual.errors import CorruptChunkError, IcechunkVirtualError
from icechunk_virtual.zarr.fast_codecs import (
    FastShuffle,
    FastZlib,
    chunk_nbytes,
    codec_config,
    inflate,
    unshuffle,
)
from icechunk_virtual.zarr.store import IcechunkVirtualStore
from icechunk_virtual.zarr.zarr_internals import (
    FusedCodecPipeline,
    async_array_of,
    decode_and_scatter_chunk,
    pipeline_pool,
    pool_workers,
)

__all__ = ["NOT_INLINE", "SlicedReadPipeline", "read_config", "read_inline"]

_MAX_SLICE = 32
"""Chunks fetched by one pool task: enough to amortise the lookup, few enough to balance load."""


_INLINE: ContextVar[bool] = ContextVar("icechunk_virtual_inline_read", default=False)
"""Set while :func:`read_inline` drives a zarr read in the calling thread."""


class SlicedReadPipeline(FusedCodecPipeline):
    """``FusedCodecPipeline`` that fetches each pool task's chunks in one store call."""

    async def read(
        self,
        batch_info: Iterable[tuple[Any, Any, SelectorTuple, SelectorTuple, bool]],
        out: NDBuffer,
        drop_axes: tuple[int, ...] = (),
    ) -> tuple[GetResult, ...]:
        batch = list(batch_info)
        if _INLINE.get():  # driven by read_inline: no event loop, read right here
            return self.read_sync(batch, out, drop_axes, max_workers=pool_workers())
        try:
            return await super().read(batch, out, drop_axes)
        except IcechunkVirtualError:
            raise  # already typed (a missing or changed source...)
        except _DECODE_FAILURES as exc:
            raise self._corrupt([path for path, *_ in batch], exc) from exc

    def _corrupt(self, byte_getters: list[Any], exc: BaseException) -> CorruptChunkError:
        """The typed error for a chunk (or a batch holding it) whose bytes do not decode."""
        keys = [str(getattr(g, "path", g)) for g in byte_getters]
        array, _, chunk = keys[0].rpartition("/c/") if "/c/" in keys[0] else ("/", "", keys[0])
        chunk = chunk if chunk.startswith("c/") else f"c/{chunk}"
        shown = chunk if len(keys) == 1 else f"{chunk} (or another of {len(keys)} in its batch)"
        names = [str(c.to_dict().get("name", type(c).__name__)) for c in self]
        return CorruptChunkError("/" + array.strip("/"), shown, names, exc)

    def read_sync(
        self,
        batch_info: Iterable[tuple[Any, Any, SelectorTuple, SelectorTuple, bool]],
        out: NDBuffer,
        drop_axes: tuple[int, ...] = (),
        max_workers: int = 1,
    ) -> tuple[GetResult, ...]:
        batch = list(batch_info)
        store = _shared_store(batch)
        partial = self.supports_partial_decode and hasattr(
            self.array_bytes_codec, "_decode_partial_sync"
        )
        if store is None or partial or self.sync_transform is None:
            return super().read_sync(batch, out, drop_axes, max_workers)
        decode, fetch = self.sync_transform.decode_chunk, store.get_many_sync
        out_array = out.as_ndarray_like()
        fused = _fused_decoder(self) if isinstance(out_array, np.ndarray) else None
        out_np = cast(np.ndarray, out_array)  # only used where ``fused`` is set

        def read_slice(items: list[tuple[Any, Any, Any, Any, bool]]) -> list[GetResult]:
            raws = fetch(
                [byte_getter.path for byte_getter, *_ in items], prototype=items[0][1].prototype
            )
            results = []
            for raw, item in zip(raws, items, strict=True):
                try:
                    results.append(decode_one(raw, *item[1:4]))
                except IcechunkVirtualError:
                    raise
                except _DECODE_FAILURES as exc:
                    raise self._corrupt([item[0]], exc) from exc
            return results

        def decode_one(
            raw: Buffer | None, chunk_spec: Any, chunk_selection: Any, out_selection: Any
        ) -> GetResult:
            if raw is not None and fused is not None:
                region = _whole_chunk_region(
                    out_np, chunk_spec, chunk_selection, out_selection, drop_axes
                )
                chunk = fused(raw, chunk_spec, region)
                if chunk is not None:
                    if chunk is not region:
                        selected = chunk[chunk_selection]
                        if drop_axes:
                            selected = selected.squeeze(axis=drop_axes)
                        out_np[out_selection] = selected
                    return GetResult(status="present")
            return decode_and_scatter_chunk(
                raw,
                out,
                chunk_spec=chunk_spec,
                chunk_selection=chunk_selection,
                out_selection=out_selection,
                drop_axes=drop_axes,
                decode=decode,
            )

        size = max(1, min(_MAX_SLICE, -(-len(batch) // (4 * max(max_workers, 1)))))
        slices = [batch[i : i + size] for i in range(0, len(batch), size)]
        if max_workers > 1 and len(slices) > 1:
            parts = list(pipeline_pool(max_workers).map(read_slice, slices))
        else:
            parts = [read_slice(s) for s in slices]
        return tuple(result for part in parts for result in part)


_DECODE_FAILURES: tuple[type[BaseException], ...] = (
    zlib.error, ValueError, RuntimeError, OverflowError, EOFError, IndexError, KeyError,
)  # fmt: skip
"""What codecs raise on damaged bytes (zlib, numcodecs, imagecodecs' ValueError/RuntimeError
kinds); our own errors are not among them (they are already typed), nor TypeError and its kin,
which are bugs."""


class _Scratch(threading.local):
    """Two byte buffers per thread that the fused decode reuses from chunk to chunk (a fresh
    buffer per chunk and step costs the kernel a page fault per 4 kB)."""

    def __init__(self) -> None:
        self.buffers = [np.empty(0, np.uint8), np.empty(0, np.uint8)]

    def get(self, which: int, nbytes: int) -> np.ndarray:
        if self.buffers[which].size < nbytes:
            self.buffers[which] = np.empty(nbytes, np.uint8)
        return self.buffers[which][:nbytes]


_scratch = _Scratch()
_ENDIAN: dict[str, Literal["<", ">"]] = {"little": "<", "big": ">"}


def _fused_decoder(
    pipeline: FusedCodecPipeline,
) -> Callable[[Buffer, ArraySpec, np.ndarray | None], np.ndarray | None] | None:
    """For a chain of our zlib and shuffle decoders over plain bytes, a decode that runs the steps
    on per-thread scratch buffers; ``None`` for any other chain.

    ``decode(raw, spec, region)`` returns the chunk as a numpy array; given ``region`` (the part of
    the output that is exactly this chunk), the last step writes there and ``region`` itself is
    returned. It returns ``None`` for any chunk it does not fit (other dtypes, wrong sizes): zarr's
    codecs then decode it, errors included.
    """
    codec = pipeline.array_bytes_codec
    if pipeline.array_array_codecs or type(codec) is not BytesCodec:
        return None
    steps: list[int | None] = []  # None: inflate; n: unshuffle n-byte elements
    for bb in reversed(pipeline.bytes_bytes_codecs):
        if isinstance(bb, FastZlib):
            steps.append(None)
        elif isinstance(bb, FastShuffle) and isinstance(bb.codec_config.get("elementsize"), int):
            steps.append(bb.codec_config["elementsize"])  # type: ignore[arg-type]
        else:
            return None
    endian = _ENDIAN.get(codec.endian or "")

    def decode(raw: Buffer, spec: ArraySpec, region: np.ndarray | None) -> np.ndarray | None:
        dtype = spec.dtype.to_native_dtype()
        if dtype.kind not in "biufcmM":
            return None
        stored = dtype if dtype.itemsize == 1 or endian is None else dtype.newbyteorder(endian)
        nbytes = chunk_nbytes(spec)
        in_place = region is not None and bool(steps) and stored == dtype == region.dtype
        data: Any = raw.as_numpy_array()
        for i, step in enumerate(steps):
            last = i == len(steps) - 1
            target = region.view(np.uint8).reshape(-1) if last and in_place else None  # type: ignore[union-attr]
            if target is None:
                target = _scratch.get(i % 2, nbytes)
            data = inflate(data, nbytes, target) if step is None else unshuffle(data, step, target)
            if data is None:
                return None
        data = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data
        if data.size != nbytes:
            return None
        if in_place and np.may_share_memory(data, region):
            return region
        chunk: np.ndarray = data.view(stored).reshape(spec.shape)
        return chunk if stored == dtype else chunk.astype(dtype)

    return decode


def _whole_chunk_region(
    out: np.ndarray,
    spec: ArraySpec,
    chunk_selection: SelectorTuple,
    out_selection: SelectorTuple,
    drop_axes: tuple[int, ...],
) -> np.ndarray | None:
    """The view of ``out`` a whole chunk is copied to, if the read takes the whole chunk and that
    view is one contiguous block of the chunk's shape (so it can be decoded into directly)."""
    if drop_axes or not isinstance(chunk_selection, tuple) or not isinstance(out_selection, tuple):
        return None
    if len(chunk_selection) != len(spec.shape) or not all(
        isinstance(sel, slice) and sel.indices(n) == (0, n, 1)
        for sel, n in zip(chunk_selection, spec.shape, strict=True)
    ):
        return None
    if not all(isinstance(sel, slice) for sel in out_selection):
        return None
    region = out[out_selection]
    if region.shape != tuple(spec.shape) or not region.flags.c_contiguous:
        return None
    return region


def _shared_store(batch: list[tuple[Any, ...]]) -> IcechunkVirtualStore | None:
    """The store every chunk of the batch is read from, if it is ours (else ``None``)."""
    if not batch:
        return None
    first = batch[0][0]
    if not isinstance(first, StorePath) or not isinstance(first.store, IcechunkVirtualStore):
        return None
    store = first.store
    if any(not isinstance(bg, StorePath) or bg.store is not store for bg, *_ in batch):
        return None
    return store


register_pipeline(SlicedReadPipeline)


def read_config() -> dict[str, Any]:
    """zarr config (for ``zarr.config.set``) that opens arrays on this pipeline with our decoders."""
    pipeline = f"{SlicedReadPipeline.__module__}.{SlicedReadPipeline.__qualname__}"
    return {"codec_pipeline.path": pipeline, **codec_config()}


class NotInline:
    """Marker: the read needs zarr's event loop after all."""


NOT_INLINE = NotInline()


def read_inline(array: zarr.Array[Any], read: Callable[[zarr.AsyncArray[Any]], Any]) -> Any:
    """Run ``read(array's AsyncArray)`` — a coroutine of zarr's async reading API — to its end in
    the calling thread, without an event loop; ``NOT_INLINE`` if the array is not on this pipeline
    over our store (or the coroutine wants a loop after all), for the caller to read as usual.

    zarr's synchronous API hands every read to its one event-loop thread and from there to a
    decode thread: ~0.35 ms of hops per call, and the reads of all threads (dask's) queue on that
    loop. Here zarr's own selection logic runs as it is; only the pipeline's ``read`` — the one
    thing it awaits — reads in the calling thread.
    """
    inner = async_array_of(array)
    pipeline = inner.codec_pipeline
    if (
        not isinstance(pipeline, SlicedReadPipeline)
        or pipeline.sync_transform is None
        or not isinstance(inner.store_path.store, IcechunkVirtualStore)
    ):
        return NOT_INLINE
    coroutine = read(inner)
    token = _INLINE.set(True)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    finally:
        _INLINE.reset(token)
    coroutine.close()  # it suspended: it needs a loop
    return NOT_INLINE
