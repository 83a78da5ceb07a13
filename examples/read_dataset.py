"""A job that reads a dataset where it resides.

The job spec names the dataset (``datasets: [pc-corpus]``): the scheduler then places the job
only at sites where every named dataset may be processed, and suanli tells the job which
datasets it was admitted with in ``SUANLI_DATASETS``. The data itself never leaves its site:
the job sees each dataset read-only at ``$SUANLI_DATA_DIR/ID`` (the site's own storage,
``DATA_ROOT/OWNER/PATH``, shown to this job only), and prints only an aggregate.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def main() -> int:
    root = Path(os.environ.get("SUANLI_DATA_DIR", "data"))
    names = [d for d in os.environ.get("SUANLI_DATASETS", "").split(",") if d]
    if not names:
        print("no dataset was named in the job spec")
        return 2
    for name in names:
        files = sorted((root / name).glob("*.txt"))
        digest = hashlib.sha256()
        lines = 0
        for f in files:
            data = f.read_bytes()
            digest.update(data)
            lines += data.count(b"\n")
        print(
            f"dataset {name} at {os.environ.get('SUANLI_NODE')}: {len(files)} shards, "
            f"{lines} lines, sha256 {digest.hexdigest()[:16]}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
