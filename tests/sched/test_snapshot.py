"""The snapshot's incremental state: queues, accounting and indexes stay consistent."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suanli.model.ids import JobId, MemberId, ModelId
from suanli.sched.policy import get_policy
from suanli.sched.schedule import schedule
from suanli.sched.snapshot import Snapshot

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
