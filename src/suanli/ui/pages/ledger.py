"""The ledger page: a member's statement for a month."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from suanli.errors import SuanliError
from suanli.ledger.statement import period_bounds
from suanli.service import ledger as ledger_service
from suanli.ui.html import e, table, url
from suanli.ui.session import render, service_of, who_of

router = APIRouter(include_in_schema=False)


@router.get("/ui/ledger")
def ledger_page(
    request: Request, member: str = "", period: str = "", book: str = "real"
) -> HTMLResponse:
    who = who_of(request)
    member = member or (who.member or "")
    period = period or time.strftime("%Y-%m", time.gmtime())
    form = (
        "<form class=inline method=get>"
        f'<input name=member placeholder=member value="{e(member)}">'
        f'<input name=period placeholder=2026-11 value="{e(period)}">'
        f'<input name=book value="{e(book)}"><button>Show</button></form>'
    )
    if not member:
        return render("Ledger", "/ui/ledger", who, form + "<p>Choose a member.</p>")
    try:
        period_bounds(period)
        with service_of(request).db.session() as s:
            st = ledger_service.statement(s, who, member, period, book).to_json()
    except SuanliError as exc:
        return render("Ledger", "/ui/ledger", who, form + f"<p>{e(exc)}</p>")
    lines = [
        ("Contributed", st["contributed"]),
        ("Consumed", st["consumed"]),
        ("Own use", st["own_use"]),
        ("Lent", st["lent"]),
        ("Borrowed", st["borrowed"]),
        ("Balance (lent − borrowed)", st["balance"]),
    ]
    rows = [[e(k), f"{v:,.3f}"] for k, v in lines]
    rows.append(["Utilization of the contribution", f"{st['utilization']:.1%}"])
    for section, title in [
        ("contributed_by_model", "contributed"),
        ("consumed_by_model", "consumed"),
        ("lent_to", "lent to"),
        ("borrowed_from", "borrowed from"),
        ("federated_runs", "its part of federated run"),
    ]:
        rows += [[f"{title} {e(k)}", f"{v:,.3f}"] for k, v in st.get(section, {}).items()]
    csv_link = url(
        "/api/v1/ledger/statement", member=member, period=period, book=book, format="csv"
    )
    body = (
        form + f"<p class=muted>{e(member)}, {e(period)}, {e(book)} book: {st['records']:,} "
        f'records, NU-hours. <a href="{e(csv_link)}">CSV</a></p>'
        + table(["Line", "NU-hours"], rows, {1}, "statement")
    )
    return render("Ledger", "/ui/ledger", who, body)
