"""One writer of the process model test: random sessions against a shared repository.

Usage: python model_worker.py SPEC_JSON (``url``, ``storage_options``, ``worker``, ``sessions``,
``seed``, ``go_file``). Each session opens on ``main``, writes a few chunks of ``/a`` (6 chunks,
values ``worker * 1000 + n``) and perhaps sets ``/g``'s attribute ``v``, and commits. One JSON
line per session: its base snapshot, what it wrote, and ``snapshot`` (landed) or ``conflict``.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import zarr

import icechunk_virtual as iv


def main(spec: dict[str, object]) -> None:
    rng = random.Random(int(spec["seed"]))  # type: ignore[call-overload]
    repo = iv.Repository.open(str(spec["url"]), storage_options=dict(spec["storage_options"]))  # type: ignore[call-overload]
    go = Path(str(spec["go_file"]))
    while not go.exists():
        time.sleep(0.01)
    worker = int(spec["worker"])  # type: ignore[call-overload]
    for n in range(int(spec["sessions"])):  # type: ignore[call-overload]
        session = repo.writable_session()
        base = str(session.snapshot_id)
        chunks = dict.fromkeys(rng.sample(range(6), rng.randint(0, 2)), worker * 1000 + n)
        attribute = rng.choice([None, None, worker % 2])
        array = zarr.open_array(session.store, path="a")
        for i, value in chunks.items():
            array[i] = value
        if attribute is not None:
            group = zarr.open_group(session.store, path="g")
            if group.attrs.get("v") != attribute:
                group.attrs["v"] = attribute
            else:
                attribute = None  # the same value: no change
        record: dict[str, object] = {"base": base, "chunks": chunks, "attribute": attribute}
        if not chunks and attribute is None:
            continue
        try:
            record["snapshot"] = str(session.commit(f"w{worker} s{n}"))
        except iv.ConflictError:
            record["conflict"] = True
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
