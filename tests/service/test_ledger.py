"""The ledger written by the controller from real runs, read through the API, the SDK and the
CLI, on SQLite and PostgreSQL; tampering found by the chain check."""

import time

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from suanli.cli.main import cli
from suanli.sdk.client import ApiError
from suanli.store.tables import JobRow, LedgerRow

from ..stack import Stack, job
from ..stepping import run_until


def period_now() -> str:
    return time.strftime("%Y-%m", time.gmtime())


def test_usage_and_capacity_from_real_runs_make_balanced_statements(stack: Stack) -> None:
    ctl = stack.controller
    with stack.db.session() as s:
        ctl.accountant.flush(s, time.time(), force=True)  # the capacity clock starts
    admin = stack.client("admin")
    borrowing = {**job("startup-borrow", "startup"), "entrypoint": "sleep 1"}
    own = {**job("corp-own", "corp", "Ascend910B:2"), "entrypoint": "sleep 1"}
    stack.client("startup-user").submit(borrowing)
    stack.client("corp-user").submit(own)
    rows = run_until(ctl, stack.db, lambda r: all(x.phase == "SUCCEEDED" for x in r.values()))
    with stack.db.session() as s:
        ctl.accountant.flush(s, time.time(), force=True)
        usage = list(s.scalars(select(LedgerRow).where(LedgerRow.kind == "usage")))
    by_job = {u.job: u for u in usage}
    assert set(by_job) == {"startup-borrow", "corp-own"}
    b = by_job["startup-borrow"]
    assert (b.member, b.provider, b.model, b.devices) == ("startup", "lab", "H800-80GB", 1)
    ran = b.end - b.start
    assert 0.9 <= ran <= 3.0
    run = rows["startup-borrow"]
    assert run.started_at is not None and abs(b.start - run.started_at) < 0.01

    period = period_now()
    st = {m: admin.statement(m, period) for m in ("lab", "corp", "startup")}
    assert st["startup"]["borrowed_from"] == {"lab": pytest.approx(b.units)}
    assert st["startup"]["balance"] == pytest.approx(-b.units)
    assert st["lab"]["lent_to"] == {"startup": pytest.approx(b.units)}
    assert st["corp"]["own_use"] == pytest.approx(by_job["corp-own"].units)
    assert st["lab"]["contributed"] > 0 and st["startup"]["contributed"] == 0
    assert abs(sum(x["balance"] for x in st.values())) < 1e-6

    # the alliance policy's usage history comes from the book
    from suanli.store.ledger_rows import usage_history

    with stack.db.session() as s:
        history = usage_history(s, time.time(), ttl_s=0.0)
    assert history["startup"] == pytest.approx(b.units * 3600, rel=1e-3)
    assert history["corp"] > 0 and "lab" not in history
    csv = stack.client("lab-admin").statement_csv("lab", period)
    assert csv.splitlines()[0] == "member,period,book,line,detail,nu_hours"
    assert f"lab,{period},real,lent_to,startup," in csv


def test_who_may_read_which_books_and_bad_periods(stack: Stack) -> None:
    period = period_now()
    assert stack.client("viewer").statement("lab", period)["member"] == "lab"
    assert stack.client("lab-user").statement("lab", period)["member"] == "lab"
    for user, call in [
        ("corp-user", lambda c: c.statement("lab", period)),
        ("lab-admin", lambda c: c.verify_ledger()),
    ]:
        try:
            call(stack.client(user))
            raise AssertionError(f"{user} was let through")
        except ApiError as exc:
            assert exc.status == 403
    try:
        stack.client("admin").statement("lab", "11/2026")
        raise AssertionError("a bad period was accepted")
    except ApiError as exc:
        assert exc.status == 422 and exc.problems[0]["field"] == "period"
    try:
        stack.client("admin").statement("nobody", period)
        raise AssertionError("an unknown member was accepted")
    except ApiError as exc:
        assert exc.status == 404


def test_verify_finds_a_changed_record(stack: Stack) -> None:
    ctl = stack.controller
    stack.client("startup-user").submit({**job("startup-j1", "startup"), "entrypoint": "true"})
    stack.client("lab-user").submit({**job("lab-j2", "lab"), "entrypoint": "true"})
    run_until(ctl, stack.db, lambda r: all(x.phase == "SUCCEEDED" for x in r.values()))
    runner = CliRunner()
    args = ["--url", stack.url, "--token", stack.tokens["admin"]]
    ok = runner.invoke(cli, ["ledger", "verify", *args])
    assert ok.exit_code == 0 and "2 records, chain intact, head " in ok.output
    shown = runner.invoke(
        cli, ["ledger", "statement", "--member", "lab", "--period", period_now(), *args]
    )
    assert shown.exit_code == 0 and "lent_to" in shown.output
    with stack.db.session() as s:
        first = s.scalars(select(LedgerRow.seq).order_by(LedgerRow.seq)).first()
        s.execute(update(LedgerRow).where(LedgerRow.seq == first).values(units=LedgerRow.units / 2))
        assert s.scalars(select(JobRow)).first() is not None
    bad = runner.invoke(cli, ["ledger", "verify", *args])
    assert bad.exit_code == 6
    assert f"TAMPERED at record {first}" in bad.output


def test_usage_history_is_kept_up_to_date_from_new_records_only(stack: Stack) -> None:
    """Refreshing decays what was counted and adds only the records appended since: the
    result equals a fresh count over the whole book."""
    from suanli.ledger.record import Record
    from suanli.store.ledger_rows import _HistoryCache, append

    now = time.time()

    def rec(member: str, ago_h: float, units: float) -> Record:
        start = now - ago_h * 3600
        return Record("real", "usage", member, member, "H800-80GB", 1, start, start + 300, units)

    with stack.db.session() as s:
        append(s, [rec("lab", 30, 2.0), rec("corp", 5, 1.0)])
    kept = _HistoryCache()
    with stack.db.session() as s:
        kept.get(s, now, "real", 0.0)
        append(s, [rec("lab", 1, 4.0), rec("startup", 0.5, 0.5)])
    later = now + 7200
    with stack.db.session() as s:
        incremental = kept.get(s, later, "real", 0.0)
        fresh = _HistoryCache().get(s, later, "real", 0.0)
    assert set(incremental) == {"lab", "corp", "startup"}
    for m, v in fresh.items():
        assert incremental[m] == pytest.approx(v, rel=1e-9)
