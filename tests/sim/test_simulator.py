"""The simulator on hand-computed scenarios: exact JCTs, preemption and lost work."""

import gc
from dataclasses import replace

import pytest

from suanli.model.ids import JobId, MemberId, ModelId
from suanli.sched.context import PassContext
from suanli.sched.policy import get_policy
from suanli.sim.engine import SPACED_THRESHOLDS, EventQueue, Kind
from suanli.sim.metrics import ConservationError, check_conservation, summarize
from suanli.sim.simulator import SimParams, Simulation
from suanli.sim.workload import SimJob

from ..builders import AllianceBuilder, job

V100 = ModelId("V100-16GB")


def sim_job(
    jid: str,
    member: str,
    devices: int,
    arrival: float,
    work: float,
    speed: float = 1.0,
    checkpoint: float | None = None,
) -> SimJob:
    spec = job(jid, member, devices, V100)
    if checkpoint is not None:
        spec = replace(spec, checkpoint_interval_s=checkpoint)
    return SimJob(spec, arrival, work, {V100: speed})


def one_node():  # type: ignore[no-untyped-def]
    return (
        AllianceBuilder()
        .member("a")
        .site("s", "a")
        .nodes_of("s", "V100-16GB", 1, devices=2)
        .build()
    )


def jcts(result) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return {j: r.finished_at - r.job.arrival for j, r in result.records.items()}


JOBS = [sim_job("A", "a", 1, 0, 100), sim_job("B", "a", 2, 10, 50), sim_job("C", "a", 1, 20, 10)]


def test_fifo_jcts_are_exact() -> None:
    # A runs 0-100; B (2 devices) waits for A, runs 100-150; C waits behind B, runs 150-160
    res = Simulation(one_node(), JOBS, get_policy("fifo"), SimParams(None)).run()
    assert jcts(res) == {"A": 100, "B": 140, "C": 140}


def test_backfill_under_alliance_is_exact() -> None:
    # C skips the blocked B and runs 20-30 on the free device; B still starts at 100
    res = Simulation(one_node(), JOBS, get_policy("alliance"), SimParams(None)).run()
    assert jcts(res) == {"A": 100, "B": 140, "C": 10}
    summary = summarize(res, SimParams(None), alone=False)
    assert summary["makespan_s"] == 150
    assert summary["jct_mean_s"] == pytest.approx((100 + 140 + 10) / 3)
    # device-seconds: A 100, B 2*50, C 10 over 2 devices * 150 s
    assert summary["device_utilization"] == pytest.approx(210 / 300)


def test_reclaim_preempts_loses_work_since_checkpoint_and_resumes() -> None:
    alliance = (
        AllianceBuilder()
        .member("x")
        .member("d", tier="commons")
        .site("s", "x")
        .nodes_of("s", "V100-16GB", 1, devices=1)
        .build()
    )
    jobs = [sim_job("D", "d", 1, 0, 1000, checkpoint=100), sim_job("E", "x", 1, 250, 10)]
    res = Simulation(alliance, jobs, get_policy("alliance"), SimParams(None, False)).run()
    # E arrives at 250 within x's guarantee; D is preempted with 300 s grace and stops at 550,
    # keeping its checkpoint at 500 and losing 50 s of work; E runs 550-560; D resumes at 560
    # with 500 left and ends at 1060.
    assert jcts(res) == {"D": 1060, "E": 310}
    d = res.records[JobId("D")]
    assert d.preemptions == 1 and d.lost_device_s == pytest.approx(50)
    totals = check_conservation(res)
    assert totals["device_s"] == pytest.approx(1000 + 50 + 10)
    assert totals["lost_device_s"] == pytest.approx(50)
    summary = summarize(res, SimParams(None, False), alone=False)
    assert summary["preemptions"] == 1
    # x waited within its share from 250 to 550: 300 s, all of it within the grace period
    assert summary["members"]["x"]["guarantee_violation_s"] == 0


def test_jobs_served_each_within_the_grace_period_are_no_violation() -> None:
    # x owns 2 devices, both lent to d. E arrives at 250 and reclaims one (starts at 550);
    # F arrives at 500, within x's guarantee beside E, and reclaims the other (starts at
    # 800). x had a job waiting within its share from 250 to 800, but neither job waited
    # more than the grace period: the promise is per job.
    alliance = (
        AllianceBuilder()
        .member("x")
        .member("d", tier="commons")
        .site("s", "x")
        .nodes_of("s", "V100-16GB", 1, devices=2)
        .build()
    )
    jobs = [
        sim_job("D1", "d", 1, 0, 5000, checkpoint=100),
        sim_job("D2", "d", 1, 1, 5000, checkpoint=100),
        sim_job("E", "x", 1, 250, 1000),
        sim_job("F", "x", 1, 500, 1000),
    ]
    res = Simulation(alliance, jobs, get_policy("alliance"), SimParams(None, False)).run()
    starts = {j: res.records[JobId(j)].first_start for j in ("E", "F")}
    assert starts == {"E": 550, "F": 800}
    assert res.violation_s[MemberId("x")] == 0


class OneAtATime:
    """Starts at most one job per pass, in arrival order: slow on purpose."""

    name = "one-at-a-time"
    grace_s = 300.0
    round_s = None

    def run(self, ctx: PassContext) -> None:
        for q in ctx.fifo_queue():
            placement = ctx.fit_any(q, sorted(q.spec.models))
            if placement is not None:
                ctx.admit(q, placement)
                return


def test_a_job_behind_the_head_is_owed_from_when_it_fits_the_share() -> None:
    # x owns 2 devices; E, F and G arrive at 0 and the policy starts one job per pass.
    # E starts at 0; F fits x's share beside E from 0 but starts only when E ends, at 400:
    # 100 s past the grace period. G fits the share only once E has ended (400) and starts
    # at 410: no violation.
    jobs = [sim_job("E", "a", 1, 0, 400), sim_job("F", "a", 1, 0, 10), sim_job("G", "a", 1, 0, 10)]
    res = Simulation(one_node(), jobs, OneAtATime(), SimParams(None)).run()
    assert {j: r.first_start for j, r in res.records.items()} == {"E": 0, "F": 400, "G": 410}
    assert res.violation_s[MemberId("a")] == pytest.approx(100)


def test_a_job_held_to_a_site_full_of_its_members_held_work_is_owed_nothing() -> None:
    # x's data may stay only at sx (2 devices); its own jobs that read it fill sx until 1000,
    # while x uses half its entitlement: a third such job waits 998 s, and no one could have
    # made room for it
    alliance = (
        AllianceBuilder()
        .member("x")
        .site("sx", "x")
        .site("sx2", "x")
        .nodes_of("sx", "V100-16GB", 1, devices=2)
        .nodes_of("sx2", "V100-16GB", 1, devices=2)
        .dataset("xdata", "x", sites=("sx",))
        .build()
    )

    def held(jid: str, arrival: float, work: float) -> SimJob:
        return SimJob(job(jid, "x", 1, V100, datasets=("xdata",)), arrival, work, {V100: 1.0})

    jobs = [held("H1", 0, 1000), held("H2", 1, 1000), held("H3", 2, 10)]
    res = Simulation(alliance, jobs, get_policy("alliance"), SimParams(None)).run()
    assert res.records[JobId("H3")].first_start == 1000
    assert res.violation_s[MemberId("x")] == 0


def test_a_job_held_to_a_site_is_owed_by_the_models_there() -> None:
    # x's data stays at sx, whose only node is 2 H800s; y has 2 T4s at sy. x runs one H800
    # (0.99 of its 1.98 NU) until 1000, y borrows the other; x's job held to sx wants 2
    # devices of H800 or T4. 2 T4s (0.13 NU) would fit x's room, but there are none at sx,
    # and 2 H800s do not: the job is owed from 1000, reclaims y's and starts a grace
    # period later, no violation (counted on the pool's cheapest model, 998 s of one)
    alliance = (
        AllianceBuilder()
        .member("x")
        .member("y")
        .site("sx", "x")
        .site("sy", "y")
        .nodes_of("sx", "H800-80GB", 1, devices=2)
        .nodes_of("sy", "T4", 1, devices=2)
        .dataset("xdata", "x", sites=("sx",))
        .build()
    )
    h, t4 = ModelId("H800-80GB"), ModelId("T4")
    held = job("x1", "x", 2, h, t4, datasets=("xdata",))
    jobs = [
        SimJob(job("mine", "x", 1, h), 0, 1000, {h: 1.0}),
        SimJob(replace(job("lent", "y", 1, h), checkpoint_interval_s=100), 1, 5000, {h: 1.0}),
        SimJob(held, 2, 10, {h: 1.0, t4: 1.0}),
    ]
    res = Simulation(alliance, jobs, get_policy("alliance"), SimParams(None)).run()
    assert res.records[JobId("x1")].first_start == 1300
    assert res.violation_s[MemberId("x")] == 0


def test_every_policy_conserves_work_and_is_deterministic() -> None:
    alliance = (
        AllianceBuilder()
        .member("a")
        .member("b")
        .member("c", tier="commons")
        .site("sa", "a")
        .site("sb", "b")
        .nodes_of("sa", "V100-16GB", 2, devices=4)
        .nodes_of("sb", "V100-16GB", 1, devices=4)
        .build()
    )
    jobs = [
        sim_job(
            f"j{i}", "abc"[i % 3], [1, 2, 4][i % 3], i * 37.0, 500 + 91 * (i % 7), checkpoint=120
        )
        for i in range(60)
    ]
    for policy in ("fifo", "fair", "gavel", "alliance"):
        first = Simulation(alliance, jobs, get_policy(policy), SimParams(None)).run()
        check_conservation(first)
        again = Simulation(alliance, jobs, get_policy(policy), SimParams(None)).run()
        assert jcts(first) == jcts(again), policy


def test_conservation_check_catches_a_broken_record() -> None:
    res = Simulation(one_node(), JOBS, get_policy("fifo"), SimParams(None)).run()
    res.records[JobId("A")].runs[0].kept = 1.0
    with pytest.raises(ConservationError):
        check_conservation(res)


def test_a_job_that_fits_nowhere_is_reported() -> None:
    jobs = [sim_job("big", "a", 2, 0, 10)]
    small = (
        AllianceBuilder()
        .member("a")
        .site("s", "a")
        .nodes_of("s", "V100-16GB", 1, devices=1)
        .build()
    )
    res = Simulation(small, jobs, get_policy("alliance"), SimParams(None)).run()
    assert "could ever host it" in res.unfinished[JobId("big")]
    check_conservation(res)
    summary = summarize(res, SimParams(None), alone=False)
    assert summary["completed"] == 0 and summary["unfinished"] == 1


@pytest.mark.parametrize("policy", ["fifo", "fair", "gavel", "alliance"])
def test_jobs_go_only_where_cpu_and_memory_allow_and_hopeless_ones_end_the_run(
    policy: str,
) -> None:
    """A job whose CPU fits only one model's hosts runs there (even when a round-based LP
    would rather give it the other model); one that fits no host never starts, and the run
    still ends (a round-based policy stops re-planning when nothing can change)."""
    pool = (
        AllianceBuilder()
        .member("a")
        .site("s", "a")
        .nodes_of("s", "V100-16GB", 2, devices=8, cpu=16)
        .nodes_of("s", "P100", 1, devices=8, cpu=128)
        .build()
    )
    p100 = ModelId("P100")
    wide = replace(job("wide", "a", 8, V100, p100), cpu=100)
    huge = replace(job("huge", "a", 8, V100, p100), cpu=1000)
    jobs = [
        SimJob(wide, 0, 100, {V100: 10.0, p100: 1.0}),
        SimJob(huge, 0, 100, {V100: 10.0, p100: 1.0}),
    ]
    res = Simulation(pool, jobs, get_policy(policy), SimParams(None)).run()
    assert [r.model for r in res.records[JobId("wide")].runs] == [p100]
    assert res.records[JobId("wide")].finished_at == pytest.approx(100.0)
    assert list(res.unfinished) == [JobId("huge")]
    assert res.end_time < 1000
    check_conservation(res)


def test_event_queue_orders_by_time_kind_then_sequence() -> None:
    q = EventQueue()
    q.push(5, Kind.PASS, "p")
    q.push(5, Kind.ARRIVAL, "a1")
    q.push(5, Kind.ARRIVAL, "a2")
    q.push(1, Kind.PASS, "early")
    q.push(5, Kind.COMPLETE, "c")
    assert [q.pop()[3] for _ in range(5)] == ["early", "c", "a1", "a2", "p"]
    with pytest.raises(ValueError, match="in the past"):
        q.push(1, Kind.PASS)


def test_event_queue_discards_stale_events_and_keeps_the_order_of_the_rest() -> None:
    q = EventQueue()
    for i in range(20):
        q.push(float(20 - i), Kind.COMPLETE if i % 2 else Kind.PASS, i)
    assert q.discard(lambda kind, payload: kind is Kind.COMPLETE and payload % 4 == 1) == 5
    assert [q.pop()[3] for _ in range(len(q))] == [
        i for i in reversed(range(20)) if not (i % 2 and i % 4 == 1)
    ]


def test_a_run_spaces_the_collector_and_puts_its_thresholds_back() -> None:
    """The collector runs less often while a simulation runs, and as before after it, even
    when the run fails."""
    seen: list[tuple[int, int, int]] = []

    class Watching:
        name = "watching"
        round_s = None

        def run(self, ctx: PassContext) -> None:
            seen.append(gc.get_threshold())
            if ctx.now >= 10:
                raise RuntimeError("policy failed")

    before = gc.get_threshold()
    assert before != SPACED_THRESHOLDS
    Simulation(one_node(), JOBS[:1], get_policy("fifo"), SimParams(0.0)).run()
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError, match="policy failed"):
        Simulation(one_node(), JOBS, Watching(), SimParams(0.0)).run()
    assert seen and set(seen) == {SPACED_THRESHOLDS}
    assert gc.get_threshold() == before


def test_a_job_that_checkpoints_when_signaled_keeps_its_progress() -> None:
    alliance = (
        AllianceBuilder()
        .member("x")
        .member("d", tier="commons")
        .site("s", "x")
        .nodes_of("s", "V100-16GB", 1, devices=1)
        .build()
    )
    jobs = [sim_job("D", "d", 1, 0, 1000), sim_job("E", "x", 1, 250, 10)]
    # no periodic checkpoints: signaled at 250, it keeps 250 of work and loses the 300 s of
    # grace; resumes at 560 with 750 left
    res = Simulation(alliance, jobs, get_policy("alliance"), SimParams(None, True)).run()
    assert jcts(res) == {"D": 1310, "E": 310}
    assert res.records[JobId("D")].lost_device_s == pytest.approx(300)
    res = Simulation(alliance, jobs, get_policy("alliance"), SimParams(None, False)).run()
    assert jcts(res) == {"D": 1560, "E": 310}  # without any checkpoint the run is lost
    check_conservation(res)


def test_a_node_failure_requeues_its_jobs_from_their_last_checkpoint() -> None:
    from suanli.model.ids import NodeId
    from suanli.sim.simulator import Fault

    alliance = (
        AllianceBuilder()
        .member("a")
        .site("s", "a")
        .nodes_of("s", "V100-16GB", 2, devices=1)
        .build()
    )
    first = sorted(alliance.nodes)[0]
    jobs = [sim_job("A", "a", 1, 0, 1000, checkpoint=100)]
    faults = (Fault(250, NodeId(first), down_s=100),)
    sim = Simulation(alliance, jobs, get_policy("alliance"), SimParams(None), faults)
    res = sim.run()
    # A ran on the first node 0-250, kept its checkpoint at 200 (no signal on a failure),
    # lost 50, restarted at 250 on the other node with 800 left
    assert jcts(res) == {"A": 1050}
    rec = res.records[JobId("A")]
    assert rec.preemptions == 1 and rec.lost_device_s == pytest.approx(50)
    assert sim.node_failures_jobs == 1
    check_conservation(res)
    with pytest.raises(ValueError, match="unknown node"):
        Simulation(
            alliance, jobs, get_policy("alliance"), SimParams(None), (Fault(1, NodeId("nope")),)
        )
