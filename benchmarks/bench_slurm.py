"""Slurm site benchmark: submit-to-running through suanli's Slurm executor against ``sbatch``
directly, on the same real one-node cluster, in the same run (root; Slurm and munge installed).

Each round submits one job both ways, alternating which goes first: ``sbatch --parsable``
then ``squeue`` polled until the job is RUNNING; and ``SlurmExecutor.start`` then
``observe`` polled until the run is RUNNING (what the controller does). The figure is the
median of the ratio suanli / sbatch over the rounds (target: at most 1.2).

    uv run python benchmarks/bench_slurm.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.slurm import LocalSlurm

from suanli.catalog.accelerator import load_catalog
from suanli.executors.base import RunPhase, RunRequest
from suanli.executors.slurm import SlurmExecutor
from suanli.model.ids import JobId, ModelId, NodeId
from suanli.model.site import SlurmSite

POLL_S = 0.05


def direct(slurm: LocalSlurm, k: int) -> float:
    t0 = time.perf_counter()
    jobid = slurm.run(
        "sbatch",
        "--parsable",
        f"--job-name=direct-{k}",
        "--gres=npu:ascend910b:1",
        "--output=/dev/null",
        "--wrap",
        "sleep 30",
    ).strip()
    while "RUNNING" not in slurm.run("squeue", "--noheader", "--job", jobid, "--format=%T"):
        time.sleep(POLL_S)
    took = time.perf_counter() - t0
    slurm.run("scancel", jobid)
    return took


def through_suanli(ex: SlurmExecutor, k: int) -> float:
    job = JobId(f"bench-{k}")
    run = RunRequest(job, 1, "sleep 30", ModelId("Ascend910B"), "npu", ((NodeId("n"), (0,)),))
    t0 = time.perf_counter()
    ex.start(run)
    while True:
        st = ex.observe().get((job, 1))
        if st is not None and st.phase is RunPhase.RUNNING:
            break
        time.sleep(POLL_S)
    took = time.perf_counter() - t0
    ex.stop(job, 1, 0.0)
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description="Slurm submit-to-running benchmark")
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    with LocalSlurm() as slurm, tempfile.TemporaryDirectory() as tmp:
        site = SlurmSite(names={NodeId("n"): slurm.node})
        ex = SlurmExecutor(
            site,
            load_catalog(),
            {NodeId("n"): ModelId("Ascend910B")},
            Path(tmp) / "runs",
            Path(tmp) / "ckpt",
            env=slurm.env,
        )
        direct(slurm, -1), through_suanli(ex, -1)  # (warm both paths)
        ours, theirs = [], []
        for k in range(args.rounds):
            if k % 2:
                theirs.append(direct(slurm, k))
                ours.append(through_suanli(ex, k))
            else:
                ours.append(through_suanli(ex, k))
                theirs.append(direct(slurm, k))
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        print(
            json.dumps(
                {
                    "rounds": args.rounds,
                    "sbatch_median_s": round(statistics.median(theirs), 3),
                    "suanli_median_s": round(statistics.median(ours), 3),
                    "ratio_median": round(statistics.median(ratios), 3),
                    "ratio_p90": round(sorted(ratios)[int(0.9 * (len(ratios) - 1))], 3),
                }
            )
        )


if __name__ == "__main__":
    main()
