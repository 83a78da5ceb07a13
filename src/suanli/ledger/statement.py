"""Statements: what a member contributed, consumed, lent and borrowed in a period (pure).

Records that straddle the period's bounds count in proportion to the part of their interval
inside it. The settlement rule (docs/ledger.md):

- ``contributed``: NU-hours the member's nodes offered (capacity records);
- ``consumed``: NU-hours its jobs used, on any member's nodes;
- ``own_use``: the part of ``consumed`` on its own nodes;
- ``lent``: NU-hours other members' jobs used on its nodes;
- ``borrowed``: NU-hours its jobs used on other members' nodes (``consumed - own_use``);
- ``balance = lent - borrowed``: positive, the alliance owes the member; negative, the member
  owes it. Balances of all members in a period sum to zero; each borrower settles with each
  lender as ``lent_by``/``borrowed_from`` list them;
- ``utilization = (own_use + lent) / contributed``: how much of what it offered was used;
- ``federated_runs``: the part of ``consumed`` that its parts of federated runs used, by run
  (each participant pays for its own part of a run; the run's submitter pays for none of it).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from suanli.errors import Problem, ValidationError
from suanli.ledger.record import Kind

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


def period_bounds(period: str) -> tuple[float, float]:
    """``2026-11`` -> the month's first and last instants (UTC, end exclusive)."""
    m = _PERIOD.match(period)
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1:
        raise ValidationError(
            [Problem("period", f"expected a month such as 2026-11, got {period!r}")]
        )
    year, month = int(m.group(1)), int(m.group(2))
    start = dt.datetime(year, month, 1, tzinfo=dt.UTC).timestamp()
    return start, start + calendar.monthrange(year, month)[1] * 86400.0


def _r(x: float) -> float:
    """Sums of many records carry float noise far below a device-second; keep 12 digits."""
    return float(f"{x:.12g}")


@dataclass
class Statement:
    member: str
    period: str
    book: str
    start: float
    end: float
    contributed: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    consumed: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    own_use: float = 0.0
    lent_to: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    borrowed_from: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    federated_runs: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    records: int = 0

    def add(
        self,
        kind: str,
        member: str,
        provider: str,
        model: str,
        start: float,
        end: float,
        units: float,
        run: str | None = None,
    ) -> None:
        """Count one record (of this member, or used on its nodes) prorated to the period;
        ``run``: the federated run the record's job is a part of, if any."""
        if end <= start:  # an instant: in the period or not
            if not self.start <= start < self.end:
                return
            share = units
        else:
            lo, hi = max(start, self.start), min(end, self.end)
            if hi <= lo:
                return
            share = units * (hi - lo) / (end - start)
        if kind == Kind.RELEASE:  # (no compute in it)
            return
        self.records += 1
        if kind == Kind.CAPACITY:
            if member == self.member:
                self.contributed[model] += share
            return
        if member == self.member:
            self.consumed[model] += share
            if run is not None:
                self.federated_runs[run] += share
            if provider == self.member:
                self.own_use += share
            else:
                self.borrowed_from[provider] += share
        elif provider == self.member:
            self.lent_to[member] += share

    @property
    def totals(self) -> dict[str, float]:
        contributed = sum(self.contributed.values())
        lent, borrowed = sum(self.lent_to.values()), sum(self.borrowed_from.values())
        return {
            "contributed": _r(contributed),
            "consumed": _r(sum(self.consumed.values())),
            "own_use": _r(self.own_use),
            "lent": _r(lent),
            "borrowed": _r(borrowed),
            "balance": _r(lent - borrowed),
            "utilization": _r((self.own_use + lent) / contributed) if contributed else 0.0,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "period": self.period,
            "book": self.book,
            "from": self.start,
            "to": self.end,
            "unit": "NU-hours",
            **self.totals,
            "contributed_by_model": {k: _r(v) for k, v in sorted(self.contributed.items())},
            "consumed_by_model": {k: _r(v) for k, v in sorted(self.consumed.items())},
            "lent_to": {k: _r(v) for k, v in sorted(self.lent_to.items())},
            "borrowed_from": {k: _r(v) for k, v in sorted(self.borrowed_from.items())},
            "federated_runs": {k: _r(v) for k, v in sorted(self.federated_runs.items())},
            "records": self.records,
        }

    def csv_rows(self) -> list[tuple[str, str, float]]:
        """``(line, detail, NU-hours)`` rows: the totals, then each model and counterparty."""
        rows: list[tuple[str, str, float]] = [(k, "", v) for k, v in self.totals.items()]
        rows += [("contributed", m, _r(v)) for m, v in sorted(self.contributed.items())]
        rows += [("consumed", m, _r(v)) for m, v in sorted(self.consumed.items())]
        rows += [("lent_to", m, _r(v)) for m, v in sorted(self.lent_to.items())]
        rows += [("borrowed_from", m, _r(v)) for m, v in sorted(self.borrowed_from.items())]
        rows += [("federated_run", m, _r(v)) for m, v in sorted(self.federated_runs.items())]
        return rows


def statement(
    member: str,
    period: str,
    book: str,
    rows: Iterable[tuple[Any, ...]],
) -> Statement:
    """The statement of ``member`` from ``(kind, member, provider, model, start, end, units)``
    rows, each maybe followed by the federated run of its job (any superset of the member's
    and its nodes' records overlapping the period)."""
    start, end = period_bounds(period)
    st = Statement(member, period, book, start, end)
    for row in rows:
        st.add(*row)
    return st
