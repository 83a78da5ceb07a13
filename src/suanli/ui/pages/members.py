"""The members page: entitlement against use, from the ledger."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from suanli.service import dashboard
from suanli.ui.html import e, table
from suanli.ui.session import render, service_of, who_of
from suanli.ui.svg import line_chart

router = APIRouter(include_in_schema=False)


@router.get("/ui/members")
def members_page(request: Request, days: int = 7) -> HTMLResponse:
    who = who_of(request)
    now = time.time()
    days = max(1, min(days, 92))
    with service_of(request).db.session() as s:
        xs, members = dashboard.member_use(s, who, now - days * 86400, now)
    hours = [(x - now) / 3600 for x in xs]
    plots = []
    for m in members:
        plots.append(
            "<div class=plot>"
            + line_chart(
                f"{m.id}: used vs entitled (NU)",
                hours,
                [("used", m.used_nu), ("entitled", [m.entitled_nu] * len(xs))],
                f"hours (last {days} days)",
                "NU",
            )
            + "</div>"
        )
    rows = [
        [
            e(m.id),
            e(m.kind),
            e(m.tier),
            f"{m.entitled_nu:.3f}",
            f"{(m.used_nu or [0.0])[-1]:.3f}",
        ]
        for m in members
    ]
    body = (
        table(
            ["Member", "Kind", "Tier", "Entitled NU", "Used NU (last hour)"],
            rows,
            {3, 4},
            "members",
        )
        + f"<h2>Entitlement against use, hourly, from the ledger</h2>"
        f"<div class=plots>{''.join(plots)}</div>"
    )
    return render("Members", "/ui/members", who, body)
