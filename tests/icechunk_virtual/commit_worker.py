"""A separate OS process that commits to a repository; driven by the concurrency and crash tests.

Usage: python commit_worker.py SPEC_JSON, where the spec holds ``url``, ``storage_options``,
``worker`` (its array is ``/w<worker>``), ``commits``, optional ``go_file`` (wait for it before the
first commit, so all workers start together) and optional ``crash_at`` ([call number, "before" |
"after"]): SIGKILL this process around that storage write. Prints one snapshot id per commit.
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


def main(spec: dict[str, Any]) -> None:
    repo = iv.Repository.open(spec["url"], storage_options=spec.get("storage_options") or None)
    go_file = spec.get("go_file")
    while go_file and not os.path.exists(go_file):
        time.sleep(0.01)
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
