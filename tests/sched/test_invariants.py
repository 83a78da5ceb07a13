"""Invariants of every policy, as hypothesis properties over random pools, jobs and states."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suanli.model.alliance import Alliance
from suanli.model.ids import JobId, MemberId
from suanli.model.job import JobSpec
from suanli.sched.decision import Admit, Preempt
from suanli.sched.policy import get_policy
from suanli.sched.pool import mask_of
from suanli.sched.schedule import PassResult, schedule
from suanli.sched.snapshot import Snapshot

from ..builders import AllianceBuilder, job, snapshot
from .apply import apply

POLICIES = ["fifo", "fair", "gavel", "alliance"]
MODELS = ["H800-80GB", "Ascend910B", "MLU370-X8", "Ascend910C"]
RINGS = ((0, 1, 2, 3), (4, 5, 6, 7))
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def pools(draw: st.DrawFn) -> Alliance:
    models = draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=3, unique=True))
    n_contrib = draw(st.integers(2, 4))
    n_commons = draw(st.integers(0, 2))
    b = AllianceBuilder()
    for i in range(n_contrib):
        b.member(f"m{i}", weight=draw(st.sampled_from([1.0, 2.0])))
        for k in range(draw(st.integers(1, 2))):
            site = f"m{i}s{k}"
            b.site(site, f"m{i}")
            for _ in range(draw(st.integers(0, 2))):
                model = draw(st.sampled_from(models))
                devices = draw(st.sampled_from([4, 8]))
                topo = RINGS if devices == 8 and draw(st.booleans()) else ()
                b.nodes_of(site, model, 1, devices=devices, topology=topo, cpu=32)
    for i in range(n_commons):
        b.member(f"c{i}", tier="commons")
    if draw(st.booleans()) and b.sites:
        sites = draw(st.lists(st.sampled_from(sorted(b.sites)), min_size=1, max_size=2))
        b.dataset("resident", "m0", readers=tuple(b.members), sites=tuple(sites))
    if not b.nodes:
        b.site("extra", "m0").nodes_of("extra", models[0], 1)
    return b.build()


@st.composite
def workloads(draw: st.DrawFn, alliance: Alliance, n: int = 25) -> list[JobSpec]:
    present = sorted({node.model for node in alliance.nodes.values()})
    specs = []
    for i in range(draw(st.integers(1, n))):
        member = draw(st.sampled_from(sorted(alliance.members)))
        multi = draw(st.integers(0, 5)) == 0
        if multi:
            per = draw(st.sampled_from([4, 8]))
            nodes, count = 2, 2 * per
        else:
            nodes, count = 1, draw(st.sampled_from([1, 2, 3, 4, 8]))
        models = draw(st.lists(st.sampled_from(present), min_size=1, max_size=3, unique=True))
        models = [m for m in models if count % (2 if m == "Ascend910C" else 1) == 0]
        if not models:
            continue
        ds = ("resident",) if alliance.datasets and draw(st.booleans()) else ()
        specs.append(
            job(
                f"j{i}",
                member,
                count,
                *models,
                nodes=nodes,
                preemptible=draw(st.integers(0, 4)) > 0,
                priority=draw(st.integers(0, 2)),
                cpu=draw(st.sampled_from([1, 8])),
                datasets=ds,
            )
        )
    return specs


def check(snap: Snapshot, result: PassResult) -> None:
    pool = snap.pool
    free = snap.free.copy()
    seen: set[JobId] = set()
    for d in result.decisions:
        assert d.job not in seen, "one decision per job per pass"
        seen.add(d.job)
        if isinstance(d, Preempt):
            assert d.job in snap.running and snap.running[d.job].spec.preemptible
            continue
        assert isinstance(d, Admit)
        q = snap.pending[d.job]
        p = d.placement
        spec = q.spec
        # stack and model: one acceptable model for the whole job
        assert p.model in spec.models
        # gang all or nothing, with its shape
        assert p.devices == spec.count
        assert len(p.assignments) == spec.gang.nodes == len(set(p.nodes))
        nodes = [pool.node(n) for n in p.nodes]
        assert all(n.model == p.model for n in nodes)
        for node, (_, devs) in zip(nodes, p.assignments, strict=True):
            assert len(devs) == spec.gang.per_node
            unit = node.alloc_unit
            assert all(devs[k] % unit == 0 for k in range(0, len(devs), unit))
            if spec.gang.nodes == 1 and spec.count <= node.max_group:
                assert any(mask_of(devs) & g == mask_of(devs) for g in node.group_masks)
        if spec.gang.nodes > 1:
            assert all(n.devices == spec.gang.per_node for n in nodes)
            assert len({n.zone for n in nodes}) == 1
        # residency
        if q.allowed_sites is not None:
            assert all(n.site in q.allowed_sites for n in nodes)
        # no node over-allocated (take() raises on a device that is not free)
        free.take(p, spec.cpu, spec.memory_gb)
    assert all(c >= 0 for c in free.cpu) and all(m >= 0 for m in free.mem)
    admitted = {d.job for d in result.admits}
    for j in snap.pending:
        if j not in admitted:
            assert result.reason(snap, j), f"{j} waits without a reason"


def counts_hold(snap: Snapshot) -> None:
    """The snapshot's running counts agree with its jobs."""
    kinds: dict[object, dict[object, int]] = {m: {} for m in snap.members}
    want: dict[frozenset[str], int] = {}
    held: dict[tuple[frozenset[str], frozenset[str]], int] = {}
    for q in snap.pending.values():
        kind = (q.spec.models, q.allowed_sites)
        kinds[q.member][kind] = kinds[q.member].get(kind, 0) + 1
        if q.allowed_sites is None:
            if snap.pool.present(q.spec):  # (jobs no node could ever host ask for nothing)
                want[q.spec.models] = want.get(q.spec.models, 0) + q.spec.count
        else:
            at = (q.allowed_sites, q.spec.models)
            held[at] = held.get(at, 0) + q.spec.count
    assert {m: snap.pending_kinds(m) for m in snap.members} == kinds
    assert snap.pending_devices == want
    assert snap.pending_held == held
    for m in snap.members:
        fixed = [q for q in snap.pending.values() if q.member == m and not q.spec.preemptible]
        assert snap.pending_fixed[m] == len(fixed)
        held = sum(r.nu for r in snap.running.values() if r.member == m and not r.spec.preemptible)
        assert abs(snap.fixed_nu[m] - held) < 1e-9


def state(alliance: Alliance, specs: list[JobSpec], policy: str) -> Snapshot:
    """A snapshot after one pass was applied: some jobs run, some wait."""
    half = len(specs) // 2
    snap = snapshot(alliance, *specs[:half])
    apply(snap, schedule(snap, get_policy(policy)))
    for i, s in enumerate(specs[half:]):
        snap.submit(s, submitted_at=100.0 + i, allowed_sites=alliance.sites_for(s))
    snap.now = 200.0
    return snap


def fingerprint(result: PassResult) -> list[tuple[object, ...]]:
    return [(type(d).__name__, d.job, getattr(d, "placement", None)) for d in result.decisions]


@given(data=st.data(), policy=st.sampled_from(POLICIES))
@SETTINGS
def test_placements_respect_every_rule(data: st.DataObject, policy: str) -> None:
    alliance = data.draw(pools())
    specs = data.draw(workloads(alliance))
    snap = state(alliance, specs, policy)
    before = (snap.free.free.copy(), dict(snap.used_devices), len(snap.pending))
    pinned = snap.free.pinned.copy()
    result = schedule(snap, get_policy(policy))
    assert (snap.free.free, snap.used_devices, len(snap.pending)) == before, "pass is pure"
    assert snap.free.pinned == pinned
    check(snap, result)
    # the devices no one can free are counted per node and group as jobs start and stop
    apply(snap, result)
    check_pinned(snap)
    for j in sorted(snap.running)[::2]:
        snap.finish(j)
    check_pinned(snap)


def check_pinned(snap: Snapshot) -> None:
    pool = snap.pool
    held = [0] * len(pool.nodes)
    for r in snap.running.values():
        if not r.spec.preemptible:
            for node, devices in r.placement.assignments:
                held[pool.index[node]] += len(devices)
    assert snap.free.pinned == held
    by_group = [0] * len(pool.groups)
    for n in pool.nodes:
        by_group[n.group] += held[n.index] > 0
    assert snap.free.pinned_by_group == by_group


@given(data=st.data(), policy=st.sampled_from(POLICIES))
@SETTINGS
def test_same_snapshot_same_decisions(data: st.DataObject, policy: str) -> None:
    alliance = data.draw(pools())
    specs = data.draw(workloads(alliance))
    a = state(alliance, specs, policy)
    b = state(alliance, specs, policy)
    first = fingerprint(schedule(a, get_policy(policy)))
    assert first == fingerprint(schedule(a, get_policy(policy)))
    assert first == fingerprint(schedule(b, get_policy(policy)))


def borrowed(data: st.DataObject, own: int, who: list[str], policy: str) -> Snapshot:
    """x contributed ``own`` nodes of 8 H800, y one; jobs of ``who`` borrowed what they could
    in one pass of ``policy``."""
    alliance = (
        AllianceBuilder()
        .member("x")
        .member("y")
        .member("c0", tier="commons")
        .member("c1", tier="commons")
        .site("sx", "x")
        .site("sy", "y")
        .nodes_of("sx", "H800-80GB", own)
        .nodes_of("sy", "H800-80GB", 1)
        .build()
    )
    borrowers = [
        job(
            f"b{i}",
            data.draw(st.sampled_from(who)),
            data.draw(st.sampled_from([1, 2, 4, 8])),
            "H800-80GB",
        )
        for i in range(data.draw(st.integers(4, 30)))
    ]
    snap = snapshot(alliance, *borrowers)
    apply(snap, schedule(snap, get_policy(policy)))
    return snap


@given(
    data=st.data(), policy=st.sampled_from(["fair", "alliance"]), size=st.sampled_from([1, 2, 4, 8])
)
@SETTINGS
def test_demand_within_nominal_is_met_at_the_next_pass(
    data: st.DataObject, policy: str, size: int
) -> None:
    own = data.draw(st.integers(1, 3))
    snap = borrowed(data, own, ["c0", "c1"], policy)
    demand = data.draw(st.integers(1, own * 8 // size))
    mine = [job(f"x{i}", "x", size, "H800-80GB") for i in range(demand)]
    for i, s in enumerate(mine):
        snap.submit(s, submitted_at=1000.0 + i)
    apply(snap, schedule(snap, get_policy(policy)))  # reclaim: victims stop and requeue
    apply(snap, schedule(snap, get_policy(policy)))  # the next pass
    assert all(s.id in snap.running for s in mine), "guaranteed demand not met"


@given(data=st.data(), size=st.sampled_from([1, 2, 4, 8]))
@SETTINGS
def test_alliance_meets_non_preemptible_demand_within_the_entitlement_of_a_borrower(
    data: st.DataObject, size: int
) -> None:
    """x's own preemptible jobs (and a commons member's) borrowed the pool: x's
    non-preemptible jobs within what it contributed start within three passes (x's own
    borrowed jobs go first among their victims, its jobs within its entitlement last, and
    x's preempted jobs, queued before them, no longer borrow again what the victims freed),
    and x's non-preemptible jobs never hold more than that. (Two passes in 2,000 examples;
    a reclaim takes whole victims, and what a victim frees beyond its job's size is not
    counted on by the next reclaim of the pass.)"""
    own = data.draw(st.integers(1, 3))
    snap = borrowed(data, own, ["x", "c0"], "alliance")
    demand = data.draw(st.integers(1, own * 8 // size))
    mine = [job(f"x{i}", "x", size, "H800-80GB", preemptible=False) for i in range(demand)]
    more = [job(f"x-over{i}", "x", 8, "H800-80GB", preemptible=False) for i in range(2)]
    for i, s in enumerate(mine + more):
        snap.submit(s, submitted_at=1000.0 + i)
    x = MemberId("x")
    for _ in range(3):
        apply(snap, schedule(snap, get_policy("alliance")))
        fixed = sum(r.nu for r in snap.running.values() if not r.spec.preemptible)
        assert fixed <= snap.entitlement_nu[x] + 1e-9
        assert abs(fixed - snap.fixed_nu[x]) < 1e-9
    assert all(s.id in snap.running for s in mine), "guaranteed demand not met"


@given(data=st.data(), policy=st.sampled_from(["fair", "alliance"]))
@SETTINGS
def test_no_device_is_counted_on_twice_across_passes(data: st.DataObject, policy: str) -> None:
    """Reclaims' victims keep stopping over several passes while their reservations are
    held: every pass stays valid, and no two jobs count on one device (an admission and a
    reservation, or two reservations)."""
    alliance = data.draw(pools())
    specs = data.draw(workloads(alliance))
    snap = state(alliance, specs, policy)
    for k in range(3):
        result = schedule(snap, get_policy(policy))
        check(snap, result)
        taken = [
            (n, d)
            for p in [a.placement for a in result.admits] + list(result.reservations.values())
            for n, devs in p.assignments
            for d in devs
        ]
        assert len(taken) == len(set(taken)), "a device counted on twice"
        assert set(result.reservations) == set(result.reserved)
        apply(snap, result, victims_stop=False)
        counts_hold(snap)
        snap.now += 60.0 * (k + 1)


@given(data=st.data(), policy=st.sampled_from(["fifo", "fair", "alliance"]))
@SETTINGS
def test_inflating_demand_does_not_help(data: st.DataObject, policy: str) -> None:
    """Jobs a member queues behind its others cannot change which of those start in a pass.
    Not for ``alliance``'s ``leave_wanted`` (docs/policies.md, "not claimed"): the devices
    that narrower jobs wait for are its signal, and a member's extra narrow jobs move it
    (its wider job then takes a cheaper model, leaving its guarantee room for another)."""
    options = {"leave_wanted": False} if policy == "alliance" else {}
    alliance = data.draw(pools())
    specs = data.draw(workloads(alliance))
    member = data.draw(st.sampled_from(sorted(alliance.members)))
    fakes = [
        job(
            f"fake{i}",
            member,
            data.draw(st.sampled_from([1, 4, 8])),
            *sorted({n.model for n in alliance.nodes.values()} - {"Ascend910C"}) or ["Ascend910C"],
            priority=0,
        )
        for i in range(data.draw(st.integers(1, 10)))
    ]
    truthful = {s.id for s in specs if s.member == member}

    def gained(extra: list[JobSpec]) -> set[JobId]:
        snap = snapshot(alliance, *specs)
        for i, s in enumerate(extra):
            snap.submit(s, submitted_at=1e6 + i)
        admitted = {d.job for d in schedule(snap, get_policy(policy, **options)).admits}
        return admitted & truthful

    honest = gained([])
    inflated = gained([f for f in fakes if all(f.priority <= s.priority for s in specs)])
    assert inflated <= honest


@given(data=st.data(), policy=st.sampled_from(["gavel", "alliance"]))
@SETTINGS
def test_with_free_switching_devices_change_hands_within_the_pass_and_never_twice(
    data: st.DataObject, policy: str
) -> None:
    """The simulator's Gavel physics: a preempted job frees its devices at once and may be
    admitted again in the same pass elsewhere (a move); applied in that order (preemptions,
    then admissions), no device is ever given to two jobs."""
    alliance = data.draw(pools())
    specs = data.draw(workloads(alliance))
    snap = state(alliance, specs, policy)
    snap.instant_switch = True
    result = schedule(snap, get_policy(policy))
    free = snap.free.copy()
    preempted = set()
    for d in result.decisions:
        if isinstance(d, Preempt):
            r = snap.running[d.job]
            assert r.spec.preemptible and d.job not in preempted
            assert d.grace_s == 0  # (free switching: it stops at once)
            preempted.add(d.job)
            free.give(r.placement, r.spec.cpu, r.spec.memory_gb)
    admitted = set()
    for d in result.decisions:
        if isinstance(d, Admit):
            assert d.job not in admitted
            admitted.add(d.job)
            q = snap.pending.get(d.job)
            if q is None:  # a move: only a job preempted in this pass
                assert d.job in preempted
                q = snap.running[d.job].job
            assert d.placement.model in q.spec.models and d.placement.devices == q.spec.count
            free.take(d.placement, q.spec.cpu, q.spec.memory_gb)  # (raises if taken)
    assert all(c >= 0 for c in free.cpu) and all(m >= 0 for m in free.mem)
