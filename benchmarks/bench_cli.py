"""CLI start-up: CPU seconds of ``suanli --help``, ``suanli jobs`` and ``suanli queue`` against a
running server (user + system time of the command's process, the median of ``--runs``), and the
import time of the CLI's entry module. With ``--compare OTHER_CHECKOUT`` the same commands run
from that checkout's ``src`` too, alternating, for a before/after ratio in one run.

    uv run python benchmarks/bench_cli.py [--runs 7] [--compare OTHER_CHECKOUT]

Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live import free_port, spawn_server, stop, wait_up  # noqa: E402

COMMANDS = [["--help"], ["jobs"], ["queue"]]


def cpu_s(argv: list[str], env: dict[str, str]) -> float:
    """User + system seconds of one run of ``suanli ARGV``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "suanli", *argv], env=env, check=True, capture_output=True
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def import_s(env: dict[str, str]) -> float:
    """Cumulative import time of suanli.cli.main (python -X importtime), in seconds."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import suanli.cli.main"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    for line in out.stderr.splitlines():
        if line.rstrip().endswith("| suanli.cli.main"):
            return int(line.split("|")[1]) / 1e6
    raise RuntimeError("no import time for suanli.cli.main")


def main() -> None:
    ap = argparse.ArgumentParser(description="CLI start-up")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--compare", type=Path, metavar="CHECKOUT")
    args = ap.parse_args()
    state = Path(tempfile.mkdtemp(prefix="suanli-bench-")) / "state"
    port = free_port()
    server = spawn_server(state, port, 1.0)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_up(url, server)
        base = {**os.environ, "SUANLI_URL": url}
        base["SUANLI_TOKEN"] = (state / "admin-token").read_text().strip()
        versions = {"after": base}
        if args.compare:
            versions = {"before": {**base, "PYTHONPATH": str(args.compare / "src")}, **versions}
        cpu: dict[tuple[str, str], list[float]] = {}
        imports: dict[str, list[float]] = {v: [] for v in versions}
        for _ in range(args.runs):
            for version, env in versions.items():
                imports[version].append(import_s(env))
                for argv in COMMANDS:
                    cpu.setdefault((version, " ".join(argv)), []).append(cpu_s(argv, env))
        for (version, command), values in cpu.items():
            row = {"bench": "cli_cpu", "version": version, "command": f"suanli {command}"}
            row |= {
                "median_cpu_s": round(statistics.median(values), 3),
                "max_cpu_s": round(max(values), 3),
            }
            print(json.dumps(row), flush=True)
        for version, values in imports.items():
            row = {"bench": "cli_import", "version": version}
            row |= {"median_s": round(statistics.median(values), 3)}
            print(json.dumps(row), flush=True)
    finally:
        stop(server)


if __name__ == "__main__":
    main()
