"""A session read from several threads while another writes to it: the change set is shared, and
merging its buffered writes for a read must not race with the next write (it raised
``pyarrow.ArrowInvalid`` in 4 runs of 4 before the change set's lock covered it)."""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import zarr

import icechunk_virtual as iv
from icechunk_virtual._sync import sync

N = 2000


@pytest.fixture
def eager_thread_switches() -> Iterator[None]:
    """Switch threads as often as the interpreter can, so a race shows up in every run."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("eager_thread_switches")
def test_reads_while_another_thread_writes() -> None:
    repo = iv.Repository.create(f"memory://{uuid.uuid4().hex}")
    session = repo.writable_session()
    zarr.create_array(session.store, name="a", shape=(N,), chunks=(1,), dtype="int64",
                      fill_value=0, compressors=None)  # fmt: skip
    core = session.async_session
    errors: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        try:
            for i in range(N):
                if i % 7 == 0:
                    core.delete_chunk("/a", (i,))
                else:
                    sync(core.write_chunk("/a", (i,), np.int64(i).tobytes()))
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def read() -> None:
        try:
            while not done.is_set():
                for c in range(0, N, 97):
                    data = core.chunks.read_chunk_sync("/a", (c,))
                    assert data is None or np.frombuffer(data, "<i8")[0] == c
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, repr(errors[0])
    expected = np.where(np.arange(N) % 7 == 0, 0, np.arange(N))
    np.testing.assert_array_equal(zarr.open_array(session.store, path="a")[:], expected)
