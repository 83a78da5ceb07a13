"""The queue page: waiting jobs, their position in their member's queue, and why."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from suanli.service import dashboard
from suanli.ui.html import e, table, url, when
from suanli.ui.session import render, service_of, who_of

router = APIRouter(include_in_schema=False)
#: jobs per page
PAGE_SIZE = 200
#: the last page a link may ask for (no query reads past a 63-bit offset)
MAX_PAGE_NO = 1 << 40


@router.get("/ui/queue")
def queue_page(request: Request, member: str = "", page_no: int = 0) -> HTMLResponse:
    who = who_of(request)
    offset = min(max(0, page_no), MAX_PAGE_NO) * PAGE_SIZE
    with service_of(request).db.session() as s:
        waiting = dashboard.queue(s, who, member, offset, PAGE_SIZE)
    rows, total = waiting.items, waiting.total
    tbl = table(
        ["Job", "Member", "Position", "Devices", "Models", "Submitted", "Why it waits"],
        [
            [
                f'<a href="/ui/jobs/{e(q.id)}">{e(q.id)}</a>',
                e(q.member),
                str(q.position),
                e(q.count),
                e(", ".join(q.models)),
                e(when(q.submitted_at)),
                f"<span class=muted>{e(q.reason)}</span>",
            ]
            for q in rows
        ],
        {2, 3},
        "queue",
    )
    pager = _pager("/ui/queue", offset, total, page_no=page_no, member=member)
    body = (
        _member_filter("/ui/queue", member)
        + f"<p class=muted>{total:,} jobs waiting; reasons as of the last scheduling pass."
        f"</p>{tbl}{pager}"
    )
    return render("Queue", "/ui/queue", who, body)


def _member_filter(path: str, member: str) -> str:
    return (
        f'<form class=inline method=get action="{path}">'
        f'<input name=member placeholder="member" value="{e(member)}"><button>Filter</button>'
        "</form>"
    )


def _pager(path: str, offset: int, total: int, page_no: int, **params: Any) -> str:
    links = []
    if offset > 0:
        links.append(f'<a href="{e(url(path, page_no=page_no - 1, **params))}">previous</a>')
    if offset + PAGE_SIZE < total:
        links.append(f'<a href="{e(url(path, page_no=page_no + 1, **params))}">next</a>')
    return f"<p>{' · '.join(links)}</p>" if links else ""
