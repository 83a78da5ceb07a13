"""Gavel's physics in the simulator (docs/simulator.md): rounds that arrivals wait for and that
end with their last job, free switching (no work lost, devices reused in the same pass, jobs
moved between models without an idle round), the allocation reset period, and Gavel's reading
of its throughputs file."""

from __future__ import annotations

import pytest

from suanli.model.ids import JobId, ModelId
from suanli.sched.policy import get_policy
from suanli.sim.scenario import GAVEL_TYPES, load_scenario
from suanli.sim.simulator import SimParams, Simulation
from suanli.sim.traces.gavel import Throughputs
from suanli.sim.workload import SimJob

from ..builders import AllianceBuilder, job
from .test_traces import THR

V100, K80 = ModelId("V100-16GB"), ModelId("K80")
GAVEL = SimParams(None, round_arrivals=True, free_switching=True)


def pool(v100: int, k80: int = 0):  # type: ignore[no-untyped-def]
    b = AllianceBuilder().member("a").site("s", "a")
    b = b.nodes_of("s", "V100-16GB", v100, devices=1)
    if k80:
        b = b.nodes_of("s", "K80", k80, devices=1)
    return b.build()


def jct(res, jid: str) -> float:  # type: ignore[no-untyped-def]
    r = res.records[JobId(jid)]
    return float(r.finished_at - r.job.arrival)


def test_an_arrival_waits_for_the_round_which_ends_with_its_last_job() -> None:
    jobs = [
        SimJob(job("A", "a", 1, V100), 0, 100, {V100: 1.0}),
        SimJob(job("B", "a", 1, V100), 50, 100, {V100: 1.0}),
    ]
    # A's round ends when A does (100 s, not 360): B, arrived at 50, starts then (with the
    # pool idle, even Gavel's simulator does not wait for a reset to give B a share)
    res = Simulation(pool(2), jobs, get_policy("gavel", allocate="at-reset"), GAVEL).run()
    assert (jct(res, "A"), jct(res, "B")) == (100, 150)
    # without Gavel's rounds B starts when it arrives
    res = Simulation(pool(2), jobs, get_policy("gavel"), SimParams(None)).run()
    assert (jct(res, "A"), jct(res, "B")) == (100, 100)


def test_free_switching_loses_nothing_and_leaves_no_device_idle() -> None:
    jobs = [SimJob(job(j, "a", 1, V100), 0, 1000, {V100: 1.0}) for j in ("A", "B")]
    res = Simulation(pool(1), jobs, get_policy("gavel"), GAVEL).run()
    finished = sorted(r.finished_at or 0 for r in res.records.values())
    assert finished[-1] == pytest.approx(2000)  # one device, busy every second of 2,000 s
    assert all(r.preemptions > 0 for r in res.records.values())
    assert sum(run.lost for r in res.records.values() for run in r.runs) == 0


def test_a_job_moved_to_another_model_runs_on_in_the_same_pass() -> None:
    speeds = {V100: 2.0, K80: 1.0}
    jobs = [SimJob(job(j, "a", 1, V100, K80), 0, 3000, speeds) for j in ("A", "B", "C")]
    res = Simulation(pool(1, 1), jobs, get_policy("gavel"), GAVEL).run()
    models = {r.model for rec in res.records.values() for r in rec.runs}
    assert models == {V100, K80}
    moves = 0
    for rec in res.records.values():
        for a, b in zip(rec.runs, rec.runs[1:], strict=False):
            moves += a.model != b.model and a.end == b.start
    assert moves > 0  # (switching models cost no round)


@pytest.mark.parametrize(
    ("options", "b_jct"),
    [
        # Gavel's simulator: B (arrived at 10, held to the round at 360) gets a share at the
        # first reset 1,920 s after the one at 0: at 2,160 s, where both counters start again
        # and A, older, keeps the device; B runs in the next round, 2,520-2,620 s
        ({"reset_s": 1920.0, "allocate": "at-reset"}, 2610.0),
        # a reset at every round: B's share comes at 360, the tie goes to A, B runs at 720
        ({"reset_s": 0.0, "allocate": "at-reset"}, 810.0),
        # as Gavel on a cluster: a new allocation at once; B has received nothing: it runs
        # in its first round, 360-460 s
        ({"reset_s": 1920.0}, 450.0),
    ],
)
def test_a_new_job_gets_its_share_at_a_reset_or_at_once(
    options: dict[str, object], b_jct: float
) -> None:
    jobs = [
        SimJob(job("A", "a", 1, V100), 0, 10_000, {V100: 1.0}),
        SimJob(job("B", "a", 1, V100), 10, 100, {V100: 1.0}),
    ]
    res = Simulation(pool(1), jobs, get_policy("gavel", **options), GAVEL).run()
    assert jct(res, "B") == pytest.approx(b_jct)
    assert jct(res, "A") == pytest.approx(10_100)  # (never idle, nothing lost)


def test_gavels_reading_of_its_throughputs_file() -> None:
    ours = Throughputs(THR, GAVEL_TYPES)
    gavels = Throughputs(THR, GAVEL_TYPES, zero="cannot-run", unknown="drop")
    # ResNet-50 at batch 128 on 2 K80s is measured at 0.0: extrapolated, or cannot run there
    found = ours.speed("ResNet-50 (batch size 128)", 2)
    assert found is not None and K80 in found[0]
    found = gavels.speed("ResNet-50 (batch size 128)", 2)
    assert found is not None and K80 not in found[0] and V100 in found[0]
    # a scale no type measured: extrapolated, or the job is left out
    assert ours.speed("ResNet-50 (batch size 64)", 16) is not None
    assert gavels.speed("ResNet-50 (batch size 64)", 16) is None


def test_the_gavel_compat_scenario_runs_the_jobs_gavel_knows_on_1_gpu_servers() -> None:
    sc = load_scenario("gavel-compat")
    assert len(sc.jobs) == 13716 and sc.notes["dropped_jobs"] == 15264 - 13716
    assert {n.devices for n in sc.alliance.nodes.values()} == {1}
    assert sum(n.devices for n in sc.alliance.nodes.values()) == 900
    assert sc.params.round_arrivals and sc.params.free_switching
    assert sc.policies["gavel"] == {"reset_s": 1920, "allocate": "at-reset"}
    eight = next(j for j in sc.jobs if j.spec.count == 8)
    assert (eight.spec.gang.nodes, eight.spec.gang.per_node) == (8, 1)


def test_stale_completions_leave_the_heap_and_nothing_else_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Gavel's rounds switch jobs all the time: each switch leaves the run's completion event
    stale. They are dropped once they could be half the heap; the simulation is the same."""
    speeds = {V100: 2.0, K80: 1.0}
    jobs = [
        SimJob(job(f"j{i}", "a", c, V100, K80, nodes=c), 10.0 * i, 10_000 + 1000 * (i % 7), speeds)
        for i in range(30)
        if (c := 1 + i % 2)
    ]
    # (never switched: its completion event is live whenever the stale ones go)
    jobs.append(SimJob(job("long", "a", 1, V100, preemptible=False), 0, 50_000, {V100: 1.0}))
    peaks: dict[str, int] = {}

    def run(label: str) -> dict[JobId, tuple[float | None, int]]:
        sim = Simulation(pool(3, 3), jobs, get_policy("gavel"), GAVEL)
        push = sim.q.push

        def counted(*args: object) -> None:
            push(*args)  # type: ignore[arg-type]
            peaks[label] = max(peaks.get(label, 0), len(sim.q))

        sim.q.push = counted  # type: ignore[method-assign]
        res = sim.run()
        return {j: (r.finished_at, len(r.runs)) for j, r in res.records.items()}

    monkeypatch.setattr(Simulation, "stale_min", 16)
    dropped = run("dropped")
    monkeypatch.setattr(Simulation, "stale_min", 10**9)
    kept = run("kept")
    assert dropped == kept
    assert all(finished is not None for finished, _ in kept.values())
    assert sum(n for _, n in kept.values()) > 5 * len(jobs)  # (jobs were switched)
    assert peaks["dropped"] < peaks["kept"] / 2
