"""The generic CSV trace format, for traces a user brings (Philly, Helios, Acme, PAI, ...).

A header row, then one job per row. Required columns:

| column | meaning |
| --- | --- |
| `submit_time` | seconds from the start of the trace |
| `member` | the member submitting the job |
| `accelerators` | device count |
| `models` | acceptable models: ids or families separated by `|` (`V100|A100`), or `stack:cuda` |
| `duration` | seconds the job runs on the fastest acceptable model in the pool |

Optional columns: `id`, `gang` (`NxK`), `preemptible` (`true`/`false`), `priority`,
`checkpoint_interval` (seconds). A job's speed on each acceptable model is proportional to that
model's NU per device (slower models take longer). Every bad row is reported with file, line and
column; nothing is dropped silently.
"""

from __future__ import annotations

import csv
from pathlib import Path

from suanli.errors import Problem, ValidationError
from suanli.model.alliance import Alliance
from suanli.model.ids import JobId, MemberId, ModelId
from suanli.model.job import Gang, JobSpec
from suanli.sim.workload import SimJob

REQUIRED = ("submit_time", "member", "accelerators", "models", "duration")
OPTIONAL = ("id", "gang", "preemptible", "priority", "checkpoint_interval")


def _models(raw: str, alliance: Alliance) -> set[ModelId]:
    out: set[ModelId] = set()
    for name in (part.strip() for part in raw.split("|")):
        if name.startswith("stack:"):
            out.update(alliance.catalog.with_stack(name[6:]))
        else:
            out.update(alliance.catalog.resolve(name))
    return out


def load_csv(
    path: Path, alliance: Alliance, default_checkpoint_s: float | None = None
) -> list[SimJob]:
    problems: list[Problem] = []
    jobs: list[SimJob] = []
    present = {n.model for n in alliance.nodes.values()}
    nu = {
        m: max(alliance.nu_per_device(n) for n in alliance.nodes.values() if n.model == m)
        for m in present
    }
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED if c not in header]
        unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
        if missing or unknown:
            raise ValidationError(
                [Problem(f"{path.name}:1", f"missing column {c!r}") for c in missing]
                + [Problem(f"{path.name}:1", f"unknown column {c!r}") for c in unknown],
                str(path),
            )
        for line, row in enumerate(reader, start=2):
            where = f"{path.name}:{line}"
            if None in row or any(row.get(c) is None for c in REQUIRED):
                problems.append(Problem(where, "wrong number of columns (truncated line?)"))
                continue
            try:
                submit = float(row["submit_time"])
                count = int(row["accelerators"])
                duration = float(row["duration"])
                priority = int(row.get("priority") or 0)
                ckpt = (
                    float(row["checkpoint_interval"])
                    if row.get("checkpoint_interval")
                    else (default_checkpoint_s)
                )
            except ValueError as exc:
                problems.append(Problem(where, f"bad number: {exc}"))
                continue
            if submit < 0 or count < 1 or duration <= 0:
                problems.append(
                    Problem(
                        where, "submit_time >= 0, accelerators >= 1 and duration > 0 are required"
                    )
                )
                continue
            member = row["member"].strip()
            if member not in alliance.members:
                problems.append(Problem(f"{where}.member", f"unknown member {member!r}"))
                continue
            models = _models(row["models"], alliance) & present
            if not models:
                problems.append(
                    Problem(
                        f"{where}.models",
                        f"no acceptable model of {row['models']!r} is in the pool",
                    )
                )
                continue
            gang = Gang(1, count)
            if row.get("gang"):
                n, _, k = row["gang"].lower().partition("x")
                if not (n.isdigit() and k.isdigit()) or int(n) * int(k) != count:
                    problems.append(
                        Problem(f"{where}.gang", f"{row['gang']!r} is not NxK with N*K = {count}")
                    )
                    continue
                gang = Gang(int(n), int(k))
            preemptible = (row.get("preemptible") or "true").strip().lower()
            if preemptible not in {"true", "false"}:
                problems.append(Problem(f"{where}.preemptible", "true or false"))
                continue
            fastest = max(nu[m] for m in models)
            spec = JobSpec(
                JobId(row.get("id") or f"{path.stem}-{line}"),
                MemberId(member),
                count,
                frozenset(models),
                gang,
                priority=priority,
                preemptible=preemptible == "true",
                checkpoint_interval_s=ckpt,
            )
            jobs.append(
                SimJob(
                    spec,
                    submit,
                    duration,
                    {m: nu[m] / fastest for m in models},
                    {"speed": "nu-relative"},
                )
            )
    if problems:
        raise ValidationError(problems, str(path))
    return jobs
