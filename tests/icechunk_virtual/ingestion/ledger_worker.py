"""A writer process of the ledger race tests: ``python ledger_worker.py GO URL PATH GROUP``
opens the repository, waits until the file GO exists (so that every writer starts at once),
then ingests one file."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main(go: str, url: str, path: str, group: str) -> None:
    import icechunk_virtual as iv

    repo = iv.Repository.open(url)
    while not Path(go).exists():
        time.sleep(0.005)
    iv.ingest(repo, [path], concat_dim="time", group=group, progress=False)


if __name__ == "__main__":
    main(*sys.argv[1:5])
