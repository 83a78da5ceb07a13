"""Put each member's corpus where the example alliance says it lies, so that the service can
run the example federated job (src/suanli/examples/federated-job.yaml): each dataset's files go
to DATA_ROOT/OWNER/PATH (the alliance file's ``owner`` and ``path``), as on its owner's nodes.

    python3 -m uv run --frozen --no-dev python examples/federated/stage.py [DATA_ROOT]

DATA_ROOT defaults to the embedded server's, ``.suanli/data``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from suanli.model.ids import DatasetId
from suanli.spec.alliance_file import load_alliance

HERE = Path(__file__).resolve().parent
ALLIANCE = HERE.parents[1] / "src" / "suanli" / "examples" / "alliance.yaml"
CORPORA = ("tang300", "song100", "chinese")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_root", type=Path, nargs="?", default=Path(".suanli/data"))
    args = ap.parse_args()
    alliance = load_alliance(ALLIANCE)
    root = args.data_root
    made = [p for p in (root.parent, root) if not p.exists()]
    root.mkdir(parents=True, exist_ok=True)
    for p in made:  # (the server keeps its state directory, and what it made in it, private)
        p.chmod(0o700)
    for name in CORPORA:
        ds = alliance.datasets[DatasetId(name)]
        dest = root / ds.owner / ds.path
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(HERE / "data" / f"{name}.txt", dest / f"{name}.txt")
        dest.chmod(0o755)  # (a run reads it as its member's own OS user, mounted where it runs)
        (dest / f"{name}.txt").chmod(0o644)
        print(f"{name} ({ds.owner}) -> {dest}")


if __name__ == "__main__":
    main()
