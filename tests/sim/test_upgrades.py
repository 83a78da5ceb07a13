"""alliance's upgrades: devices left idle once every waiting job had its chance take running
jobs from slower models, when the move is worth its cost (free under Gavel's physics)."""

from __future__ import annotations

import pytest

from suanli.model.ids import ModelId
from suanli.sched.policy import get_policy
from suanli.sim.simulator import SimParams, Simulation
from suanli.sim.workload import SimJob

from ..builders import AllianceBuilder, job

V100, K80 = ModelId("V100-16GB"), ModelId("K80")


def pool():  # type: ignore[no-untyped-def]
    return (
        AllianceBuilder()
        .member("a")
        .site("s", "a")
        .nodes_of("s", "V100-16GB", 1, devices=1)
        .nodes_of("s", "K80", 1, devices=1)
        .build()
    )


def runs(work: float, params: SimParams, **options: float) -> dict[str, list[tuple]]:
    jobs = [SimJob(job(j, "a", 1, V100, K80), 0, work, {V100: 2.0, K80: 1.0}) for j in "AB"]
    res = Simulation(pool(), jobs, get_policy("alliance", **options), params).run()
    return {str(j): [(r.model, r.start, r.end) for r in rec.runs] for j, rec in res.records.items()}


def test_with_free_switching_a_job_moves_to_the_faster_model_as_soon_as_it_is_idle() -> None:
    # A takes the V100 (fastest), B the K80; A ends at 1,000 s and B moves at once: its
    # remaining 1,000 steps at 2 a second end at 1,500 s instead of 2,000
    got = runs(2000, SimParams(None, free_switching=True))
    assert got == {
        "A": [(V100, 0, 1000)],
        "B": [(K80, 0, 1000), (V100, 1000, 1500)],
    }


def test_a_move_must_save_more_than_it_costs() -> None:
    params = SimParams(None)  # (grace periods; a checkpoint when signalled)
    # B has run 1,000 s when the V100 frees: moving saves about 500 s, less than 4 grace
    # periods of 300 s: it stays
    assert runs(2000, params, grace_s=300) == {
        "A": [(V100, 0, 1000)],
        "B": [(K80, 0, 2000)],
    }
    # after 4,000 s it saves about 2,000 s: signalled at 4,000, stopped at 4,300 (the grace
    # period's work is lost), on the V100 from 4,300 to 6,300 instead of ending at 8,000
    got = runs(8000, params, grace_s=300)
    assert got["B"] == [(K80, 0, 4300), (V100, 4300, 6300)]
    # and never when switching is not worth it at any price
    assert runs(8000, params, grace_s=300, upgrade_factor=1e9)["B"] == [(K80, 0, 8000)]


@pytest.mark.parametrize("free", [True, False])
def test_no_job_moves_to_a_slower_model(free: bool) -> None:
    jobs = [
        SimJob(job("A", "a", 1, V100, K80), 0, 4000, {V100: 2.0, K80: 1.0}),
        SimJob(job("B", "a", 1, V100, K80), 0, 500, {V100: 2.0, K80: 1.0}),
    ]
    res = Simulation(pool(), jobs, get_policy("alliance"), SimParams(None, free_switching=free))
    got = {
        str(j): [(r.model, r.start, r.end) for r in rec.runs]
        for j, rec in res.run().records.items()
    }
    # the K80 idles from 500 s on: A stays on its faster V100
    assert got == {"A": [(V100, 0, 2000)], "B": [(K80, 0, 500)]}


def test_a_borrower_moves_only_while_a_reserve_stays_idle_for_the_lenders() -> None:
    lender = (
        AllianceBuilder()
        .member("a")
        .member("b", tier="commons")
        .site("s", "a")
        .nodes_of("s", "V100-16GB", 1, devices=1)
        .nodes_of("s", "K80", 1, devices=1)
        .build()
    )
    jobs = [
        SimJob(job("A", "a", 1, V100, K80), 0, 8000, {V100: 2.0, K80: 1.0}),
        SimJob(job("B", "b", 1, V100, K80), 0, 8000, {V100: 2.0, K80: 1.0}),
    ]
    # b borrows: when the lender's V100 falls idle, b's job would take the whole model
    res = Simulation(lender, jobs, get_policy("alliance", grace_s=300), SimParams(None)).run()
    assert [r.model for r in res.records["B"].runs] == [K80]  # type: ignore[index]
    # with no reserve asked for it moves, as the lender's own job would
    options = {"grace_s": 300.0, "upgrade_reserve": 0.0}
    res = Simulation(lender, jobs, get_policy("alliance", **options), SimParams(None)).run()
    assert [r.model for r in res.records["B"].runs] == [K80, V100]  # type: ignore[index]
