"""Ledger statement time over a month of records (issue 6): 20 members, 1,000,000 records.

Builds the ``real`` book in a fresh database: a month (2026-11) of usage records (5-minute
accounting slices of jobs, each member borrowing from others a third of the time) and
capacity records (every member and model, every 5 minutes), appended through the same code as
the controller (hash chain included). Then times ``suanli ledger statement`` for several
members (the query and the proration, as the API runs it) and ``verify`` over the whole book.

    uv run python benchmarks/bench_ledger.py [--records 1000000] [--db URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from suanli.ledger.record import Record, units_of
from suanli.ledger.statement import period_bounds
from suanli.store.database import Database
from suanli.store.ledger_rows import append, member_statement, verify

MODELS = [("H800-80GB", 0.99), ("Ascend910B", 0.38), ("MLU370-X8", 0.096)]


def build(db: Database, n: int, members: int, seed: int = 0) -> float:
    rng = random.Random(seed)
    t0, t1 = period_bounds("2026-11")
    names = [f"member-{i:02d}" for i in range(members)]
    slice_s = 300.0
    slices = int((t1 - t0) // slice_s)
    capacity_per_slice = members * len(MODELS)
    usage_n = max(0, n - slices * capacity_per_slice)
    per_slice = usage_n / slices
    start = time.perf_counter()
    batch: list[Record] = []
    made = 0
    for k in range(slices):
        a = t0 + k * slice_s
        b = a + slice_s
        for m in names:
            for model, nu in MODELS:
                batch.append(
                    Record("real", "capacity", m, m, model, 64, a, b, units_of(64, nu, slice_s))
                )
        want = int((k + 1) * per_slice) - int(k * per_slice)
        for _ in range(want):
            member = rng.choice(names)
            provider = rng.choice(names) if rng.random() < 1 / 3 else member
            model, nu = rng.choice(MODELS)
            devs = rng.choice([1, 2, 4, 8])
            made += 1
            batch.append(
                Record(
                    "real",
                    "usage",
                    member,
                    provider,
                    model,
                    devs,
                    a,
                    b,
                    units_of(devs, nu, slice_s),
                    f"job-{made}",
                    1,
                )
            )
        if len(batch) >= 50_000:
            with db.session() as s:
                append(s, batch)
            batch = []
    if batch:
        with db.session() as s:
            append(s, batch)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--members", type=int, default=20)
    ap.add_argument("--db", help="database URL (default: a new SQLite file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'ledger.db'}"
        db = Database.open(url)
        built = build(db, args.records, args.members)
        with db.session() as s:
            total = s.execute(__import__("sqlalchemy").text("SELECT count(*) FROM ledger")).scalar()
        print(f"built {total:,} records in {built:.1f} s ({total / built:,.0f}/s, chained)")
        times = []
        for m in ["member-00", "member-07", "member-13", "member-19"]:
            t = time.perf_counter()
            with db.session() as s:
                st = member_statement(s, m, "2026-11")
            times.append(time.perf_counter() - t)
            tot = st.totals
            print(
                f"statement {m}: {times[-1]:.2f} s, {st.records:,} records, contributed "
                f"{tot['contributed']:,.0f} NU-h, consumed {tot['consumed']:,.0f}, "
                f"balance {tot['balance']:+,.0f}"
            )
        print(
            f"statement median {statistics.median(times):.2f} s, max {max(times):.2f} s "
            "(target < 5 s)"
        )
        t = time.perf_counter()
        with db.session() as s:
            check = verify(s)
        print(f"verify: {check.records:,} records, ok={check.ok}, {time.perf_counter() - t:.1f} s")
        db.close()


if __name__ == "__main__":
    sys.exit(main())
