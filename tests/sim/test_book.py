"""A simulation's runs written to a ledger book of their own, and read as statements."""

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from suanli.cli.main import cli
from suanli.store.database import Database
from suanli.store.ledger_rows import member_statement, verify
from suanli.store.tables import LedgerRow


def test_sim_run_writes_a_separate_book(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'books.db'}"
    args = ["sim", "run", "--scenario", "example-csv", "--no-alone", "--ledger", url]
    first = CliRunner().invoke(cli, [*args, "--ledger-start", "2026-11-01"])
    assert first.exit_code == 0, first.output
    book = "sim/example-csv/alliance/seed0"
    assert f"in book {book} (from 2026-11-01)" in first.output
    again = CliRunner().invoke(cli, [*args, "--ledger-start", "2026-11-01"])
    assert again.exit_code != 0 and "already has a book" in again.output
    bad = CliRunner().invoke(
        cli,
        [
            "sim",
            "run",
            "--scenario",
            "example-csv",
            "--no-alone",
            "--ledger",
            f"sqlite:///{tmp_path / 'other.db'}",
            "--ledger-start",
            "November",
        ],
    )
    assert bad.exit_code != 0 and "ledger-start" in bad.output

    db = Database.open(url)
    with db.session() as s:
        books = set(s.scalars(select(LedgerRow.book).distinct()))
        assert books == {book}  # nothing in the real book
        assert verify(s, book).ok
        members = list(s.scalars(select(LedgerRow.member).distinct()))
        usage = s.scalar(select(func.sum(LedgerRow.units)).where(LedgerRow.kind == "usage"))
        sts = [member_statement(s, m, "2026-11", book) for m in members]
    db.close()
    assert usage and usage > 0
    assert abs(sum(st.totals["balance"] for st in sts)) < 1e-6 * usage
    assert abs(sum(st.totals["consumed"] for st in sts) - usage) < 1e-6 * usage
    # the service reads a simulation's book for its own (simulated) members
    from suanli.errors import NotFoundError
    from suanli.service import ledger

    from ..builders import admin

    db = Database.open(url)
    with db.session() as s:
        st = ledger.statement(s, admin(), members[0], "2026-11", book)
        assert st.totals["consumed"] >= 0
        with pytest.raises(NotFoundError) as err:
            ledger.statement(s, admin(), members[0] + "x", "2026-11", book)
        assert f"in book {book!r}; did you mean {members[0]!r}?" in str(err.value)
    db.close()
