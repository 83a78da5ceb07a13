"""The simulator's HTML reports, behind the same sign-in."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from suanli.service import dashboard
from suanli.ui.html import e
from suanli.ui.session import render, service_of, who_of

router = APIRouter(include_in_schema=False)


@router.get("/ui/reports")
def reports_page(request: Request) -> HTMLResponse:
    who = who_of(request)
    reports_dir = service_of(request).reports_dir
    found = dashboard.reports(who, reports_dir)
    body = (
        "<ul>"
        + "".join(f'<li><a href="/ui/reports/{e(p)}">{e(p)}</a></li>' for p in found)
        + "</ul>"
        if found
        else "<p>No simulator reports yet: <code>suanli sim compare --scenario "
        f"alliance-philly --report {e(reports_dir or 'DIR')}/philly</code></p>"
    )
    return render("Simulator reports", "/ui/reports", who, body)


@router.get("/ui/reports/{path:path}")
def report_file(request: Request, path: str) -> Response:
    target = dashboard.report_file(who_of(request), service_of(request).reports_dir, path)
    if target is None:
        return HTMLResponse("not found", status_code=404)
    return FileResponse(target)
