"""Gavel's msr traces: one file per Philly virtual cluster, speeds from Gavel's throughputs.

Line format (tab-separated): job_type, command, num_steps_arg, needs_data_dir, total_steps,
arrival_time_seconds, scale_factor. A job's speed on GPU type t is
``throughputs[t][repr((job_type, scale))]['null']`` steps per second (the job alone).

Missing entries. About 10 % of jobs have a (job type, scale) pair the throughput file lacks
(scales above 8, or multi-GPU entries missing for a type). Rule, applied per GPU type: take the
largest measured scale s0 below the job's scale s for that job type and type (or the smallest
above if none is below) and use ``T(s) = T(s0) · (s / s0) · e`` with e = 0.9 when s > s0
(scaling out beyond what was measured costs 10 %) and e = 1 when s < s0. Every job it touches
is counted and flagged in ``SimJob.info['speed']``; none is dropped.

Gavel's own reading (``zero="cannot-run"``, ``unknown="drop"``: its simulator side by side,
docs/simulator.md): a throughput of 0.0 means the job cannot run on that type (ResNet-50 on
2-8 K80s), and a job whose (type, scale) any GPU type lacks is left out (Gavel's simulator
raises on it), counted in ``GavelLoad.dropped``.

Gangs. Jobs run on nodes of ``devices_per_node`` GPUs; a job of more than that takes whole
nodes: ceil(s / node) nodes, so a 7- or 12-GPU job on 4-GPU nodes is allocated 8 or 12 devices
(it runs at its own scale's speed).
"""

from __future__ import annotations

import ast
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from suanli.errors import Problem, ValidationError
from suanli.model.ids import JobId, MemberId, ModelId
from suanli.model.job import Gang, JobSpec
from suanli.sim.workload import SimJob

EXTRAPOLATION_EFFICIENCY = 0.9


@dataclass
class GavelLoad:
    jobs: list[SimJob]
    members: list[str]
    extrapolated_jobs: int
    #: jobs left out: a GPU type lacks their (type, scale) (``unknown="drop"``)
    dropped: int = 0


class Throughputs:
    def __init__(
        self,
        path: Path,
        gpu_types: dict[str, ModelId],
        zero: Literal["missing", "cannot-run"] = "missing",
        unknown: Literal["extrapolate", "drop"] = "extrapolate",
    ) -> None:
        raw = json.loads(path.read_text())
        self.types = gpu_types
        self.zero_rule = zero
        self.unknown_rule = unknown
        self.table: dict[str, dict[tuple[str, int], float]] = {}
        #: (type, scale) measured at 0.0 per GPU type
        self.zeros: dict[str, set[tuple[str, int]]] = {}
        for gpu in gpu_types:
            if gpu not in raw:
                raise ValidationError([Problem(gpu, "GPU type missing")], str(path))
            table = {}
            zeros = set()
            for key, entry in raw[gpu].items():
                job_type, scale = ast.literal_eval(key)
                if isinstance(entry, dict) and entry.get("null"):
                    table[(job_type, int(scale))] = float(entry["null"])
                elif isinstance(entry, dict) and entry.get("null") == 0:
                    zeros.add((job_type, int(scale)))
            self.table[gpu] = table
            self.zeros[gpu] = zeros

    def relative_speed(self, reference: str) -> dict[ModelId, float]:
        """Per model, the geometric mean over job types of single-GPU speed relative to the
        ``reference`` GPU type: a measured ratio for calibrating normalized units."""
        out: dict[ModelId, float] = {}
        ref = self.table[reference]
        for gpu, model in self.types.items():
            ratios = [
                math.log(v / ref[k]) for k, v in self.table[gpu].items() if k[1] == 1 and k in ref
            ]
            out[model] = math.exp(sum(ratios) / len(ratios)) if ratios else 1.0
        return out

    def speed(self, job_type: str, scale: int) -> tuple[dict[ModelId, float], bool] | None:
        """Steps per second per model for the whole job, and whether the rule was used;
        None: the job is left out (``unknown="drop"`` and a type lacks it)."""
        out: dict[ModelId, float] = {}
        ruled = False
        key = (job_type, scale)
        if self.unknown_rule == "drop" and any(
            key not in self.table[g] and key not in self.zeros[g] for g in self.types
        ):
            return None
        for gpu, model in self.types.items():
            table = self.table[gpu]
            if key in table:
                out[model] = table[key]
                continue
            if self.zero_rule == "cannot-run" and key in self.zeros[gpu]:
                continue
            known = sorted(s for (t, s) in table if t == job_type)
            if not known:
                continue
            below = [s for s in known if s < scale]
            s0 = below[-1] if below else known[0]
            eff = EXTRAPOLATION_EFFICIENCY if scale > s0 else 1.0
            out[model] = table[(job_type, s0)] * scale / s0 * eff
            ruled = True
        return out, ruled


def load_gavel(
    trace_dir: Path,
    throughputs: Throughputs,
    devices_per_node: int,
    checkpoint_s: float | None = None,
) -> GavelLoad:
    files = sorted(trace_dir.glob("*.trace"))
    if not files:
        raise ValidationError([Problem("trace", f"no *.trace files in {trace_dir}")])
    problems: list[Problem] = []
    jobs: list[SimJob] = []
    extrapolated = dropped = 0
    for f in files:
        member = MemberId(f.stem)
        for lineno, line in enumerate(f.read_text().splitlines(), start=1):
            where = f"{f.name}:{lineno}"
            parts = line.split("\t")
            if len(parts) != 7:
                problems.append(
                    Problem(where, f"expected 7 tab-separated fields, got {len(parts)}")
                )
                continue
            job_type = parts[0]
            try:
                steps = float(parts[4])
                arrival = float(parts[5])
                scale = int(parts[6])
            except ValueError as exc:
                problems.append(Problem(where, f"bad number: {exc}"))
                continue
            if steps <= 0 or arrival < 0 or scale < 1:
                problems.append(Problem(where, "steps and scale must be positive, arrival >= 0"))
                continue
            found = throughputs.speed(job_type, scale)
            if found is None:
                dropped += 1
                continue
            speed, ruled = found
            if not speed:
                problems.append(Problem(where, f"no throughput at all for {job_type!r}"))
                continue
            extrapolated += ruled
            if scale <= devices_per_node:
                gang = Gang(1, scale)
            else:
                gang = Gang(math.ceil(scale / devices_per_node), devices_per_node)
            spec = JobSpec(
                JobId(f"{member}-{lineno}"),
                member,
                gang.devices,
                frozenset(speed),
                gang,
                name=job_type,
                checkpoint_interval_s=checkpoint_s,
            )
            jobs.append(
                SimJob(
                    spec,
                    arrival,
                    steps,
                    speed,
                    {
                        "type": job_type,
                        "scale": str(scale),
                        "speed": "extrapolated" if ruled else "measured",
                    },
                )
            )
    if problems:
        raise ValidationError(problems, str(trace_dir))
    return GavelLoad(jobs, [f.stem for f in files], extrapolated, dropped)
