"""Metrics of a simulation, its conservation checks, and the sharing-incentive baseline.

- JCT: finish − arrival; queueing delay: first start − arrival; makespan: last finish − first
  arrival.
- Normalized utilization: NU-seconds busy / (pool NU × makespan).
- Sharing incentive: for each contributing member, the mean JCT of its jobs in the pool divided
  by their mean JCT on its own contributed hardware alone (simulated separately with the same
  policy), over the jobs that fit its own hardware; commons members have no baseline (null).
- Guarantee violations: time during which one of a member's jobs had fit within its
  entitlement (with the jobs before it in its queue) for longer than the grace period without
  starting (see ``Simulation._update_guarantees``).
- Jain's index of usage / entitlement over contributors with demand, time-weighted.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from suanli.model.ids import JobId, MemberId
from suanli.model.member import Tier
from suanli.sched.policy import get_policy
from suanli.sim.executor import JobRecord
from suanli.sim.scenario import only_member
from suanli.sim.simulator import SimParams, SimResult, Simulation
from suanli.sim.workload import SimJob

REL = 1e-6


class ConservationError(AssertionError):
    """A simulation broke a conservation law: a bug, never a property of the input."""


def percentile(xs: list[float], p: float) -> float:
    if not xs:
        return math.nan
    s = sorted(xs)
    k = (len(s) - 1) * p
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def check_conservation(res: SimResult) -> dict[str, float]:
    """Every job ends exactly once with all its work done; accelerator-seconds measured by the
    scheduler's accounting equal the executor's runs, which equal the jobs' work at their speed
    plus the work lost. Raises ConservationError otherwise."""
    run_device_s = 0.0
    useful_device_s = 0.0
    lost_device_s = 0.0
    for jid, rec in res.records.items():
        if rec.finished_at is None:
            if jid not in res.unfinished:
                raise ConservationError(f"{jid} neither finished nor was reported unfinished")
            if any(r.end is None for r in rec.runs) or rec.done >= rec.job.work:
                raise ConservationError(f"unfinished {jid} has an open run or all its work")
        else:
            ends = [r for r in rec.runs if r.end == rec.finished_at and r.kept > 0]
            if not rec.runs or rec.runs[-1].end != rec.finished_at or len(ends) != 1:
                raise ConservationError(f"{jid} did not end exactly once")
            kept = sum(r.kept for r in rec.runs)
            if not math.isclose(kept, rec.job.work, rel_tol=REL):
                raise ConservationError(f"{jid} kept {kept} work of {rec.job.work}")
        for r in rec.runs:
            assert r.end is not None
            run_device_s += r.devices * (r.end - r.start)
            useful_device_s += r.devices * r.kept / r.speed
            lost_device_s += r.devices * r.lost / r.speed
    measured = sum(res.busy_device_s.values())
    if not math.isclose(measured, run_device_s, rel_tol=REL):
        raise ConservationError(f"busy accelerator-seconds {measured} != runs {run_device_s}")
    if not math.isclose(run_device_s, useful_device_s + lost_device_s, rel_tol=REL):
        raise ConservationError(
            f"runs {run_device_s} != work {useful_device_s} + lost {lost_device_s}"
        )
    return {
        "device_s": run_device_s,
        "useful_device_s": useful_device_s,
        "lost_device_s": lost_device_s,
    }


def _fits_alone(job: SimJob, res_nodes: dict[str, list[int]]) -> bool:
    g = job.spec.gang
    for model in job.spec.models:
        sizes = res_nodes.get(model, [])
        if g.nodes == 1 and any(s >= g.per_node for s in sizes):
            return True
        if g.nodes > 1 and sum(1 for s in sizes if s == g.per_node) >= g.nodes:
            return True
    return False


@dataclass
class AloneBaseline:
    jct: dict[JobId, float]
    impossible: int
    wall_s: float


def alone_baseline(
    res: SimResult,
    policy: str,
    member: MemberId,
    params: SimParams,
    options: Mapping[str, Any] | None = None,
) -> AloneBaseline:
    """The member's jobs on its own contributed hardware alone, same policy."""
    mine = only_member(res.alliance, member)
    nodes: dict[str, list[int]] = {}
    for n in mine.nodes.values():
        nodes.setdefault(n.model, []).append(n.devices)
    jobs = [r.job for r in res.records.values() if r.job.spec.member == member]
    fits = [j for j in jobs if _fits_alone(j, nodes)]
    if not fits:
        return AloneBaseline({}, len(jobs), 0.0)
    sub = Simulation(mine, fits, get_policy(policy, **(options or {})), params).run()
    return AloneBaseline(
        {
            j: r.finished_at - r.job.arrival
            for j, r in sub.records.items()
            if r.finished_at is not None
        },
        len(jobs) - len(fits),
        sub.wall_s,
    )


def summarize(
    res: SimResult,
    params: SimParams,
    alone: bool = True,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``options``: the policy's options (its alone baselines run with the same)."""
    recs = list(res.records.values())
    done = [r for r in recs if r.finished_at is not None]
    jct = {r.job.spec.id: r.finished_at - r.job.arrival for r in done if r.finished_at}
    queue = [r.first_start - r.job.arrival for r in recs if r.first_start is not None]
    first = min(r.job.arrival for r in recs)
    last = max((r.finished_at for r in done if r.finished_at is not None), default=first)
    makespan = last - first
    conservation = check_conservation(res)
    pool_nu = sum(n.devices * res.alliance.nu_per_device(n) for n in res.alliance.nodes.values())
    members: dict[str, Any] = {}
    alone_wall = 0.0
    for m, member in res.alliance.members.items():
        mine = [r for r in done if r.job.spec.member == m]
        entry: dict[str, Any] = {
            "tier": member.tier.value,
            "jobs": len(mine),
            "jct_mean_s": statistics.fmean(jct[r.job.spec.id] for r in mine) if mine else None,
            "entitlement_nu": round(res.entitlement_nu.get(m, 0.0), 6),
            "usage_nu_h": round(res.member_nu_s.get(m, 0.0) / 3600, 3),
            "guarantee_violation_s": round(res.violation_s.get(m, 0.0), 1),
            "jct_ratio_vs_alone": None,
            "jobs_impossible_alone": None,
        }
        if alone and member.tier is Tier.CONTRIBUTOR and mine:
            base = alone_baseline(res, res.policy, m, params, options)
            alone_wall += base.wall_s
            both = [j for j in base.jct if j in jct]
            if both:
                entry["jct_ratio_vs_alone"] = round(
                    statistics.fmean(jct[j] for j in both)
                    / statistics.fmean(base.jct[j] for j in both),
                    4,
                )
            entry["jobs_impossible_alone"] = base.impossible
        members[m] = entry
    lost = conservation["lost_device_s"]
    jcts = list(jct.values())
    return {
        "policy": res.policy,
        "jobs": len(recs),
        "completed": len(done),
        "unfinished": len(res.unfinished),
        "unfinished_reasons": dict(Counter(res.unfinished.values()).most_common(5)),
        "jct_mean_s": statistics.fmean(jcts) if jcts else math.nan,
        "jct_median_s": statistics.median(jcts) if jcts else math.nan,
        "jct_p99_s": percentile(jcts, 0.99),
        "queue_mean_s": statistics.fmean(queue) if queue else math.nan,
        "queue_median_s": statistics.median(queue) if queue else math.nan,
        "makespan_s": makespan,
        "utilization": res.busy_nu_s / (pool_nu * makespan) if makespan > 0 else 0.0,
        "device_utilization": conservation["device_s"]
        / (sum(n.devices for n in res.alliance.nodes.values()) * makespan)
        if makespan
        else 0.0,
        "preemptions": sum(r.preemptions for r in recs),
        "work_lost_device_h": lost / 3600,
        "guarantee_violation_s": round(sum(res.violation_s.values()), 1),
        "jain_index": res.jain_weighted,
        "passes": res.passes,
        "scheduler_s": res.sched_s,
        "wall_s": res.wall_s,
        "alone_baselines_wall_s": alone_wall,
        "members": members,
    }


def job_rows(records: dict[JobId, JobRecord]) -> list[dict[str, Any]]:
    out = []
    for j, r in records.items():
        last = r.runs[-1] if r.runs else None
        out.append(
            {
                "job": j,
                "member": r.job.spec.member,
                "devices": r.job.spec.count,
                "arrival_s": r.job.arrival,
                "first_start_s": r.first_start,
                "finish_s": r.finished_at,
                "jct_s": None if r.finished_at is None else r.finished_at - r.job.arrival,
                "model": last.model if last else "",
                "runs": len(r.runs),
                "preemptions": r.preemptions,
                "lost_device_s": round(r.lost_device_s, 3),
                "type": r.job.info.get("type", ""),
                "speed": r.job.info.get("speed", ""),
            }
        )
    return out
