"""Statements: proration at the period's bounds, and the settlement rule's identities."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suanli.errors import ValidationError
from suanli.ledger.statement import period_bounds, statement

NOV_START, NOV_END = period_bounds("2026-11")
MEMBERS = ["a", "b", "c", "d"]


def test_period_bounds_are_the_utc_month() -> None:
    assert NOV_END - NOV_START == 30 * 86400
    assert period_bounds("2026-12")[0] == NOV_END
    for bad in ("2026-13", "November", "2026-1", ""):
        with pytest.raises(ValidationError) as err:
            period_bounds(bad)
        assert err.value.problems[0].field == "period"


def test_records_straddling_the_bounds_count_in_proportion() -> None:
    rows = [
        ("usage", "a", "b", "H800", NOV_START - 3600, NOV_START + 3600, 10.0),  # half inside
        ("usage", "a", "a", "H800", NOV_END - 900, NOV_END + 2700, 4.0),  # a quarter inside
        ("usage", "a", "b", "H800", NOV_END, NOV_END + 60, 99.0),  # after
        ("capacity", "a", "a", "H800", NOV_START, NOV_START + 7200, 20.0),
        ("usage", "c", "a", "H800", NOV_START + 10, NOV_START + 20, 3.0),  # lent by a
    ]
    t = statement("a", "2026-11", "real", rows).totals
    assert t["consumed"] == pytest.approx(5.0 + 1.0)
    assert t["borrowed"] == pytest.approx(5.0) and t["own_use"] == pytest.approx(1.0)
    assert t["lent"] == pytest.approx(3.0) and t["contributed"] == pytest.approx(20.0)
    assert t["balance"] == pytest.approx(3.0 - 5.0)
    assert t["utilization"] == pytest.approx((1.0 + 3.0) / 20.0)


def test_a_participant_pays_for_its_own_part_of_a_federated_run() -> None:
    rows = [
        ("usage", "a", "a", "H800", NOV_START, NOV_START + 3600, 4.0, "run-1"),
        ("usage", "a", "b", "H800", NOV_START, NOV_START + 3600, 2.0, "run-2"),
        ("usage", "a", "a", "H800", NOV_START, NOV_START + 3600, 1.0, None),  # a batch job
        ("usage", "b", "b", "H800", NOV_START, NOV_START + 3600, 8.0, "run-1"),  # b's part
    ]
    st_a = statement("a", "2026-11", "real", rows)
    assert st_a.to_json()["federated_runs"] == {"run-1": 4.0, "run-2": 2.0}
    assert st_a.totals["consumed"] == pytest.approx(7.0)
    assert ("federated_run", "run-1", 4.0) in st_a.csv_rows()
    assert statement("b", "2026-11", "real", rows).to_json()["federated_runs"] == {"run-1": 8.0}


usage = st.tuples(
    st.just("usage"),
    st.sampled_from(MEMBERS),
    st.sampled_from(MEMBERS),
    st.just("H800"),
    st.floats(NOV_START - 86400, NOV_END),
    st.floats(0, 86400),
    st.floats(0, 1000),
).map(lambda r: (r[0], r[1], r[2], r[3], r[4], r[4] + r[5], r[6]))


@given(st.lists(usage, max_size=40))
def test_balances_sum_to_zero_and_consumption_splits_into_own_and_borrowed(rows) -> None:  # type: ignore[no-untyped-def]
    sts = [statement(m, "2026-11", "real", rows) for m in MEMBERS]
    total = sum(s.totals["balance"] for s in sts)
    assert math.isclose(total, 0.0, abs_tol=1e-4)
    for s in sts:
        t = s.totals
        assert t["consumed"] == pytest.approx(t["own_use"] + t["borrowed"], abs=1e-4)
        assert t["consumed"] >= 0.0
    lent = sum(s.totals["lent"] for s in sts)
    borrowed = sum(s.totals["borrowed"] for s in sts)
    assert lent == pytest.approx(borrowed, abs=1e-4)
