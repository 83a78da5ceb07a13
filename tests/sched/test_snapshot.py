"""The snapshot's incremental state: queues, accounting and indexes stay consistent."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suanli.model.ids import JobId, MemberId, ModelId, SiteId
from suanli.model.job import JobSpec, Placement
from suanli.sched.policy import get_policy
from suanli.sched.schedule import schedule
from suanli.sched.snapshot import Snapshot, _SortedQueue

from ..builders import AllianceBuilder, job, snapshot


def pool() -> AllianceBuilder:
    return (
        AllianceBuilder()
        .member("a")
        .member("b")
        .site("sa", "a")
        .site("sb", "b")
        .nodes_of("sa", "H800-80GB", 2)
        .nodes_of("sb", "Ascend910B", 1)
    )


def test_member_queue_orders_by_priority_then_submit_time() -> None:
    snap = snapshot(
        pool().build(),
        job("j1", "a", 1, "H800-80GB"),
        job("j2", "a", 1, "H800-80GB", priority=5),
        job("j3", "a", 1, "H800-80GB"),
    )
    assert [q.id for q in snap.member_queue(MemberId("a"))] == ["j2", "j1", "j3"]
    assert [q.id for q in snap.fifo_queue()] == ["j1", "j2", "j3"]


def test_requeued_job_keeps_its_place_and_appears_once() -> None:
    snap = snapshot(pool().build(), *[job(f"j{i}", "a", 8, "H800-80GB") for i in range(4)])
    result = schedule(snap, get_policy("fifo"))
    for d in result.admits:
        snap.start(d.job, d.placement)
    assert set(snap.running) == {"j0", "j1"}
    assert [q.id for q in snap.fifo_queue()] == ["j2", "j3"]
    snap.requeue(JobId("j0"))
    assert [q.id for q in snap.fifo_queue()] == ["j0", "j2", "j3"]
    assert [q.id for q in snap.member_queue(MemberId("a"))] == ["j0", "j2", "j3"]
    assert snap.queue_position(JobId("j2")) >= 1


def test_accounting_follows_start_and_finish() -> None:
    a = pool().build()
    snap = snapshot(a, job("j1", "a", 4, "H800-80GB"), job("j2", "b", 2, "Ascend910B"))
    for d in schedule(snap, get_policy("alliance")).admits:
        snap.start(d.job, d.placement)
    assert snap.used_devices[(MemberId("a"), ModelId("H800-80GB"))] == 4
    assert snap.used_nu[MemberId("b")] == pytest.approx(2 * 0.304)
    assert snap.free.free_count == 24 - 6
    assert [r.id for r in snap.running_of([MemberId("a")], [ModelId("H800-80GB")])] == ["j1"]
    snap.finish(JobId("j1"))
    assert snap.used_devices[(MemberId("a"), ModelId("H800-80GB"))] == 0
    assert snap.free.free_count == 24 - 2
    assert list(snap.running_of([MemberId("a")], [ModelId("H800-80GB")])) == []


def test_submitting_twice_or_for_an_unknown_member_is_refused() -> None:
    snap = snapshot(pool().build(), job("j1", "a", 1, "H800-80GB"))
    with pytest.raises(ValueError, match="already known"):
        snap.submit(job("j1", "a", 1, "H800-80GB"))
    with pytest.raises(KeyError, match="unknown member"):
        snap.submit(job("j9", "zz", 1, "H800-80GB"))


@given(
    st.lists(
        st.tuples(st.sampled_from(["submit", "cancel", "requeue"]), st.integers(0, 30)),
        max_size=200,
    )
)
def test_queues_match_a_plain_model(ops: list[tuple[str, int]]) -> None:
    """Against a plain dict of pending jobs, under any sequence of submit/cancel/requeue."""
    snap = Snapshot.from_alliance(pool().build())
    model: dict[str, float] = {}
    for op, k in ops:
        jid = f"j{k}"
        if op == "submit" and jid not in model and jid not in snap.running:
            snap.submit(job(jid, "a", 1, "H800-80GB"), submitted_at=float(k))
            model[jid] = float(k)
        elif op == "cancel" and jid in model:
            snap.cancel(JobId(jid))
            del model[jid]
        elif op == "requeue" and jid in model:
            q = snap.pending[JobId(jid)]
            placement = snap.free.fit(q.spec, ModelId("H800-80GB"), None)
            if placement is not None:
                snap.start(q.id, placement)
                snap.requeue(q.id)
        expected = sorted(model, key=lambda j: (model[j], j))
        assert [q.id for q in snap.fifo_queue()] == expected
        assert [q.id for q in snap.member_queue(MemberId("a"))] == expected
    assert snap.free.free_count == 24


def _state(snap: Snapshot) -> tuple[object, ...]:
    free = snap.free
    return (
        [q.id for q in snap.fifo_queue()],
        [q.id for q in snap.member_queue(MemberId("a"))],
        {j: (r.placement, r.started_at, r.nu) for j, r in snap.running.items()},
        dict(snap.used_devices),
        dict(snap.used_nu),
        dict(snap.busy_by_model),
        list(free.free),
        {m: [list(b) for b in bs] for m, bs in free.buckets.items()},  # (order too)
        free.free_count,
        dict(free.by_model),
    )


def test_a_switch_leaves_the_state_a_requeue_and_a_start_would() -> None:
    """A job switched out and started again in the same instant skips the queues; the
    snapshot ends as if it had been requeued and started (its place in the queue too)."""
    jobs = [job(f"j{i}", "a", 4 if i % 2 else 2, "H800-80GB") for i in range(6)]
    snaps = [snapshot(pool().build(), *jobs) for _ in range(2)]
    for snap in snaps:
        for d in schedule(snap, get_policy("fifo")).admits:
            snap.start(d.job, d.placement)
    assert {"j0", "j1"} <= set(snaps[0].running)
    moved, other = JobId("j1"), JobId("j0")
    before = snaps[0].running[moved].placement
    for k, snap in enumerate(snaps):
        snap.now = 10.0
        # j0 stops for good; j1 stops and starts again at once, on the devices fit finds
        snap.requeue(other)
        back = None
        if k == 0:
            snap.requeue(moved)
        else:
            back = snap.switch_out(moved)
            assert moved not in snap.pending and moved not in snap.running
        spec = (back or snap.pending[moved]).spec
        placement = snap.free.fit(spec, ModelId("H800-80GB"), None)
        assert placement is not None and placement != before
        snap.start(moved, placement, 10.0, back)
    assert _state(snaps[0]) == _state(snaps[1])
    assert snaps[1].running[moved].started_at == 10.0


@given(
    st.lists(
        st.tuples(st.sampled_from(["start", "finish", "requeue", "switch"]), st.integers(0, 11)),
        max_size=120,
    )
)
def test_the_site_index_is_what_runs_at_each_site(ops: list[tuple[str, int]]) -> None:
    """``running_at`` lists each running job at every site it holds devices at (a gang
    spanning two sites at both), and nothing else, under any start/finish/requeue/switch;
    ``running_by_accepts`` lists each once, under its model, the models it accepts and its
    member, and keeps no group that has none."""
    a = (
        pool()
        .site("sa2", "a")
        .nodes_of("sa2", "H800-80GB", 2)
        .nodes_of("sb", "H800-80GB", 1)
        .build()
    )

    def spec(k: int) -> JobSpec:  # (odd jobs accept another model too; half are b's)
        member = "b" if k % 4 >= 2 else "a"
        return job(f"j{k}", member, 2, "H800-80GB", *(["Ascend910B"] if k % 2 else []))

    snap = snapshot(a, *map(spec, range(12)))
    model = ModelId("H800-80GB")
    nodes = [n for n in snap.pool.nodes if n.model == model]
    for op, k in ops:
        jid = JobId(f"j{k}")
        if op == "start" and jid in snap.pending:
            # every third job spans two nodes (on different sites where it can)
            width = 2 if k % 3 == 0 else 1
            hosts = [n for n in nodes if snap.free.free[n.index].bit_count() >= 1]
            hosts = sorted(hosts, key=lambda n: (k + n.index) % len(nodes))[:width]
            if len(hosts) < width:
                continue
            parts = tuple(
                (n.id, (next(d for d in range(n.devices) if snap.free.free[n.index] >> d & 1),))
                for n in hosts
            )
            snap.start(jid, Placement(model, parts))
        elif jid in snap.running:
            if op == "finish":
                snap.finish(jid)
                snap.submit(spec(k))
            elif op == "requeue":
                snap.requeue(jid)
            else:
                placement = snap.running[jid].placement
                snap.start(jid, placement, None, snap.switch_out(jid))
        expected: dict[tuple[ModelId, SiteId], set[JobId]] = {}
        for j, r in snap.running.items():
            for n in r.placement.nodes:
                expected.setdefault((model, snap.pool.site_of[n]), set()).add(j)
        got = {k: set(on) for k, on in snap.running_at.items() if on}
        assert got == expected
        assert all(snap.running_by_accepts.values())  # (no group left empty)
        accepting = {k: set(on) for k, on in snap.running_by_accepts.items()}
        by_accepts: dict[tuple[ModelId, frozenset[ModelId], MemberId], set[JobId]] = {}
        for j, r in snap.running.items():
            by_accepts.setdefault((model, r.spec.models, r.member), set()).add(j)
        assert accepting == by_accepts


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 40), st.integers(0, 1), st.booleans()),
        min_size=150,
        max_size=600,
    )
)
def test_a_sorted_queue_is_its_live_keys_in_order(
    ops: list[tuple[bool, int, int, bool]],
) -> None:
    """Adds (again with an equal key, as a requeue may), discards and partial walks in any
    order, across the compactions of its dead entries: the queue walks its live keys in
    order, each once."""
    queue = _SortedQueue()
    model: dict[JobId, tuple[float, float, int, JobId]] = {}
    for add, k, t, walk in ops:
        jid = JobId(f"j{k:03d}")
        if add and jid not in model:
            key = (0.0, float(t), k % 7, jid)
            queue.add(key)
            model[jid] = key
        elif not add:
            queue.discard(jid)
            model.pop(jid, None)
        if walk:  # (a pass stops early: the head moves on, nothing else changes)
            next(iter(queue), None)
        assert list(queue) == [key[3] for key in sorted(model.values())]
        assert len(queue) == len(model)
