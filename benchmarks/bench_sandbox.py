"""The sandbox's overhead on the README's example jobs (issue 11).

Each of the example jobs of ``src/suanli/examples/service-jobs.yaml`` is started on the
local-process executor, sandboxed (bubblewrap, as its member's OS user when run as root) and
not (``--sandbox none``), alternating, ``--rounds`` times each. Start latency: from
``executor.start()`` until the job's first line is in its log (the command is the job's own,
preceded by ``echo started``); the run's whole wall time is reported too. Both modes run in the
same process, on the same machine, at the same time, so the ratio holds on a busy machine.

    uv run python benchmarks/bench_sandbox.py [--rounds 10]

Prints one JSON line per mode and a summary line with the ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from suanli.executors.base import RunPhase, RunRequest
from suanli.executors.local import LocalProcessExecutor
from suanli.executors.sandbox import SandboxConfig, SandboxMode
from suanli.model.ids import JobId, ModelId, NodeId

ROOT = Path(__file__).resolve().parents[1]
JOBS = ROOT / "src" / "suanli" / "examples" / "service-jobs.yaml"


def one(ex: LocalProcessExecutor, job: str, member: str, entrypoint: str) -> tuple[float, float]:
    req = RunRequest(
        JobId(job),
        1,
        f"echo started; {entrypoint}",
        ModelId("H800-80GB"),
        "cuda",
        ((NodeId("n1"), (0, 1)),),
        member=member,
    )
    t0 = time.perf_counter()
    ex.start(req)
    first = None
    while True:
        if first is None and ex.logs(JobId(job), 1).startswith(b"started"):
            first = time.perf_counter() - t0
        st = ex.observe().get((JobId(job), 1))
        if st is not None and st.phase is RunPhase.EXITED:
            if first is None:
                raise SystemExit(f"{job} printed nothing: {ex.logs(JobId(job), 1)!r}")
            return first, time.perf_counter() - t0
        time.sleep(0.002)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    jobs = yaml.safe_load(JOBS.read_text())["jobs"]
    results: dict[str, dict[str, list[float]]] = {
        m: {"start": [], "wall": []} for m in ("bwrap", "none")
    }
    with tempfile.TemporaryDirectory() as tmp:
        executors = {
            m: LocalProcessExecutor(Path(tmp) / m, SandboxConfig(SandboxMode(m))) for m in results
        }
        for r in range(args.rounds):
            for k, job in enumerate(jobs):
                for mode in ("bwrap", "none") if (r + k) % 2 else ("none", "bwrap"):
                    start, wall = one(
                        executors[mode], f"{job['name']}-{r}", job["member"], job["entrypoint"]
                    )
                    results[mode]["start"].append(start)
                    results[mode]["wall"].append(wall)
    out = {}
    for mode, r in results.items():
        s = sorted(r["start"])
        out[mode] = {
            "mode": mode,
            "runs": len(s),
            "start_median_ms": round(statistics.median(s) * 1000, 1),
            "start_p90_ms": round(s[int(0.9 * (len(s) - 1))] * 1000, 1),
            "wall_median_s": round(statistics.median(r["wall"]), 3),
        }
        print(json.dumps(out[mode]))
    print(
        json.dumps(
            {
                "sandbox_start_overhead_ms": round(
                    out["bwrap"]["start_median_ms"] - out["none"]["start_median_ms"], 1
                ),
                "start_ratio": round(
                    out["bwrap"]["start_median_ms"] / out["none"]["start_median_ms"], 2
                ),
                "wall_ratio": round(
                    out["bwrap"]["wall_median_s"] / out["none"]["wall_median_s"], 3
                ),
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
