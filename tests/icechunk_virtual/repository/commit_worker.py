"""A separate OS process that commits to a repository; driven by the concurrency and crash tests.

Usage: python commit_worker.py SPEC_JSON, where the spec holds ``url``, ``storage_options``,
``worker`` (its array is ``/w<worker>``), ``commits``, optional ``go_file`` (wait for it before the
first commit, so all workers start together) and optional ``crash_at`` ([call number, "before" |
"after"]): SIGKILL this process around that storage write. Prints one snapshot id per commit.

With ``"contend": true`` the worker instead writes its own chunk ``worker`` of the existing array
``/shared`` in every commit (rivals' commits touch other chunks, so they rebase) and, when
``worker % 4 == 0``, chunk 0 of the existing array ``/hot`` too (rivals' commits touch the same
chunk, so they conflict). It prints ``ok <snapshot id> <value>`` or ``conflict <value>`` per commit.

With ``"forever": true`` it prints ``ready``, then commits until killed: commit ``n`` (counting on
from the number in the tip's message) writes ``n`` into every chunk of the existing array ``/a``
with the message ``str(n)``, and prints ``n`` once the commit returned.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

import numpy as np
import zarr

import icechunk_virtual as iv
from icechunk_virtual.storage import FsspecStorage, LocalStorage, MemoryStorage


def _install_crash(call_number: int, when: str) -> None:
    calls = {"n": 0}
    for cls in (LocalStorage, MemoryStorage, FsspecStorage):
        for name in ("put", "put_if_absent"):
            original = getattr(cls, name)

            async def wrapped(self: Any, key: str, data: bytes, _orig: Any = original) -> Any:
                calls["n"] += 1
                if calls["n"] == call_number and when == "before":
                    os.kill(os.getpid(), signal.SIGKILL)
                result = await _orig(self, key, data)
                if calls["n"] == call_number and when == "after":
                    os.kill(os.getpid(), signal.SIGKILL)
                return result

            setattr(cls, name, wrapped)


def contend(repo: iv.Repository, worker: int, commits: int) -> None:
    for i in range(commits):
        value = 1000 * worker + i
        session = repo.writable_session("main")
        zarr.open_array(session.store, path="shared")[worker] = value
        if worker % 4 == 0:
            zarr.open_array(session.store, path="hot")[0] = value
        try:
            print(f"ok {session.commit(f'w{worker} commit {i}')} {value}", flush=True)
        except iv.ConflictError:
            print(f"conflict {value}", flush=True)


def forever(repo: iv.Repository) -> None:
    print("ready", flush=True)
    n = int(next(repo.ancestry(branch="main")).message)
    while True:
        n += 1
        session = repo.writable_session("main")
        array = zarr.open_array(session.store, path="a")
        array[:] = np.full(array.shape, n, dtype=array.dtype)
        session.commit(str(n))
        print(n, flush=True)


def main(spec: dict[str, Any]) -> None:
    repo = iv.Repository.open(spec["url"], storage_options=spec.get("storage_options") or None)
    go_file = spec.get("go_file")
    while go_file and not os.path.exists(go_file):
        time.sleep(0.01)
    if spec.get("forever"):
        forever(repo)
    if spec.get("contend"):
        contend(repo, int(spec["worker"]), int(spec["commits"]))
        return
    name = f"w{spec['worker']}"
    commits = int(spec["commits"])
    for i in range(commits):
        session = repo.writable_session("main")
        group = zarr.open_group(session.store, mode="a")
        if name not in group:
            group.create_array(name, shape=(2 * commits,), chunks=(2,), dtype="i8", fill_value=-1)
        if spec.get("crash_at") and i == commits - 1:
            _install_crash(*spec["crash_at"])
        zarr.open_array(session.store, path=name)[2 * i : 2 * i + 2] = np.full(
            2, 1000 * spec["worker"] + i
        )
        print(session.commit(f"{name} commit {i}"), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
