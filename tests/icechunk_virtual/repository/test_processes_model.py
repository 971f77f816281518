"""The sessions model with writers in separate OS processes, on local disk and on S3.

Three processes open sessions and commit at random against one branch. Afterwards the branch's
history is checked against the model: every landed commit is in it once; a landed commit
overlaps no commit between its base and itself (no lost update: a chunk both wrote, or ``/g``'s
attribute both set to different values); every conflict had such a rival after its base; and the
final contents are the landed commits applied in history order. (Disabling chunk-conflict
detection in ``conflicts.py`` makes it fail at once.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import zarr

import icechunk_virtual as iv

WORKER = Path(__file__).with_name("model_worker.py")
WRITERS, SESSIONS = 3, 8


def _start(spec: dict[str, Any]) -> subprocess.Popen[str]:
    command = [sys.executable, str(WORKER), json.dumps(spec)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _overlap(ours: dict[str, Any], theirs: dict[str, Any], attribute_after: Any) -> bool:
    if set(ours["chunks"]) & set(theirs["chunks"]):
        return True
    both = ours["attribute"] is not None and theirs["attribute"] is not None
    return both and ours["attribute"] != attribute_after


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_processes_follow_the_model(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    location = request.getfixturevalue(f"{backend}_location")
    repo = iv.Repository.create(
        location.url,
        storage_options=location.storage_options,
        config=iv.RepositoryConfig(manifest_split_rows=2),
    )
    session = repo.writable_session()
    zarr.create_array(session.store, name="a", shape=(6,), chunks=(1,), dtype="i4", fill_value=-1)
    zarr.open_group(session.store, path="g", mode="a")
    zarr.open_array(session.store, path="a")[:] = 0
    first = session.commit("start")
    go = tmp_path / "go"
    specs = [
        {"url": location.url, "storage_options": location.storage_options, "worker": w,
         "sessions": SESSIONS, "seed": w * 7919 + (backend == "s3"), "go_file": str(go)}
        for w in range(WRITERS)
    ]  # fmt: skip
    procs = [_start(spec) for spec in specs]
    go.touch()
    records = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        records += [json.loads(line) for line in out.splitlines()]
    for r in records:
        r["chunks"] = {int(i): v for i, v in r["chunks"].items()}
    history = [info.id for info in repo.ancestry(branch="main")][::-1]  # oldest first
    assert history[1] == first
    position = {str(s): i for i, s in enumerate(history)}
    landed = {r["snapshot"]: r for r in records if "snapshot" in r}
    assert set(landed) == set(map(str, history[2:])), "history holds exactly the landed commits"

    # replay: the state after each commit, and each commit checked against those since its base
    state_a, attribute = [0] * 6, None
    after: dict[str, Any] = {str(first): None}
    for snapshot in map(str, history[2:]):
        record = landed[snapshot]
        since = [landed[str(s)] for s in history[position[record["base"]] + 1 : position[snapshot]]]
        for rival in since:
            assert not _overlap(record, rival, after[rival["snapshot"]]), (record, rival)
        for i, value in record["chunks"].items():
            state_a[i] = value
        if record["attribute"] is not None:
            attribute = record["attribute"]
        after[snapshot] = attribute
    for r in (r for r in records if r.get("conflict")):
        rivals = [landed[str(s)] for s in history[position[r["base"]] + 1 :]]
        assert any(_overlap(r, rival, after[rival["snapshot"]]) for rival in rivals), r
    read = zarr.open_group(repo.readonly_session().store, mode="r")
    assert read["a"][:].tolist() == state_a
    assert read["g"].attrs.get("v") == attribute
    assert any("conflict" in r for r in records) or len(landed) == len(records)
