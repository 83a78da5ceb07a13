"""Behaviour of each policy on small hand-built pools (table-driven where it reads well)."""

import numpy as np
import pytest

from suanli.errors import NotFoundError
from suanli.model.alliance import Alliance
from suanli.model.ids import JobId, MemberId, ModelId, NodeId
from suanli.model.job import JobSpec, Placement
from suanli.sched.policies.gavel import max_min_lp
from suanli.sched.policy import get_policy, policy_names
from suanli.sched.schedule import PassResult, schedule
from suanli.sched.snapshot import Snapshot

from ..builders import AllianceBuilder, job, snapshot
from .apply import apply


def two_members(nodes_a: int = 1, nodes_b: int = 1) -> AllianceBuilder:
    return (
        AllianceBuilder()
        .member("a")
        .member("b")
        .member("c", tier="commons")
        .site("sa", "a")
        .site("sb", "b")
        .nodes_of("sa", "H800-80GB", nodes_a)
        .nodes_of("sb", "H800-80GB", nodes_b)
    )


def admitted(result: object) -> list[str]:
    return [d.job for d in result.admits]  # type: ignore[attr-defined]


def test_registry_finds_every_policy_by_name() -> None:
    assert {"fifo", "fair", "gavel", "alliance"} <= set(policy_names())
    with pytest.raises(NotFoundError, match="unknown policy 'lottery'"):
        get_policy("lottery")


# -- fifo --------------------------------------------------------------------------------------
def test_fifo_blocks_behind_its_head() -> None:
    a = two_members().build()
    snap = snapshot(
        a,
        job("j0", "a", 6, "H800-80GB"),
        job("j1", "a", 6, "H800-80GB"),
        job("j2", "b", 8, "H800-80GB"),
        job("j3", "c", 1, "H800-80GB"),
        job("j4", "c", 16, "H800-80GB"),
    )
    r = schedule(snap, get_policy("fifo"))
    assert admitted(r) == ["j0", "j1"]
    assert "head of the FIFO queue" in r.reason(snap, JobId("j2"))
    assert "behind FIFO head j2" in r.reason(snap, JobId("j3"))


def test_fifo_skips_a_job_no_node_could_ever_host() -> None:
    snap = snapshot(
        two_members().build(), job("big", "a", 16, "H800-80GB"), job("j", "b", 8, "H800-80GB")
    )
    r = schedule(snap, get_policy("fifo"))
    assert admitted(r) == ["j"]
    assert "could ever host it" in r.reason(snap, JobId("big"))


# -- fair --------------------------------------------------------------------------------------
def test_fair_lends_idle_capacity_and_reclaims_it() -> None:
    a = two_members().build()
    snap = snapshot(a, *[job(f"c{i}", "c", 4, "H800-80GB") for i in range(4)])
    r = schedule(snap, get_policy("fair"))
    assert len(r.admits) == 4  # the commons member borrows the whole idle pool
    apply(snap, r)
    snap.submit(job("a1", "a", 8, "H800-80GB"), submitted_at=10)
    r = schedule(snap, get_policy("fair"))
    assert not r.admits and len(r.preempts) == 2
    assert "reclaiming" in r.reasons[JobId("a1")]
    apply(snap, r)
    r = schedule(snap, get_policy("fair"))
    assert admitted(r) == ["a1"]


def test_fair_borrowing_and_lending_limits() -> None:
    a = (
        two_members(2, 1)
        .limit("b", "H800-80GB", borrowing=4)
        .limit("a", "H800-80GB", lending=8)
        .build()
    )
    snap = snapshot(
        a,
        job("b1", "b", 8, "H800-80GB"),
        job("b2", "b", 8, "H800-80GB"),
        job("b3", "b", 4, "H800-80GB"),
        job("c1", "c", 8, "H800-80GB"),
    )
    r = schedule(snap, get_policy("fair"))
    # b1 within nominal; c (borrowing nothing yet) goes before b and borrows a's lendable 8;
    # b2 would pass b's borrowing limit of 4; b3 fits the limit but a lends no more than 8
    assert sorted(admitted(r)) == ["b1", "c1"]
    assert "borrowing limit" in r.reasons[JobId("b2")]
    assert "no lendable" in r.reasons[JobId("b3")]
    assert snap.free.free_count == 24 and r.admits[1].placement.devices == 8


def test_fair_non_preemptible_jobs_stay_within_nominal() -> None:
    a = two_members().build()
    snap = snapshot(a, job("c1", "c", 1, "H800-80GB", preemptible=False))
    r = schedule(snap, get_policy("fair"))
    assert not r.admits
    assert "non-preemptible" in r.reasons[JobId("c1")]


def test_fair_serves_the_least_borrowing_member_first() -> None:
    a = two_members(1, 0).build()
    snap = snapshot(
        a,
        *[job(f"b{i}", "b", 4, "H800-80GB") for i in range(2)],
        *[job(f"c{i}", "c", 4, "H800-80GB") for i in range(2)],
    )
    r = schedule(snap, get_policy("fair"))
    assert sorted(admitted(r)) == ["b0", "c0"]  # alternate, not b0 then b1


# -- alliance ----------------------------------------------------------------------------------
def hetero() -> AllianceBuilder:
    return (
        AllianceBuilder()
        .member("a")
        .member("b")
        .member("c", tier="commons")
        .site("sa", "a")
        .site("sb", "b")
        .nodes_of("sa", "V100-32GB", 1)
        .nodes_of("sb", "A100-80GB", 1)
    )


def test_alliance_guarantee_is_in_normalized_units_across_models() -> None:
    a = hetero().build()
    snap = snapshot(a, job("b1", "b", 8, "V100-32GB", preemptible=False))
    r = schedule(snap, get_policy("alliance"))
    # b contributed 8 A100 (2.496 NU) > 8 V100 (1.0 NU): guaranteed even on a's V100s
    assert admitted(r) == ["b1"]
    assert r.admits[0].reason == "within the member's guarantee"


def test_alliance_reclaims_from_the_heaviest_past_borrower_first() -> None:
    a = two_members(1, 0).member("d", tier="commons").build()
    snap = snapshot(a, job("c1", "c", 4, "H800-80GB"), job("d1", "d", 4, "H800-80GB"))
    apply(snap, schedule(snap, get_policy("alliance")))
    assert set(snap.running) == {"c1", "d1"}
    snap.usage_history[MemberId("d")] = 1e9  # d borrowed much in the past
    snap.submit(job("a1", "a", 4, "H800-80GB"), submitted_at=5)
    r = schedule(snap, get_policy("alliance"))
    assert [p.job for p in r.preempts] == ["d1"]
    assert r.preempts[0].grace_s == 300.0


def held_for_reclaim() -> tuple[Snapshot, Placement]:
    """x owns n0 and n1 (2 devices each), y owns n2; the commons member c borrows. x runs
    two devices on n1; c holds n0's device 0 and all of n2; n0's device 1 is free. x's job J
    (2 devices) reclaims n0: c1 is preempted, and J counts on the free device too."""
    a = (
        AllianceBuilder()
        .member("x")
        .member("y")
        .member("c", tier="commons")
        .site("sx", "x")
        .site("sy", "y")
        .nodes_of("sx", "V100-16GB", 2, devices=2)
        .nodes_of("sy", "V100-16GB", 1, devices=2)
        .build()
    )
    v = ModelId("V100-16GB")
    n0, n1, n2 = sorted(a.nodes)
    snap = snapshot(
        a, job("x0", "x", 2, v), job("c1", "c", 1, v), job("c2", "c", 2, v), job("J", "x", 2, v)
    )
    snap.start(JobId("x0"), Placement(v, ((n1, (0, 1)),)), at=0)
    snap.start(JobId("c2"), Placement(v, ((n2, (0, 1)),)), at=1)
    snap.start(JobId("c1"), Placement(v, ((n0, (0,)),)), at=2)  # (newest: the first victim)
    first = schedule(snap, get_policy("alliance"))
    assert [p.job for p in first.preempts] == ["c1"]
    assert first.reservations == {"J": Placement(v, ((n0, (0, 1)),))}
    apply(snap, first, victims_stop=False)
    return snap, first.reservations[JobId("J")]


def test_a_reclaim_holds_what_it_counted_on_until_its_victims_stop() -> None:
    snap, where = held_for_reclaim()
    # y's job K is served before J (y uses none of its share, x half of its): the free
    # device of n0 is J's, so K reclaims elsewhere, and J keeps its plan with no new victim
    snap.submit(job("K", "y", 1, "V100-16GB"), submitted_at=10)
    r = schedule(snap, get_policy("alliance"))
    assert not r.admits
    assert [p.job for p in r.preempts] == ["c2"]
    assert r.reservations[JobId("J")] == where
    assert "0 job(s) preempted" in r.reasons[JobId("J")]
    # without the reservation K would take that device, and J would have to reclaim again
    snap.reservations.clear()
    assert admitted(schedule(snap, get_policy("alliance"))) == ["K"]
    # c1 stops: J starts where it reclaimed
    snap.reservations = dict(r.reservations)
    snap.requeue(JobId("c1"))
    later = schedule(snap, get_policy("alliance"))
    assert [(d.job, d.placement) for d in later.admits if d.job == "J"] == [("J", where)]


def test_a_reclaims_victims_keep_their_cpu_until_they_stop() -> None:
    """J reclaims exactly c2's devices; c2 still runs (and holds its 8 CPUs) until it stops,
    so c3 may not take the free device with 8 CPUs the node does not have."""
    a = (
        AllianceBuilder()
        .member("x")
        .member("c", tier="commons")
        .site("sx", "x")
        .nodes_of("sx", "V100-16GB", 1, devices=8, cpu=16)
        .build()
    )
    v = ModelId("V100-16GB")
    (n0,) = a.nodes
    snap = snapshot(a, job("c1", "c", 3, v), job("c2", "c", 4, v, cpu=8), job("J", "x", 4, v))
    snap.start(JobId("c1"), Placement(v, ((n0, (4, 5, 6)),)), at=0)
    snap.start(JobId("c2"), Placement(v, ((n0, (0, 1, 2, 3)),)), at=1)  # (newest: the victim)
    snap.submit(job("c3", "c", 1, v, cpu=8), submitted_at=5)
    r = schedule(snap, get_policy("alliance"))
    assert [p.job for p in r.preempts] == ["c2"]
    assert r.reservations == {"J": Placement(v, ((n0, (0, 1, 2, 3)),))}
    assert not r.admits  # (16 CPUs: c1's 1, c2's 8 and J's 1 leave 6)


def test_a_reclaim_counts_first_on_the_jobs_that_stop_first() -> None:
    snap, where = held_for_reclaim()
    # c2 is also stopping now (for nothing of x's: no reservation names it), and stops
    # before c1: a new pass may plan J on n2 instead, and waits less
    snap.mark_stopping(JobId("c2"), until=snap.now + 10)
    snap.reservations.clear()
    r = schedule(snap, get_policy("alliance"))
    assert not r.preempts
    assert r.reservations[JobId("J")].nodes != where.nodes


def x_and_c(y: bool = False) -> Alliance:
    """x owns a 2-device H800 node and a 2-device V100 node at sx; c borrows (and y, if asked,
    owns a 2-device H800 node at sy)."""
    b = AllianceBuilder().member("x").member("c", tier="commons").site("sx", "x")
    b = b.nodes_of("sx", "H800-80GB", 1, devices=2).nodes_of("sx", "V100-16GB", 1, devices=2)
    if y:
        b = b.member("y").site("sy", "y").nodes_of("sy", "H800-80GB", 1, devices=2)
    return b.build()


def reclaims(snap: Snapshot, victim: str, model: ModelId) -> PassResult:
    """A pass in which x's job J reclaims ``victim``'s devices of ``model`` (they stop later)."""
    first = schedule(snap, get_policy("alliance"))
    assert [p.job for p in first.preempts] == [victim]
    assert first.reservations[JobId("J")].model == model
    apply(snap, first, victims_stop=False)
    return first


def waits_for_its_victims(snap: Snapshot, first: PassResult) -> None:
    """J preempts no one more, and keeps what it reclaimed in ``first``."""
    r = schedule(snap, get_policy("alliance"))
    assert not r.preempts
    assert r.reservations[JobId("J")] == first.reservations[JobId("J")]
    model = first.reservations[JobId("J")].model
    assert f"reclaiming {model} from borrowers: 0 job(s) preempted" in r.reasons[JobId("J")]


def test_a_reclaim_waits_for_jobs_already_stopping_before_preempting_more() -> None:
    """x's job J may run on x's H800s or V100s (the H800s first). While x's own job held the
    H800s, J reclaimed the V100s from the commons member c; before c's job there stopped, x's
    job ended and c took the H800s. J keeps the V100s its victim is freeing: preempting c's
    job on the H800s too would cost c a second job, and the V100s would go to others."""
    snap, first = reclaimed_v100s_then_c_took_the_h800s()
    waits_for_its_victims(snap, first)


def reclaimed_v100s_then_c_took_the_h800s() -> tuple[Snapshot, PassResult]:
    """x's job J (H800s first, or V100s) reclaimed the V100s from c's job cv (stopping at
    300) while x's own job held the H800s; then x's job ended and c's job ch took them."""
    a = x_and_c()
    h, v = ModelId("H800-80GB"), ModelId("V100-16GB")
    nh, nv = (next(n for n in a.nodes.values() if n.model == f).id for f in (h, v))
    snap = snapshot(
        a, job("xh", "x", 2, h), job("cv", "c", 2, v), job("ch", "c", 2, h), job("J", "x", 2, h, v)
    )
    snap.start(JobId("xh"), Placement(h, ((nh, (0, 1)),)), at=0)
    snap.start(JobId("cv"), Placement(v, ((nv, (0, 1)),)), at=1)
    first = reclaims(snap, "cv", v)
    assert snap.running[JobId("cv")].stop_at == 300.0
    snap.finish(JobId("xh"))
    snap.start(JobId("ch"), Placement(h, ((nh, (0, 1)),)), at=5)
    return snap, first


@pytest.mark.parametrize(("other_stops_at", "takes"), [(400.0, "V100-16GB"), (200.0, "H800-80GB")])
def test_a_reclaim_trades_its_victims_only_for_jobs_that_stop_sooner(
    other_stops_at: float, takes: str
) -> None:
    """As above; then c's job on the H800s is preempted for another reason. J takes the
    stopping jobs that free its devices first: its own victim (stopping at 300) rather than
    c's H800 job if that stops later, so that it starts within its grace period; c's H800
    job if it stops sooner."""
    snap, _ = reclaimed_v100s_then_c_took_the_h800s()
    snap.mark_stopping(JobId("ch"), until=other_stops_at)
    r = schedule(snap, get_policy("alliance"))
    assert not r.preempts
    assert r.reservations[JobId("J")].model == takes


def test_a_reclaim_waits_for_its_victims_on_a_model_it_is_no_longer_guaranteed_on() -> None:
    """x's job J reclaimed x's H800s from c (within x's guarantee there). Before c's job
    stopped, another job of x started at y's site: x's room now holds J on its V100s only.
    J still takes the H800s being freed for it (borrowing what it is past its share), rather
    than preempting c's job on the V100s too and waiting a grace period again."""
    a = x_and_c(y=True)
    h, v = ModelId("H800-80GB"), ModelId("V100-16GB")
    nh, nv, ny = (
        next(n.id for n in a.nodes.values() if (n.site, n.model) == at)
        for at in (("sx", h), ("sx", v), ("sy", h))
    )
    snap = snapshot(
        a, job("ch", "c", 2, h), job("cv", "c", 2, v), job("yj", "y", 2, h), job("J", "x", 2, h, v)
    )
    snap.start(JobId("ch"), Placement(h, ((nh, (0, 1)),)), at=0)
    snap.start(JobId("cv"), Placement(v, ((nv, (0, 1)),)), at=1)
    snap.start(JobId("yj"), Placement(h, ((ny, (0, 1)),)), at=2)
    first = reclaims(snap, "ch", h)
    snap.finish(JobId("yj"))
    snap.submit(job("xo", "x", 2, h), submitted_at=5)
    snap.start(JobId("xo"), Placement(h, ((ny, (0, 1)),)), at=5)
    waits_for_its_victims(snap, first)


def h800s_and_a100s(h800: int, a100: int, *data_at: str) -> Alliance:
    """x's H800 nodes at sx, its A100 nodes at sy, a dataset of x's at each of ``data_at``."""
    b = AllianceBuilder().member("x").site("sx", "x").site("sy", "x")
    b = b.nodes_of("sx", "H800-80GB", h800).nodes_of("sy", "A100-80GB", a100)
    for site in data_at:
        b = b.dataset(f"data-{site}", "x", sites=(site,))
    return b.build()


@pytest.mark.parametrize("policy", ["alliance", "fair"])
def test_a_job_no_one_can_move_takes_a_data_sites_node_only_when_no_model_has_room_elsewhere(
    policy: str,
) -> None:
    """x's job may run on H800s (faster) or A100s. The only free H800 node is at sx, where x's
    data resides (a job held there could need it); an A100 node elsewhere is free. A
    non-preemptible job takes the A100s (there it keeps no one out for as long as it runs),
    a preemptible one the H800s (it can be moved); with no A100 free, the H800s at sx."""
    a = h800s_and_a100s(1, 1, "sx")
    h, g = ModelId("H800-80GB"), ModelId("A100-80GB")

    def placed(*jobs: JobSpec, by: str = policy) -> dict[str, ModelId]:
        r = schedule(snapshot(a, *jobs), get_policy(by))
        return {d.job: d.placement.model for d in r.admits}

    assert placed(job("np", "x", 8, h, g, preemptible=False)) == {"np": g}
    assert placed(job("p", "x", 8, h, g), by="alliance") == {"p": h}
    # (the A100s taken first by an earlier job: the data site's H800s rather than none)
    first = job("a", "x", 8, g, preemptible=False)
    assert placed(first, job("np", "x", 8, h, g, preemptible=False)) == {"a": g, "np": h}


@pytest.mark.parametrize("policy", ["alliance", "fair"])
def test_a_job_no_one_can_move_spares_a_small_sites_last_nodes_while_a_model_has_room(
    policy: str,
) -> None:
    """Every site holds data: sx two H800 nodes, sy four A100 nodes. A non-preemptible job
    on an H800 node would leave sx one node that no such job holds (a gang held to sx could
    not start until it ends, and no reclaim frees it): it takes the A100s, which keep three
    of four such nodes; on a node such a job holds already, if one has room. With every
    A100 node held by such jobs, and none with room beside them, it takes the H800s."""
    a = h800s_and_a100s(2, 4, "sx", "sy")
    h, g = ModelId("H800-80GB"), ModelId("A100-80GB")
    ny = sorted(n for n in a.nodes if n.startswith("sy"))

    def placed(*held: tuple[int, int]) -> Placement:
        snap = snapshot(a, job("np", "x", 4, h, g, preemptible=False))
        for k, (node, count) in enumerate(held):
            fixed = job(f"f{k}", "x", count, g, preemptible=False)
            snap.submit(fixed, submitted_at=0.0)
            snap.start(JobId(f"f{k}"), Placement(g, ((ny[node], tuple(range(count))),)), at=0)
        (d,) = schedule(snap, get_policy(policy)).admits
        return d.placement

    assert placed().model == g
    assert placed((0, 4), (1, 8)).nodes == (ny[0],)  # (beside the other)
    # (no room that spares a site: its first model with room, sy's last such node for fair,
    # which does not order models by speed)
    assert placed((0, 8), (1, 8), (2, 8)).model == (h if policy == "alliance" else g)
    # (a preemptible job takes the H800s: it can be moved)
    r = schedule(snapshot(a, job("p", "x", 4, h, g)), get_policy("alliance"))
    assert r.admits[0].placement.model == h


def held_at_home(**options: object) -> tuple[Snapshot, PassResult]:
    """x's data may stay only at x's site sx; y (within its guarantee) runs there a job that
    could run anywhere, and a job held to sx too (it reads x's data); x's job reads it."""
    a = (
        AllianceBuilder()
        .member("x")
        .member("y")
        .site("sx", "x")
        .site("sy", "y")
        .nodes_of("sx", "H800-80GB", 2)
        .nodes_of("sy", "H800-80GB", 2)
        .dataset("xdata", "x", readers=("y",), sites=("sx",))
        .build()
    )
    h = ModelId("H800-80GB")
    n0, n1, _, _ = sorted(a.nodes)
    snap = snapshot(
        a,
        job("free", "y", 8, h),
        job("held", "y", 8, h, datasets=("xdata",)),
        job("x1", "x", 8, h, datasets=("xdata",)),
    )
    snap.start(JobId("free"), Placement(h, ((n0, tuple(range(8))),)), at=1)
    snap.start(JobId("held"), Placement(h, ((n1, tuple(range(8))),)), at=2)
    return snap, schedule(snap, get_policy("alliance", **options))


def test_alliance_moves_a_job_that_may_run_anywhere_for_one_held_to_its_site() -> None:
    # x is within its guarantee but its job may run only at sx, where y's jobs run within
    # y's guarantee (no borrower to reclaim from) while y's own site idles: y's job that may
    # run anywhere is moved (y's job held to sx is not)
    snap, r = held_at_home()
    assert [p.job for p in r.preempts] == ["free"]
    assert "moved for x's job held to sx" in r.preempts[0].reason
    assert r.reservations[JobId("x1")].nodes == snap.running[JobId("free")].placement.nodes
    # once it stopped, it starts again at sy, and x's job where it reclaimed
    apply(snap, r)
    nxt = schedule(snap, get_policy("alliance"))
    placed = {d.job: d.placement.nodes for d in nxt.admits}
    assert placed[JobId("x1")] == r.reservations[JobId("x1")].nodes
    assert all(n.startswith("sy-") for n in placed[JobId("free")])
    _, off = held_at_home(residency_moves=False)
    assert not off.preempts
    assert "would not free a fitting placement" in off.reasons[JobId("x1")]


def test_alliance_counts_a_held_jobs_guarantee_on_the_models_at_its_sites() -> None:
    """x's data stays at sx, which has H800s only. x has room left in its guarantee for 8 T4s
    (there are some, at y's site) but not for 8 H800s: its job held to sx is not within its
    guarantee, reclaims nothing and says so (no T4 in its reasons: none is where it may
    run)."""
    a = (
        AllianceBuilder()
        .member("x")
        .member("y")
        .site("sx", "x")
        .site("sy", "y")
        .nodes_of("sx", "H800-80GB", 1)
        .nodes_of("sy", "T4", 1)
        .dataset("xdata", "x", sites=("sx",))
        .build()
    )
    h, t4 = ModelId("H800-80GB"), ModelId("T4")
    (nx,) = (n for n in a.nodes if n.startswith("sx-"))
    snap = snapshot(
        a,
        job("mine", "x", 4, h),
        job("borrowed", "y", 4, h),
        job("x1", "x", 8, h, t4, datasets=("xdata",)),
    )
    snap.start(JobId("mine"), Placement(h, ((nx, (0, 1, 2, 3)),)), at=1)
    snap.start(JobId("borrowed"), Placement(h, ((nx, (4, 5, 6, 7)),)), at=2)
    r = schedule(snap, get_policy("alliance"))
    assert not r.preempts
    assert r.reasons[JobId("x1")] == "no free 8 device(s) on H800-80GB"


def gang_at_home(**options: object) -> PassResult:
    """x owns sx (3 H800 nodes), y owns sy (2 A100 nodes); each site is its own fabric. y,
    within its guarantee, runs a one-device job on each of two of x's nodes; x wants a 2x8
    gang of H800."""
    a = (
        AllianceBuilder()
        .member("x")
        .member("y")
        .site("sx", "x")
        .site("sy", "y")
        .nodes_of("sx", "H800-80GB", 3)
        .nodes_of("sy", "A100-80GB", 2)
        .build()
    )
    h = ModelId("H800-80GB")
    n0, n1, *_ = sorted(a.nodes)
    snap = snapshot(a, job("y1", "y", 1, h), job("y2", "y", 1, h), job("g", "x", 16, h, nodes=2))
    snap.start(JobId("y1"), Placement(h, ((n0, (0,)),)), at=1)
    snap.start(JobId("y2"), Placement(h, ((n1, (0,)),)), at=2)
    return schedule(snap, get_policy("alliance", **options))


def test_alliance_moves_small_jobs_off_nodes_a_guaranteed_gang_needs_whole() -> None:
    # no borrower anywhere, and sx has one whole free node: y's newest small job moves (it
    # starts again beside y's other one) and the gang gets its node
    r = gang_at_home()
    assert [p.job for p in r.preempts] == ["y2"]
    assert "moved for x's gang of 2x8 whole nodes" in r.preempts[0].reason
    assert len(r.reservations[JobId("g")].nodes) == 2
    assert not gang_at_home(gang_moves=False).preempts


def test_alliance_lends_first_to_the_lightest_past_user() -> None:
    a = two_members(1, 0).member("d", tier="commons").build()
    snap = snapshot(a, job("c1", "c", 8, "H800-80GB"), job("d1", "d", 8, "H800-80GB"))
    snap.usage_history[MemberId("c")] = 1e9
    assert admitted(schedule(snap, get_policy("alliance"))) == ["d1"]


def test_alliance_places_by_throughput_per_unit() -> None:
    a = hetero().build()
    j = job("c1", "c", 1, "V100-32GB", "A100-80GB")
    snap = snapshot(a, j)
    # per NU, this job runs 3x better on the V100 (0.125 NU) than on the A100 (0.312 NU)
    snap.throughput[j.id] = {ModelId("V100-32GB"): 1.0, ModelId("A100-80GB"): 0.8}
    assert schedule(snap, get_policy("alliance")).admits[0].placement.model == "V100-32GB"
    snap.throughput[j.id] = {ModelId("V100-32GB"): 1.0, ModelId("A100-80GB"): 4.0}
    assert schedule(snap, get_policy("alliance")).admits[0].placement.model == "A100-80GB"


def test_alliance_breaks_ties_in_speed_by_contribution_then_emptiest() -> None:
    """H100 and H800 are equally fast (the same NU), and so are A10 and both V100s: a member
    takes the one it contributed even when another is emptier; a commons member takes the
    emptiest (not the first by name)."""
    a = (
        AllianceBuilder()
        .member("a")
        .member("b")
        .member("c", tier="commons")
        .site("sa", "a")
        .site("sb", "b")
        .nodes_of("sa", "H800-80GB", 2)
        .nodes_of("sb", "H100-80GB", 1)
        .nodes_of("sa", "A10", 1)
        .nodes_of("sa", "V100-16GB", 1)
        .nodes_of("sb", "V100-32GB", 2)
        .build()
    )
    fast, slow = ("H100-80GB", "H800-80GB"), ("A10", "V100-16GB", "V100-32GB")
    snap = snapshot(
        a,
        job("b1", "b", 1, *fast),
        job("c1", "c", 1, *fast),
        job("a1", "a", 1, *slow),
        job("c2", "c", 1, *slow),
    )
    r = schedule(snap, get_policy("alliance"))
    got = {d.job: d.placement.model for d in r.admits}
    assert got == {"b1": "H100-80GB", "c1": "H800-80GB", "a1": "A10", "c2": "V100-32GB"}


def test_alliance_non_preemptible_beyond_guarantee_waits_with_reason() -> None:
    a = hetero().build()
    snap = snapshot(a, job("c1", "c", 1, "V100-32GB", preemptible=False))
    r = schedule(snap, get_policy("alliance"))
    assert not r.admits and "non-preemptible" in r.reasons[JobId("c1")]


def test_alliance_counts_a_non_preemptible_job_on_its_members_non_preemptible_jobs() -> None:
    """b's own preemptible jobs took it past its entitlement (8 A100 and 4 of a's V100): its
    non-preemptible job is still within its guarantee, for its non-preemptible jobs hold
    nothing; b's borrowed jobs are the ones reclaim may take."""
    a = hetero().build()
    snap = snapshot(a, job("b-own", "b", 8, "A100-80GB"), job("b-borrow", "b", 4, "V100-32GB"))
    apply(snap, schedule(snap, get_policy("alliance")))
    assert snap.used_nu[MemberId("b")] > snap.entitlement_nu[MemberId("b")]
    snap.submit(job("b-fixed", "b", 4, "V100-32GB", preemptible=False), submitted_at=10.0)
    r = schedule(snap, get_policy("alliance"))
    assert admitted(r) == ["b-fixed"]
    assert r.admits[0].reason == "within the member's guarantee"


def test_alliance_non_preemptible_jobs_past_the_entitlement_wait_and_say_why() -> None:
    """b's non-preemptible jobs hold all it contributed: another waits, a preemptible one
    borrows."""
    a = hetero().build()
    snap = snapshot(a, job("b-fixed", "b", 8, "A100-80GB", preemptible=False))
    apply(snap, schedule(snap, get_policy("alliance")))
    snap.submit(job("b-more", "b", 4, "V100-32GB", preemptible=False), submitted_at=10.0)
    snap.submit(job("b-borrow", "b", 4, "V100-32GB"), submitted_at=11.0)
    r = schedule(snap, get_policy("alliance"))
    assert admitted(r) == ["b-borrow"]
    assert "non-preemptible jobs past its guarantee" in r.reasons[JobId("b-more")]


def test_alliance_non_preemptible_job_reclaims_its_own_members_borrowed_jobs() -> None:
    """The pool is full of b's preemptible jobs, b past its entitlement: b's non-preemptible
    job within it preempts b's own borrowed jobs (the only borrower's) and takes their place."""
    a = hetero().build()
    snap = snapshot(a, job("b-own", "b", 8, "A100-80GB"), job("b-borrow", "b", 8, "V100-32GB"))
    apply(snap, schedule(snap, get_policy("alliance")))
    assert snap.free.free_count == 0
    snap.submit(job("b-fixed", "b", 8, "V100-32GB", preemptible=False), submitted_at=10.0)
    r = schedule(snap, get_policy("alliance"))
    assert not r.admits and [d.job for d in r.preempts] == ["b-borrow"]
    assert r.reserved == {JobId("b-fixed")}


@pytest.mark.parametrize("policy", ["fair", "alliance"])
def test_a_queue_full_of_jobs_for_a_full_model_does_not_hold_back_jobs_for_another(
    policy: str,
) -> None:
    """c's first 70 jobs want the one V100 node; its last job may run on the idle A100s. The
    V100 jobs stop being served after max_skips failures; the A100 job still starts."""
    a = hetero().build()
    v100 = [job(f"v{i:02d}", "c", 8, "V100-32GB") for i in range(70)]
    snap = snapshot(a, *v100, job("a100", "c", 8, "A100-80GB"))
    r = schedule(snap, get_policy(policy, max_skips=64))
    assert admitted(r) == ["v00", "a100"]
    assert "its last 64 examined jobs could not start" in r.reason(snap, JobId("v69"))
    # one kind only: the pass stops serving c as before, its later jobs not looked at
    snap = snapshot(a, *v100)
    r = schedule(snap, get_policy(policy, max_skips=64))
    assert admitted(r) == ["v00"] and r.examined == 65
    # jobs held to a site are a kind of their own: b's 70 jobs reading data kept at its site
    # wait for its one A100 node; its job that reads nothing runs on the V100s
    a = hetero().dataset("bd", "b", sites=("sb",)).build()
    held = [job(f"h{i:02d}", "b", 8, "A100-80GB", "V100-32GB", datasets=("bd",)) for i in range(70)]
    snap = snapshot(a, *held, job("free", "b", 8, "A100-80GB", "V100-32GB"))
    r = schedule(snap, get_policy(policy, max_skips=64))
    assert {d.job: d.placement.model for d in r.admits} == {
        "h00": "A100-80GB",
        "free": "V100-32GB",
    }


@pytest.mark.parametrize("member", ["b", "c"])
def test_alliance_leaves_a_model_to_jobs_that_can_run_only_there(member: str) -> None:
    """The first job may run on A100 or V100, c's second only on A100. The first would run
    faster on the A100s, but the second waits for them and can run nowhere else: the first
    takes the V100s, whether it borrows (c, commons) or is within its guarantee (b, which
    contributed the A100s). With ``leave_wanted`` off it takes the A100s; c's job waits."""
    a = hetero().build()
    jobs = (job("any", member, 8, "A100-80GB", "V100-32GB"), job("c-a100", "c", 8, "A100-80GB"))
    r = schedule(snapshot(a, *jobs), get_policy("alliance"))
    assert {d.job: d.placement.model for d in r.admits} == {
        "any": "V100-32GB",
        "c-a100": "A100-80GB",
    }
    r = schedule(snapshot(a, *jobs), get_policy("alliance", leave_wanted=False))
    assert {d.job: d.placement.model for d in r.admits} == {"any": "A100-80GB"}
    # nothing waits for the A100s: the first job takes the fastest model
    r = schedule(snapshot(a, jobs[0]), get_policy("alliance"))
    assert {d.job: d.placement.model for d in r.admits} == {"any": "A100-80GB"}


def held_site() -> AllianceBuilder:
    """x's data may stay only at its site sx (one H800 node); z owns sz (two H800 nodes)."""
    return (
        AllianceBuilder()
        .member("x")
        .member("z")
        .member("y", tier="commons")
        .site("sx", "x")
        .site("sz", "z")
        .nodes_of("sx", "H800-80GB", 1)
        .nodes_of("sz", "H800-80GB", 2)
        .dataset("xd", "x", sites=("sx",))
    )


@pytest.mark.parametrize("leave_wanted", [True, False])
def test_alliance_leaves_a_site_to_the_jobs_held_there(leave_wanted: bool) -> None:
    """x borrows (its 8 devices run at sz), so its job reading xd, held to sx, waits there
    for z's 6 devices to end. y's job may run anywhere: sx's node would fit it best, but
    x's job waits for it, so it goes to sz, and sx's node is left to empty for x. With
    ``leave_wanted`` off it takes sx's last devices."""
    a = held_site().build()
    h800 = ModelId("H800-80GB")
    running = [job("x-any", "x", 8, "H800-80GB"), job("z6", "z", 6, "H800-80GB")]
    running.append(job("z4", "z", 4, "H800-80GB"))
    snap = snapshot(a, *running)
    snap.start(JobId("x-any"), Placement(h800, ((NodeId("sz-n001"), tuple(range(8))),)), at=0)
    snap.start(JobId("z6"), Placement(h800, ((NodeId("sx-n000"), tuple(range(6))),)), at=0)
    snap.start(JobId("z4"), Placement(h800, ((NodeId("sz-n002"), (0, 1, 2, 3)),)), at=0)
    held = job("x-data", "x", 8, "H800-80GB", datasets=("xd",))
    snap.submit(held, 1.0, a.sites_for(held))
    snap.submit(job("y2", "y", 2, "H800-80GB"), 2.0)
    r = schedule(snap, get_policy("alliance", leave_wanted=leave_wanted))
    assert {d.job: d.placement.nodes for d in r.admits} == {
        "y2": ("sz-n002",) if leave_wanted else ("sx-n000",)
    }


@pytest.mark.parametrize("leave_wanted", [True, False])
def test_alliance_upgrades_no_job_onto_a_site_its_held_jobs_wait_for(leave_wanted: bool) -> None:
    """v's job has run long on a V100 and would run faster on sx's idle H800s; x's job held
    to sx (x borrows: it runs 8 V100s) waits for the node to empty, so the job stays where
    it is. With ``leave_wanted`` off it moves there."""
    a = held_site().member("v").site("sv", "v").nodes_of("sv", "V100-32GB", 2).build()
    h800, v100 = ModelId("H800-80GB"), ModelId("V100-32GB")
    running = [job("x-v", "x", 8, "V100-32GB"), job("v1", "v", 1, "V100-32GB", "H800-80GB")]
    running.append(job("v-h", "v", 1, "H800-80GB"))
    snap = snapshot(a, *running, now=100_000.0)
    snap.start(JobId("x-v"), Placement(v100, ((NodeId("sv-n003"), tuple(range(8))),)), at=0)
    snap.start(JobId("v1"), Placement(v100, ((NodeId("sv-n004"), (0,)),)), at=0)
    snap.start(JobId("v-h"), Placement(h800, ((NodeId("sx-n000"), (0,)),)), at=0)
    for n in ("sz-n001", "sz-n002"):  # (z's nodes: busy)
        snap.set_schedulable(NodeId(n), False)
    held = job("x-data", "x", 8, "H800-80GB", datasets=("xd",))
    snap.submit(held, 1.0, a.sites_for(held))
    r = schedule(snap, get_policy("alliance", leave_wanted=leave_wanted))
    assert not r.admits
    assert [d.job for d in r.preempts] == ([] if leave_wanted else ["v1"])


def test_a_non_preemptible_job_held_to_a_site_moves_its_members_jobs_once() -> None:
    """x (within its entitlement) runs three 2-device jobs at its data site sx, z two 1-device
    jobs there. x's non-preemptible job of 8 devices reading x's data needs all of sx: x's own
    jobs are its victims (they would take x past its entitlement), z's must move; x's jobs
    are not counted twice (once as victims, once as movable)."""
    a = (
        AllianceBuilder()
        .member("x")
        .member("z")
        .site("sx", "x")
        .site("sz", "z")
        .nodes_of("sx", "H800-80GB", 1)
        .nodes_of("sz", "H800-80GB", 1)
        .dataset("xd", "x", sites=("sx",))
        .build()
    )
    x_jobs = [job(f"x{i}", "x", 2, "H800-80GB") for i in range(3)]
    z_jobs = [job(f"z{i}", "z", 1, "H800-80GB") for i in range(2)]
    snap = snapshot(a, *x_jobs, *z_jobs)
    h800, node = ModelId("H800-80GB"), NodeId("sx-n000")
    for i, s in enumerate(z_jobs):  # (z's first: moves take the newest first)
        snap.start(s.id, Placement(h800, ((node, (6 + i,)),)), at=i)
    for i, s in enumerate(x_jobs):
        snap.start(s.id, Placement(h800, ((node, (2 * i, 2 * i + 1)),)), at=10 + i)
    snap.submit(
        job("x-data", "x", 8, "H800-80GB", preemptible=False, datasets=("xd",)),
        20.0,
        a.sites_for(job("x-data", "x", 8, "H800-80GB", datasets=("xd",))),
    )
    r = schedule(snap, get_policy("alliance"))
    assert sorted(d.job for d in r.preempts) == ["x0", "x1", "x2", "z0", "z1"]
    assert r.reserved == {JobId("x-data")}


def test_a_non_preemptible_job_takes_its_members_own_jobs_last_when_borrowers_are_claimed() -> None:
    """x (three nodes of 8 H800) runs 20 devices of preemptible jobs, c0 (commons) borrows
    12: the pool is full. x's 13 one-device non-preemptible jobs and two of 8 are within its
    entitlement (counted alone). The first two reclaim c0's two jobs (12 devices, 2 counted
    on); the other eleven, past no entitlement with x's preemptible jobs, find no borrower's
    job left and take x's own, last among their victims: all 13 and the first 8-device job
    start at the next pass. (Taking x's jobs only once they took it past its entitlement,
    the eleven waited, the 8-device jobs reclaimed x's jobs, which came back first in x's
    queue, and the last one-device job started two passes later.)"""
    a = (
        AllianceBuilder()
        .member("x")
        .member("y")
        .member("c0", tier="commons")
        .site("sx", "x")
        .site("sy", "y")
        .nodes_of("sx", "H800-80GB", 3)
        .nodes_of("sy", "H800-80GB", 1)
        .build()
    )
    shapes = [("c0", 4), ("c0", 8), *[("x", 1)] * 4, *[("c0", 1)] * 4, ("x", 4), ("x", 4)]
    shapes.append(("x", 8))
    snap = snapshot(a, *(job(f"b{i}", m, n, "H800-80GB") for i, (m, n) in enumerate(shapes)))
    apply(snap, schedule(snap, get_policy("alliance")))
    ones = [job(f"x{i:02d}", "x", 1, "H800-80GB", preemptible=False) for i in range(13)]
    eights = [job(f"x-8-{i}", "x", 8, "H800-80GB", preemptible=False) for i in range(2)]
    for i, s in enumerate(ones + eights):
        snap.submit(s, submitted_at=1000.0 + i)
    first = schedule(snap, get_policy("alliance"))
    assert not first.admits
    yielded = [d for d in first.preempts if d.job in {"b2", "b3", "b4", "b5", "b10", "b11"}]
    assert yielded and all(d.reason.startswith("yields to x's non-preemptible") for d in yielded)
    apply(snap, first)
    apply(snap, schedule(snap, get_policy("alliance")))
    running = {j for j, r in snap.running.items() if not r.spec.preemptible}
    assert running == {s.id for s in ones} | {JobId("x-8-0")}


def test_unreached_jobs_get_a_reason_from_their_member() -> None:
    a = two_members(1, 0).build()
    jobs = [job(f"c{i}", "c", 8, "H800-80GB") for i in range(100)]
    snap = snapshot(a, *jobs)
    r = schedule(snap, get_policy("alliance", max_skips=4))
    assert admitted(r) == ["c0"]
    assert r.examined <= 6
    why = r.reason(snap, JobId("c90"))
    assert why.startswith("behind 90 earlier job(s) of c, whose queue waits")


# -- gavel -------------------------------------------------------------------------------------
def test_max_min_lp_splits_one_device_evenly() -> None:
    x = max_min_lp([(0, 0), (1, 0)], [1.0, 1.0], [1, 1], [1.0], 2)
    assert np.allclose(x, [0.5, 0.5], atol=1e-6)


def test_max_min_lp_respects_scale_factors() -> None:
    # job 0 needs 2 devices, job 1 one; 2 devices: max-min of s_j*x_j gives x0=0.5, x1=1
    x = max_min_lp([(0, 0), (1, 0)], [2.0, 1.0], [2, 1], [2.0], 2)
    assert x[0] * 2 + x[1] <= 2 + 1e-6
    assert min(2 * x[0], x[1]) == pytest.approx(1.0, abs=1e-6)


def test_gavel_sends_each_job_where_it_gains_most() -> None:
    a = (
        AllianceBuilder()
        .member("a")
        .site("s", "a")
        .nodes_of("s", "V100-32GB", 1, devices=1)
        .nodes_of("s", "K80", 1, devices=1)
        .build()
    )
    ja, jb = job("ja", "a", 1, "V100-32GB", "K80"), job("jb", "a", 1, "V100-32GB", "K80")
    snap = snapshot(a, ja, jb)
    snap.throughput[ja.id] = {ModelId("V100-32GB"): 10.0, ModelId("K80"): 1.0}
    snap.throughput[jb.id] = {ModelId("V100-32GB"): 2.0, ModelId("K80"): 1.0}
    r = schedule(snap, get_policy("gavel"))
    got = {d.job: d.placement.model for d in r.admits}
    assert got == {"ja": "V100-32GB", "jb": "K80"}


def test_gavel_rotates_time_shares_by_preemption() -> None:
    a = (
        AllianceBuilder()
        .member("a")
        .site("s", "a")
        .nodes_of("s", "V100-32GB", 1, devices=1)
        .build()
    )
    snap = snapshot(a, job("j1", "a", 1, "V100-32GB"), job("j2", "a", 1, "V100-32GB"))
    r = schedule(snap, get_policy("gavel"))
    assert len(r.admits) == 1
    first = r.admits[0].job
    apply(snap, r)
    snap.now = 360.0
    snap.running[first].job.attained_s[ModelId("V100-32GB")] = 360.0
    r = schedule(snap, get_policy("gavel"))
    assert [p.job for p in r.preempts] == [first]
