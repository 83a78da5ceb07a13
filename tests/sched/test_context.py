"""The pass context reuses reclaim's work across the states of a pass: what it reuses must be
what it would work out afresh."""

import gc
import weakref
from collections.abc import Hashable, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from suanli.model.alliance import Alliance
from suanli.model.ids import JobId, MemberId, ModelId, NodeId, SiteId
from suanli.model.job import Placement
from suanli.sched.context import ListCandidates, PassContext, Trial
from suanli.sched.policies.alliance import AlliancePolicy, _Borrowed
from suanli.sched.policies.fair import FairPolicy
from suanli.sched.policy import get_policy
from suanli.sched.schedule import schedule
from suanli.sched.snapshot import QueuedJob, RunningJob, Snapshot

from ..builders import AllianceBuilder, job, snapshot

MODELS = [ModelId("H800-80GB"), ModelId("Ascend910B")]


def _pool() -> Alliance:
    """Three members, two of them contributors of both models."""
    return (
        AllianceBuilder()
        .member("a")
        .member("b")
        .member("c")
        .site("sa", "a")
        .site("sb", "b")
        .nodes_of("sa", "H800-80GB", 2)
        .nodes_of("sa", "Ascend910B", 1)
        .nodes_of("sb", "H800-80GB", 1)
        .nodes_of("sb", "Ascend910B", 1)
        .build()
    )


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_reused_trial_is_the_one_worked_out_afresh(data: st.DataObject) -> None:
    """Borrowers fill the pool; then, in one pass, admissions, preemptions and reclaims in any
    order: after each, every model's trial (the candidates in order and what removing them
    frees) read through the pass's caches equals the one computed without them."""
    a = _pool()
    sizes = data.draw(st.lists(st.sampled_from([1, 2, 4]), min_size=6, max_size=24))
    late = data.draw(st.lists(st.sampled_from([1, 2, 4]), max_size=6))
    borrowed = [
        job(f"c{i}", "c" if i % 3 else "b", n, *MODELS[: 1 + i % 2]) for i, n in enumerate(sizes)
    ]
    snap = snapshot(a, *borrowed)
    for d in schedule(snap, get_policy("fifo")).admits:
        snap.start(d.job, d.placement)
    for i in range(6):
        snap.submit(job(f"a{i}", "a", 1 + i % 2, *MODELS), submitted_at=100.0 + i)
    for i, n in enumerate(late):  # (borrowers admitted in the pass change their order)
        snap.submit(job(f"l{i}", "bc"[i % 2], n, *MODELS), submitted_at=110.0 + i)
    policy = AlliancePolicy()
    ctx = PassContext(snap)
    q = snap.pending[next(iter(j for j in snap.pending if j.startswith("a")))]
    key = ("victims", tuple(MODELS))
    for _ in range(data.draw(st.integers(1, 12))):
        op = data.draw(st.sampled_from(["admit", "preempt", "reclaim", "look"]))
        if op == "admit":
            waiting = [p for j, p in snap.pending.items() if j not in ctx.admitted]
            if waiting:
                w = data.draw(st.sampled_from(waiting))
                placement = ctx.fit_any(w, MODELS)
                if placement is not None:
                    ctx.admit(w, placement)
        elif op == "preempt":
            live = [r for j, r in snap.running.items() if j not in ctx.stopping]
            if live:
                ctx.preempt(data.draw(st.sampled_from(live)), "test", 60.0)
        elif op == "reclaim":  # (reserves devices, claims stopping jobs: as a pass does)
            waiting = [p for j, p in snap.pending.items() if j not in ctx.admitted]
            if not waiting:
                continue
            w = data.draw(st.sampled_from(waiting))
            got = ctx.reclaim(w, MODELS, policy.victims(ctx, w, MODELS), key)
            for r in got[1] if got else []:
                ctx.preempt(r, "test", 60.0)
        # (as the skeleton asks: the victims of this state, the same list while unchanged)
        victims = policy.victims(ctx, q, MODELS)
        memo = ("alliance-victims", tuple(MODELS), None)
        kept = ctx.cache.pop(memo)
        assert policy.victims(ctx, q, MODELS) == victims  # (the borrowers' order of now)
        ctx.cache[memo] = kept
        for model in MODELS:
            reused = ctx._trial(model, victims, key)
            fresh = ctx._trial(model, list(victims), None)
            assert reused[0] == fresh[0]
            # (what removing them frees is reused even across keys: counted afresh here)
            assert reused[1] == ctx.free.gains(model, (r.placement for r in fresh[0]))


def test_the_victims_with_the_movable_jobs_are_one_list_while_both_hold() -> None:
    a = AllianceBuilder().member("b").site("sb", "b").nodes_of("sb", "H800-80GB", 1).build()
    snap = snapshot(a, *[job(f"j{i}", "b", 1, "H800-80GB") for i in range(4)])
    for d in schedule(snap, get_policy("fifo")).admits:
        snap.start(d.job, d.placement)
    ctx = PassContext(snap)
    r = sorted(snap.running.values(), key=lambda x: x.id)
    model, sb = ModelId("H800-80GB"), frozenset({SiteId("sb")})
    victims, key = r[:2], ("victims", "moves")
    both = AlliancePolicy._with_moves(ctx, key, victims, r[2:])
    assert both.on(model, None) == both.on(model, sb) == r
    assert both.name() == (2, 2)  # (the victims, the movable jobs: counted)
    assert AlliancePolicy._with_moves(ctx, key, victims, list(r[2:])) is both
    assert AlliancePolicy._with_moves(ctx, key, victims, r[3:]).on(model, None) == [*r[:2], r[3]]
    assert AlliancePolicy._with_moves(ctx, key, list(victims), r[3:]).on(model, sb) == [
        *r[:2],
        r[3],
    ]
    assert AlliancePolicy._with_moves(ctx, key, victims, r[3:]).on(ModelId("A100-80GB"), None) == []


class _Afresh(AlliancePolicy):
    """alliance without the reuse of a wait: every job is worked out."""

    def order_key(self, ctx: PassContext, q: QueuedJob) -> None:
        return None


class _FairAfresh(FairPolicy):
    def order_key(self, ctx: PassContext, q: QueuedJob) -> None:
        return None


class _Counting(AlliancePolicy):
    looked = 0

    def models(self, ctx: PassContext, q: QueuedJob) -> tuple[list[ModelId], set[ModelId]]:
        self.looked += 1
        return super().models(ctx, q)


def _crowded(data: st.DataObject) -> Snapshot:
    """Borrowers fill most of the pool; then many jobs of few shapes wait, some of them
    within their member's guarantee, some measured faster on one model than the other (so
    jobs alike but for their speeds try the models in different orders)."""
    a = _pool()
    sizes = data.draw(st.lists(st.sampled_from([1, 2, 4, 8]), min_size=8, max_size=16))
    borrowed = [
        job(f"c{i}", "c" if i % 3 else "b", n, *MODELS[: 1 + i % 2]) for i, n in enumerate(sizes)
    ]
    snap = snapshot(a, *borrowed)
    for d in schedule(snap, get_policy("fifo")).admits:
        snap.start(d.job, d.placement)
    waiting = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from("ab"),
                st.sampled_from([2, 8]),
                st.sampled_from([(0, 1), (0, 1), (1,)]),
                st.booleans(),
                st.sampled_from([None, 1]),
            ),
            min_size=1,
            max_size=30,
        )
    )
    for i, (m, n, which, preemptible, faster) in enumerate(waiting):
        spec = job(f"w{i}", m, n, *(MODELS[k] for k in which), preemptible=preemptible)
        snap.submit(spec, submitted_at=100.0 + i)
        if faster is not None:
            snap.throughput[spec.id] = {
                f: 2.0 if k == faster else 1.0 for k, f in enumerate(MODELS)
            }
    return snap


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_a_reused_wait_is_the_one_worked_out_afresh(data: st.DataObject) -> None:
    """A job like one that could not start, in the same state of the pass, waits for the
    same reason without a second look: the pass decides and explains exactly what it does
    when every job is worked out (alliance and fair)."""
    snap = _crowded(data)
    for reusing, afresh in (
        (AlliancePolicy(max_skips=64), _Afresh(max_skips=64)),
        (FairPolicy(max_skips=64), _FairAfresh(max_skips=64)),
    ):
        got, want = schedule(snap, reusing), schedule(snap, afresh)
        assert got.decisions == want.decisions
        assert got.reasons == want.reasons
        assert got.member_blocked == want.member_blocked


def test_jobs_alike_in_one_state_are_looked_at_once() -> None:
    a = (
        AllianceBuilder()
        .member("b")
        .member("c")
        .site("sb", "b")
        .nodes_of("sb", "H800-80GB", 2)
        .build()
    )
    snap = snapshot(a, job("c0", "c", 1, "H800-80GB", preemptible=False))
    for d in schedule(snap, get_policy("fifo")).admits:
        snap.start(d.job, d.placement)
    for i in range(5):
        snap.submit(job(f"j{i}", "b", 8, "H800-80GB"), submitted_at=10.0 + i)
    policy = _Counting()
    result = schedule(snap, policy)
    assert len(result.admits) == 1
    assert result.examined == 5
    # the first job starts, the second is worked out, the three after it are like it
    assert policy.looked == 2
    assert len({result.reasons[JobId(f"j{i}")] for i in range(1, 5)}) == 1


def test_what_removing_jobs_frees_is_theirs_whatever_their_order() -> None:
    a = AllianceBuilder().member("b").site("sb", "b").nodes_of("sb", "H800-80GB", 2).build()
    snap = snapshot(
        a,
        job("w", "b", 8, "H800-80GB"),
        job("x", "b", 2, "H800-80GB"),
        job("y", "b", 2, "H800-80GB"),
    )
    for d in schedule(snap, get_policy("fifo")).admits:
        snap.start(d.job, d.placement)
    ctx = PassContext(snap)
    model = ModelId("H800-80GB")
    wide, small, other = (snap.running[JobId(j)] for j in "wxy")
    assert ctx._gains(model, [wide]).whole[8] == 1
    assert ctx._gains(model, [small]).best == 6  # (its node: 4 free, and its own 2)
    assert ctx._gains(model, [small]).whole[8] == 0
    assert ctx._gains(model, [small, other]).whole[8] == 1
    assert ctx._gains(model, [other, small, wide]) == ctx._gains(model, [wide, small, other])
    assert ctx._gains(model, [wide, small, other]).whole[8] == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 11), st.booleans()), max_size=40))
def test_a_members_jobs_sorted_in_an_earlier_pass_are_its_jobs_now(
    ops: list[tuple[bool, int, bool]],
) -> None:
    """One policy across passes, jobs starting and finishing between them: the preemptible
    jobs it keeps sorted per member and model are those running now, newest first."""
    snap = snapshot(_pool())
    policy = AlliancePolicy()
    clock = 0.0
    for start, k, preemptible in ops:
        clock += 1.0
        jid = JobId(f"j{k}")
        if start and jid not in snap.running and jid not in snap.pending:
            spec = job(f"j{k}", "bc"[k % 2], 1 + k % 2, MODELS[k % 3 % 2], preemptible=preemptible)
            snap.submit(spec, submitted_at=clock)
            placement = snap.free.fit(spec, MODELS[k % 3 % 2], None)
            if placement is None:
                snap.cancel(jid)
                continue
            snap.start(jid, placement, clock)
        elif not start and jid in snap.running:
            snap.finish(jid)
        ctx = PassContext(snap)
        for member in ("b", "c"):
            got = policy._preemptible(ctx, MODELS, MemberId(member))
            want = sorted(
                (-r.started_at, r.id, r)
                for r in snap.running.values()
                if r.member == member and r.spec.preemptible
            )
            assert [r.id for *_, r in got] == [r.id for *_, r in want]


class _EveryCandidate(PassContext):
    """A pass context whose reclaim tries every candidate, wherever it runs."""

    def _trial(
        self,
        model: ModelId,
        victims: Sequence[RunningJob],
        key: Hashable | None,
        sites: frozenset[SiteId] | None = None,
    ) -> Trial:
        return super()._trial(model, victims, key, None)


def _two_fabrics() -> Alliance:
    """``a``'s two sites share a fabric (a gang may span them), ``b``'s is on its own; ``c``
    contributes nothing (every job of it borrows)."""
    return (
        AllianceBuilder()
        .member("a")
        .member("b")
        .member("c", tier="commons")
        .site("sa", "a", region="r")
        .site("sa2", "a", region="r")
        .site("sb", "b")
        .nodes_of("sa", "H800-80GB", 2)
        .nodes_of("sa2", "H800-80GB", 2)
        .nodes_of("sb", "H800-80GB", 2)
        .build()
    )


def _reclaims(
    snap: Snapshot,
    q: QueuedJob,
    victims: Sequence[RunningJob],
    stopping: Sequence[RunningJob] = (),
) -> list[tuple[object, ...]]:
    """What reclaim decides for ``q`` with the candidates at its sites, and with every one."""
    model = ModelId("H800-80GB")
    got = []
    for ctx in (PassContext(snap), _EveryCandidate(snap)):
        for r in stopping:
            ctx.preempt(r, "test", 60.0)
        found = ctx.reclaim(q, [model], victims, ("victims", (model,)))
        got.append(
            (
                found and (found[0], [r.id for r in found[1]]),
                sorted(ctx.claimed),
                ctx.reservations.get(q.id),
            )
        )
    return got


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_a_job_held_to_sites_reclaims_as_if_every_candidate_were_tried(
    data: st.DataObject,
) -> None:
    """A job held to its sites tries only the candidates that hold devices there: it gets
    the same victims and the same place as when every candidate is tried in order, for one
    node or a gang (gangs span the two sites of one fabric), with some jobs already
    stopping."""
    model = ModelId("H800-80GB")
    sizes = data.draw(st.lists(st.sampled_from([8, 16, 1, 4, 2]), min_size=3, max_size=12))
    borrowed = [
        job(f"c{i:02d}", "c", n, model, nodes=2 if n == 16 else 1) for i, n in enumerate(sizes)
    ]
    snap = snapshot(_two_fabrics(), *borrowed)
    for d in schedule(snap, get_policy("fifo")).admits:
        snap.start(d.job, d.placement)
    sites = data.draw(
        st.sampled_from([{"sa"}, {"sa2"}, {"sb"}, {"sa", "sa2"}, {"sa", "sb"}, {"sa2", "sb"}])
    )
    count = data.draw(st.sampled_from([1, 2, 4, 8, 16]))
    q = snap.submit(
        job("q", "a", count, model, nodes=2 if count == 16 else 1),
        submitted_at=100.0,
        allowed_sites=frozenset(SiteId(s) for s in sites),
    )
    running = sorted(snap.running.values(), key=lambda r: r.id)
    victims = data.draw(st.permutations(running))
    stopping = data.draw(st.lists(st.sampled_from(running), max_size=3)) if running else []
    first, every = _reclaims(snap, q, victims, stopping)
    assert first == every


def test_a_gang_across_sites_is_a_candidate_at_each() -> None:
    """A borrowed gang on one node at ``sa`` and one at ``sa2`` is a candidate for a job held
    to ``sa2``, though its first node is elsewhere."""
    model = ModelId("H800-80GB")
    snap = snapshot(
        _two_fabrics(),
        job("c00", "c", 8, model),
        job("c01", "c", 16, model, nodes=2),
        job("c02", "c", 8, model),
    )
    for d in schedule(snap, get_policy("fifo")).admits:
        snap.start(d.job, d.placement)
    gang = snap.running[JobId("c01")]
    assert [n for n, _ in gang.placement.assignments] == ["sa-n001", "sa2-n002"]
    q = snap.submit(
        job("q", "a", 8, model), submitted_at=10.0, allowed_sites=frozenset({SiteId("sa2")})
    )
    victims = [gang, snap.running[JobId("c00")], snap.running[JobId("c02")]]
    first, every = _reclaims(snap, q, victims)
    assert first == every
    assert first[0] == (model, ["c01"])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_alliances_candidates_per_model_and_sites_are_its_victims_there(
    data: st.DataObject,
) -> None:
    """alliance reads its victims per model and sites from each member's sorted jobs: on
    every model and set of sites they are the jobs of its whole victim list there, in its
    order, as the borrowers' order changes in a pass (gangs across two sites included)."""
    a = (
        AllianceBuilder()
        .member("a")
        .member("b")
        .member("c", tier="commons")
        .member("d", tier="commons")
        .site("sa", "a", region="r")
        .site("sa2", "a", region="r")
        .site("sb", "b")
        .nodes_of("sa", "H800-80GB", 1)
        .nodes_of("sa2", "H800-80GB", 2)
        .nodes_of("sa", "Ascend910B", 1)
        .nodes_of("sa2", "Ascend910B", 1)
        .nodes_of("sb", "H800-80GB", 1)
        .nodes_of("sb", "Ascend910B", 1)
        .build()
    )
    sizes = data.draw(st.lists(st.sampled_from([1, 2, 4, 8, 16]), min_size=8, max_size=30))
    borrowed = [
        job(
            f"j{i:02d}",
            "bcd"[i % 3],
            n,
            *MODELS[: 1 + i % 2],
            nodes=2 if n == 16 else 1,
            preemptible=i % 5 != 4,
        )
        for i, n in enumerate(sizes)
    ]
    snap = snapshot(a, *borrowed)
    for d in schedule(snap, get_policy("fifo")).admits:
        snap.start(d.job, d.placement, at=float(len(snap.running) % 3))
    for i, n in enumerate(data.draw(st.lists(st.sampled_from([1, 2, 4]), max_size=5))):
        snap.submit(job(f"l{i}", "bcd"[i % 3], n, *MODELS), submitted_at=50.0 + i)
    q = snap.submit(job("q", "a", 1, *MODELS), submitted_at=100.0)
    policy = AlliancePolicy()
    ctx = PassContext(snap)
    site_sets = [
        None,
        *(frozenset(map(SiteId, s.split())) for s in ("sa", "sa2", "sb", "sa sa2", "sa sb")),
    ]
    for late in [None, *(p for j, p in sorted(snap.pending.items()) if j != "q")]:
        if late is not None:  # (a borrower's admission changes the borrowers' order)
            placement = ctx.fit_any(late, MODELS)
            if placement is None:
                continue
            ctx.admit(late, placement)
        models = data.draw(st.sampled_from([MODELS, MODELS[::-1], MODELS[:1]]))
        cands = policy.candidates(ctx, q, models)
        whole = ListCandidates(policy.victims(ctx, q, models), snap.pool.site_of)
        for model in MODELS:
            for sites in site_sets:
                assert cands.on(model, sites) == whole.on(model, sites), (model, sites)


def test_a_reclaim_found_hopeless_is_tried_again_once_there_are_more_borrowers() -> None:
    """A job held to ``sa`` finds nothing to reclaim there among c's jobs; once b borrows
    too (in the same pass, under the same key) its job at ``sa`` is a candidate."""
    a = (
        AllianceBuilder()
        .member("a")
        .member("b")
        .member("c", tier="commons")
        .site("sa", "a")
        .site("sb", "b")
        .nodes_of("sa", "H800-80GB", 1)
        .nodes_of("sb", "H800-80GB", 1)
        .build()
    )
    model = ModelId("H800-80GB")
    snap = snapshot(a, job("b1", "b", 8, model), job("c1", "c", 8, model))
    for jid, node in (("b1", "sa-n000"), ("c1", "sb-n001")):
        snap.start(JobId(jid), Placement(model, ((NodeId(node), tuple(range(8))),)))
    q = snap.submit(job("q", "a", 8, model), allowed_sites=frozenset({SiteId("sa")}))
    policy, ctx, key = AlliancePolicy(), PassContext(snap), ("victims", (model,))
    c_only = _Borrowed(policy, ctx, ((MemberId("c"),),), [model])
    assert ctx.reclaim(q, [model], c_only, key) is None
    both = _Borrowed(policy, ctx, ((MemberId("c"),), (MemberId("b"),)), [model])
    assert both.name() != c_only.name()
    got = ctx.reclaim(q, [model], both, key)
    assert got is not None and [r.id for r in got[1]] == ["b1"]


class _Watched(AlliancePolicy):
    """alliance, keeping a weak reference to each pass it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.passes: list[weakref.ref[PassContext]] = []

    def run(self, ctx: PassContext) -> None:
        self.passes.append(weakref.ref(ctx))
        super().run(ctx)


def test_a_pass_leaves_nothing_for_the_collector() -> None:
    """A pass that reclaims (alliance's candidates refer to the pass) leaves no cycle
    holding its working state: with the collector off, its context is freed as it ends."""
    model = ModelId("H800-80GB")
    snap = snapshot(_two_fabrics(), *[job(f"c{i}", "c", 8, model) for i in range(6)])
    for d in schedule(snap, get_policy("fifo")).admits:
        snap.start(d.job, d.placement)
    snap.submit(job("q", "a", 8, model), allowed_sites=frozenset({SiteId("sa2")}))
    policy = _Watched()
    gc.collect()
    gc.disable()
    try:
        result = schedule(snap, policy)
        assert result.preempts  # (it reclaimed: the candidates were built)
        assert policy.passes
        assert all(ref() is None for ref in policy.passes)
    finally:
        gc.enable()


def test_a_placement_only_in_kept_groups_is_a_failure_remembered_for_the_pass() -> None:
    """For a job that may run anywhere, a placement in a group kept for held jobs means none
    elsewhere for the rest of the pass; a job held to sites is never judged by it."""
    a = (
        AllianceBuilder()
        .member("a")
        .site("s1", "a")
        .site("s2", "a")
        .nodes_of("s1", "H800-80GB", 1)
        .nodes_of("s2", "H800-80GB", 1)
        .build()
    )
    anywhere, held = job("j", "a", 4, "H800-80GB"), job("h", "a", 4, "H800-80GB")
    snap = snapshot(a, anywhere)
    snap.submit(held, allowed_sites=frozenset({SiteId("s2")}))
    model = ModelId("H800-80GB")
    s1 = snap.pool.groups[(model, SiteId("s1"))]
    s2 = snap.pool.groups[(model, SiteId("s2"))]
    ctx = PassContext(snap)
    ctx.free.kept = {model: frozenset({s2})}
    q = snap.pending[JobId("j")]
    p = ctx.fit_unkept(q, model)  # (s1 has room: it goes there)
    assert p is not None and snap.pool.node(p.nodes[0]).site == "s1"
    ctx.free.take(snap.pool.nodes[snap.pool.group_nodes[s1][0]].whole, 1, 1)
    assert not ctx.unfit(q, model)
    assert ctx.fit_unkept(q, model) is None  # (only s2's kept node is left)
    assert ctx.unfit(q, model)
    # held to s2, the job's one choice is the kept group: not placed, not remembered
    h = snap.pending[JobId("h")]
    assert ctx.fit_unkept(h, model) is None
    assert not ctx.unfit(h, model)
    ctx.free.kept = {}
    assert ctx.fit_unkept(h, model) is not None
