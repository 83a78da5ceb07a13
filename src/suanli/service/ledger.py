"""Ledger statements and chain checks for the API and the CLI."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from suanli.errors import NotFoundError, PermissionDeniedError, Problem, ValidationError
from suanli.ledger.record import ChainCheck
from suanli.ledger.statement import Statement
from suanli.service.auth import Principal
from suanli.spec.common import did_you_mean
from suanli.store.alliance_rows import read_alliance
from suanli.store.ledger_rows import REAL, member_statement, verify
from suanli.store.tables import LedgerHeadRow, LedgerRow

_BOOK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")


def _book(book: str) -> str:
    if not _BOOK.match(book):
        raise ValidationError([Problem("book", f"not a book name: {book!r}")])
    return book


def statement(s: Session, who: Principal, member: str, period: str, book: str) -> Statement:
    """A member's statement for a month, from the live book or a simulation's (whose members
    are the simulated alliance's, not the live one's)."""
    who.require_books(member)
    members = set(read_alliance(s)[0].members) if book == REAL else _book_members(s, _book(book))
    if member not in members:
        where = "" if book == REAL else f" in book {book!r}"
        raise NotFoundError(f"no member {member!r}{where}{did_you_mean(member, members)}")
    return member_statement(s, member, period, _book(book))


def _book_members(s: Session, book: str) -> set[str]:
    """Everyone a book speaks of, as user or provider (404 for a book with no records)."""
    rows = s.execute(
        select(LedgerRow.member, LedgerRow.provider).where(LedgerRow.book == book).distinct()
    ).all()
    if not rows:
        raise NotFoundError(f"no book {book!r}")
    return {m for row in rows for m in row if m}


@dataclass(frozen=True)
class Verification:
    """A book's chain check, and its head hash (to publish when a period closes)."""

    book: str
    head: str
    records: int
    ok: bool
    first_bad: int | None
    reason: str | None


def check(s: Session, who: Principal, book: str) -> Verification:
    """Check a book's hash chain: alliance admins and viewers."""
    if not who.sees_all_members:
        raise PermissionDeniedError("only alliance admins and viewers may verify the books")
    head = s.get(LedgerHeadRow, _book(book))
    if head is None:
        raise NotFoundError(f"no book {book!r}")
    c: ChainCheck = verify(s, book)
    return Verification(book, head.hash, c.records, c.ok, c.first_bad, c.reason)


def statement_csv(st: Statement) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["member", "period", "book", "line", "detail", "nu_hours"])
    for line, detail, value in st.csv_rows():
        w.writerow([st.member, st.period, st.book, line, detail, value])
    return out.getvalue()
