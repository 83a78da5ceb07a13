"""The ledger in the database: appending to a book's hash chain, reading what a statement
needs, verifying a chain, and the members' decayed usage the scheduler orders them by."""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Generator, Sequence
from typing import Any, cast

from sqlalchemy import Engine, Table, insert, select, update
from sqlalchemy.orm import Session

from suanli.errors import ConflictError
from suanli.ledger.record import GENESIS, ChainCheck, Kind, Record, chain_hash, verify_chain
from suanli.ledger.statement import Statement, period_bounds, statement
from suanli.store.database import per_engine
from suanli.store.tables import JobRow, LedgerHeadRow, LedgerRow

REAL = "real"
#: the half-life of past usage in the scheduler's ordering (the simulator's default too)
HALF_LIFE_S = 7 * 86400.0


def head(s: Session, book: str) -> LedgerHeadRow:
    """The book's head row, locked for this transaction where the database can."""
    row = s.scalars(
        select(LedgerHeadRow).where(LedgerHeadRow.book == book).with_for_update()
    ).one_or_none()
    if row is None:
        row = LedgerHeadRow(book=book, seq=0, hash=GENESIS, capacity_until=None)
        s.add(row)
        s.flush()
    return row


def append(s: Session, records: Sequence[Record]) -> None:
    """Append records (in this order) to their books' chains, in the caller's transaction.

    The head moves by compare-and-set (``UPDATE ... WHERE hash = the head this append read``):
    of two writers appending to one book at once (two servers, say), one fails with
    :class:`ConflictError` and its transaction rolls back, so the chain never forks."""
    by_book: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_book[r.book].append(r)
    table = cast(Table, LedgerRow.__table__)
    for book, recs in by_book.items():
        h = head(s, book)
        prev = h.hash
        values = []
        for r in recs:
            digest = chain_hash(prev, r)
            values.append(
                {
                    "book": r.book,
                    "kind": r.kind,
                    "member": r.member,
                    "provider": r.provider,
                    "model": r.model,
                    "devices": r.devices,
                    "start": r.start,
                    "end": r.end,
                    "units": r.units,
                    "job": r.job,
                    "attempt": r.attempt,
                    "detail": r.detail,
                    "prev": prev,
                    "hash": digest,
                }
            )
            prev = digest
        span = max(h.max_span or 0.0, max((r.end - r.start for r in recs), default=0.0))
        moved = s.execute(
            update(LedgerHeadRow)
            .where(LedgerHeadRow.book == book, LedgerHeadRow.hash == h.hash)
            .values(hash=prev, seq=LedgerHeadRow.seq + len(recs), max_span=span)
            .execution_options(synchronize_session=False)
        )
        if getattr(moved, "rowcount", 0) != 1:
            raise ConflictError(f"the head of book {book!r} moved while appending to it")
        s.refresh(h)
        for k in range(0, len(values), 10_000):
            s.execute(insert(table), values[k : k + 10_000])


def member_statement(s: Session, member: str, period: str, book: str = REAL) -> Statement:
    """The member's statement: its own records and those of others on its nodes that overlap
    the period (found by index: no record is longer than the book's longest)."""
    t0, t1 = period_bounds(period)
    h = s.get(LedgerHeadRow, book)
    span = (h.max_span or 0.0) if h is not None else 0.0
    cols = (
        LedgerRow.kind,
        LedgerRow.member,
        LedgerRow.provider,
        LedgerRow.model,
        LedgerRow.start,
        LedgerRow.end,
        LedgerRow.units,
    )
    window = (
        LedgerRow.book == book,
        LedgerRow.start >= t0 - span,
        LedgerRow.start < t1,
        LedgerRow.kind != Kind.RELEASE.value,  # (no compute: not in a statement)
    )
    # (its own records with the federated run of their job, if a part of one)
    own = (
        select(*cols, JobRow.run)
        .outerjoin(JobRow, JobRow.id == LedgerRow.job)
        .where(*window, LedgerRow.member == member)
    )
    lent = select(*cols).where(*window, LedgerRow.provider == member, LedgerRow.member != member)
    rows: list[tuple[Any, ...]] = []
    for q in (own, lent):
        rows.extend(tuple(r) for r in s.execute(q))
    return statement(member, period, book, rows)


def _chain_rows(s: Session, book: str) -> Generator[tuple[int, Record, str, str]]:
    """The book's records in sequence order, streamed (plain rows, no ORM objects)."""
    q = (
        select(
            LedgerRow.seq,
            LedgerRow.book,
            LedgerRow.kind,
            LedgerRow.member,
            LedgerRow.provider,
            LedgerRow.model,
            LedgerRow.devices,
            LedgerRow.start,
            LedgerRow.end,
            LedgerRow.units,
            LedgerRow.job,
            LedgerRow.attempt,
            LedgerRow.detail,
            LedgerRow.prev,
            LedgerRow.hash,
        )
        .where(LedgerRow.book == book)
        .order_by(LedgerRow.seq)
        .execution_options(yield_per=10_000)
    )
    result = s.execute(q)
    try:
        for (
            seq,
            bk,
            kind,
            mem,
            prov,
            model,
            dev,
            start,
            end,
            units,
            job,
            att,
            det,
            prev,
            h,
        ) in result:
            rec = Record(bk, Kind(kind), mem, prov, model, dev, start, end, units, job, att, det)
            yield seq, rec, prev, h
    finally:
        result.close()  # a server-side cursor, when the check stops early


def verify(s: Session, book: str = REAL) -> ChainCheck:
    """Check the book's whole chain, and that its head is the chain's last hash (records
    removed from the end are found that way)."""
    rows = _chain_rows(s, book)
    try:
        check = verify_chain(rows)
    finally:
        rows.close()
    h = s.get(LedgerHeadRow, book)
    if check.ok and h is not None and (h.seq != check.records):
        return ChainCheck(check.records, False, None, f"the head counts {h.seq} records")
    if check.ok and h is not None and check.records and h.hash != _last_hash(s, book):
        return ChainCheck(check.records, False, None, "the head's hash is not the last record's")
    return check


def _last_hash(s: Session, book: str) -> str | None:
    return s.scalar(
        select(LedgerRow.hash).where(LedgerRow.book == book).order_by(LedgerRow.seq.desc()).limit(1)
    )


def decayed_usage(
    rows: Sequence[tuple[str, float, float, float]], now: float, half_life_s: float
) -> dict[str, float]:
    """Members' past usage in NU-seconds, each second of use weighted by
    ``2 ** -(age / half_life)`` (what the simulator keeps as ``usage_history``)."""
    out: dict[str, float] = defaultdict(float)
    k = math.log(2) / half_life_s
    for member, start, end, units in rows:
        nu_s = units * 3600.0
        if end <= start:
            out[member] += nu_s * math.exp(-k * (now - end))
            continue
        rate = nu_s / (end - start)
        out[member] += rate / k * (math.exp(-k * (now - end)) - math.exp(-k * (now - start)))
    return dict(out)


class _HistoryCache:
    """The decayed usage of one book, kept up to date incrementally: at each refresh the
    values decay by the time since the last one and the records appended since are added
    (records are only ever appended), so a refresh reads only the new records."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: dict[str, float] | None = None
        self.at = 0.0  # the `now` the value is for
        self.seq = 0  # the last record counted
        self.checked = -math.inf  # monotonic time of the last refresh

    def get(self, s: Session, now: float, book: str, ttl_s: float) -> dict[str, float]:
        with self.lock:
            if self.value is not None and time.monotonic() - self.checked < ttl_s:
                return self.value
            q = select(
                LedgerRow.seq, LedgerRow.member, LedgerRow.start, LedgerRow.end, LedgerRow.units
            ).where(LedgerRow.book == book, LedgerRow.kind == Kind.USAGE.value)
            if self.value is None:
                q = q.where(LedgerRow.end > now - 10 * HALF_LIFE_S)
                value: dict[str, float] = {}
            else:
                q = q.where(LedgerRow.seq > self.seq)
                decay = math.exp(-math.log(2) / HALF_LIFE_S * max(0.0, now - self.at))
                value = {m: v * decay for m, v in self.value.items()}
            records: list[tuple[str, float, float, float]] = []
            for seq, member, start, end, units in s.execute(q):
                records.append((member, start, end, units))
                self.seq = max(self.seq, seq)
            for m, v in decayed_usage(records, now, HALF_LIFE_S).items():
                value[m] = value.get(m, 0.0) + v
            self.value, self.at, self.checked = value, now, time.monotonic()
            return value


_history: weakref.WeakKeyDictionary[Engine, _HistoryCache] = weakref.WeakKeyDictionary()


def usage_history(
    s: Session, now: float, book: str = REAL, ttl_s: float = 60.0
) -> dict[str, float]:
    """Decayed usage per member from the book, re-read at most every ``ttl_s``."""
    return per_engine(s, _history, _HistoryCache).get(s, now, book, ttl_s)
