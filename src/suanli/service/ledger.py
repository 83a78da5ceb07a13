"""Ledger statements and chain checks for the API and the CLI."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from suanli.errors import NotFoundError, PermissionDeniedError, Problem, ValidationError
from suanli.ledger.record import ChainCheck
from suanli.ledger.statement import Statement
from suanli.service.auth import Principal
from suanli.store.alliance_rows import read_alliance
from suanli.store.ledger_rows import member_statement, verify
from suanli.store.tables import LedgerHeadRow

_BOOK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")


def _book(book: str) -> str:
    if not _BOOK.match(book):
        raise ValidationError([Problem("book", f"not a book name: {book!r}")])
    return book


def statement(s: Session, who: Principal, member: str, period: str, book: str) -> Statement:
    who.require_books(member)
    if member not in read_alliance(s)[0].members:
        raise NotFoundError(f"no member {member!r}")
    return member_statement(s, member, period, _book(book))


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
