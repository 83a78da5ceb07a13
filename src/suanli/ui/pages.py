"""The dashboard's pages (``/ui/...``), behind the service's tokens and roles.

Signing in with a token opens a server-side session: the browser's cookie (HttpOnly,
SameSite=Strict, Secure over HTTPS) holds only the session's random id, never the token. The
pages and the API's read-only (GET) endpoints accept it, so a job page can follow its log
through the API; every write to the API still needs the ``Authorization`` header. The two forms
(sign in, sign out) are POSTs that must come from this dashboard: their ``Origin`` (or
``Referer``) must be this server, and they carry a CSRF token (for signing in, one the sign-in
page set in a cookie of its own; for signing out, the session's).
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from suanli.errors import PayloadTooLargeError, SuanliError, UnauthenticatedError
from suanli.ledger.statement import period_bounds
from suanli.model.job import Phase
from suanli.service import jobs
from suanli.service import ledger as ledger_service
from suanli.service.auth import (
    Principal,
    Role,
    close_session,
    open_session,
    session_principal,
)
from suanli.store.alliance_rows import read_alliance
from suanli.ui import data
from suanli.ui.html import bar, card, e, page, pill, table, url, when
from suanli.ui.svg import line_chart

COOKIE = "suanli_session"
#: the sign-in form's own CSRF cookie (before there is a session)
LOGIN_COOKIE = "suanli_login"
PAGE_SIZE = 200
#: what the sign-in page says after a failed sign-in (never text from the URL)
LOGIN_ERRORS = {
    "unknown": "Unknown or revoked token.",
    "expired": "This token has expired: ask an admin to rotate it.",
}
#: the largest form the dashboard reads (a token and a CSRF token)
MAX_FORM = 4096


class SignInRequired(Exception):
    pass


@dataclass(frozen=True)
class SignedIn(Principal):
    """A principal seen through its dashboard session, with the session's CSRF token."""

    csrf: str = ""


def _who(request: Request) -> SignedIn:
    svc = request.app.state.service
    try:
        with svc.db.session() as s:
            who, csrf = session_principal(s, request.cookies.get(COOKIE), svc.clock())
    except UnauthenticatedError:
        raise SignInRequired from None
    return SignedIn(who.name, who.role, who.member, csrf)


def _same_origin(request: Request) -> bool:
    """A form posted from a page of this server (browsers send ``Origin`` with every POST)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    return urlsplit(source).netloc == request.headers.get("host", "")


async def _form(request: Request) -> dict[str, str]:
    """A small urlencoded form, read no further than :data:`MAX_FORM` bytes."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise PayloadTooLargeError(f"the form is over {MAX_FORM} bytes")
    form = parse_qs(body.decode(errors="replace"))
    return {k: v[0] for k, v in form.items() if v}


def _forbidden(why: str) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><p>Refused: {e(why)}</p>", status_code=403)


def _label(who: Principal) -> str:
    return f"{who.name} ({who.role.value}{', ' + who.member if who.member else ''})"


def _sees_all(who: Principal) -> bool:
    return who.admin or who.role is Role.VIEWER


def _html(title: str, here: str, who: Principal, body: str, script: str = "") -> HTMLResponse:
    csrf = who.csrf if isinstance(who, SignedIn) else ""
    return HTMLResponse(page(title, here, _label(who), body, script, csrf))


def router(reports_dir: Path | None) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/ui/login")
    def login_form(request: Request, error: str = "") -> HTMLResponse:
        text = LOGIN_ERRORS.get(error, "")
        msg = f"<p style='color:#b42318'>{e(text)}</p>" if text else ""
        nonce = secrets.token_urlsafe(32)
        resp = HTMLResponse(
            "<!doctype html><html lang=en><head><meta charset=utf-8><title>Sign in · suanli"
            "</title></head><body style='font:15px system-ui;margin:80px auto;max-width:420px'>"
            f"<h1>suanli 算力</h1>{msg}<form method=post action=/ui/login>"
            f"<input type=hidden name=csrf value='{e(nonce)}'>"
            "<p><label>Token<br><input name=token type=password autofocus required "
            "style='width:100%;padding:6px'></label></p><button type=submit>Sign in</button>"
            "</form><p style='color:#667085'>The token <code>suanli server</code> printed "
            "when it made the alliance, or one an admin made for you.</p></body></html>"
        )
        resp.set_cookie(
            LOGIN_COOKIE,
            nonce,
            max_age=900,
            path="/ui/login",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return resp

    @r.post("/ui/login")
    async def login(request: Request) -> Response:
        if not _same_origin(request):
            return _forbidden("a sign-in must come from this dashboard's own page")
        form = await _form(request)
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not nonce or not hmac.compare_digest(nonce, form.get("csrf", "")):
            return _forbidden("the sign-in form expired or did not come from this dashboard")
        svc = request.app.state.service
        try:
            with svc.db.session() as s:
                _, session = open_session(s, form.get("token", "").strip(), svc.clock())
        except UnauthenticatedError as exc:
            why = "expired" if "expired" in str(exc) else "unknown"
            return RedirectResponse(url("/ui/login", error=why), status_code=303)
        resp = RedirectResponse("/ui/", status_code=303)
        resp.set_cookie(
            COOKIE,
            session.id,
            max_age=int(session.expires_at - svc.clock()),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        resp.delete_cookie(LOGIN_COOKIE, path="/ui/login")
        return resp

    @r.post("/ui/logout")
    async def logout(request: Request) -> Response:
        who = _who(request)
        form = await _form(request)
        if not _same_origin(request) or not hmac.compare_digest(who.csrf, form.get("csrf", "")):
            return _forbidden("a sign-out must come from this dashboard's own page")
        svc = request.app.state.service
        with svc.db.session() as s:
            close_session(s, request.cookies.get(COOKIE), svc.clock())
        resp = RedirectResponse("/ui/login", status_code=303)
        resp.delete_cookie(COOKIE)
        return resp

    @r.get("/ui")
    def ui_root() -> Response:
        return RedirectResponse("/ui/", status_code=307)

    @r.get("/ui/")
    def pool_page(request: Request) -> HTMLResponse:
        who = _who(request)
        with request.app.state.service.db.session() as s:
            groups, nodes = data.pool(s)
            counts = data.job_counts(s)
        devices = sum(g.devices for g in groups)
        busy = sum(g.busy for g in groups)
        by_vendor: dict[str, list[int]] = {}
        for g in groups:
            v = by_vendor.setdefault(g.vendor, [0, 0])
            v[0] += g.devices
            v[1] += g.busy
        cards = "".join(
            [
                card(f"{len(nodes):,}", "nodes"),
                card(f"{devices:,}", "devices"),
                card(f"{busy / devices:.0%}" if devices else "-", "in use"),
                card(f"{counts.get('RUNNING', 0):,}", "jobs running"),
                card(f"{counts.get('PENDING', 0):,}", "jobs waiting"),
                card(f"{sum(g.down for g in groups):,}", "nodes down"),
            ]
        )
        vendors = table(
            ["Vendor", "Devices", "Busy", "Utilization"],
            [
                [e(v), f"{d:,}", f"{b:,}", bar(b / d if d else 0)]
                for v, (d, b) in sorted(by_vendor.items())
            ],
            {1, 2},
            "vendors",
        )
        model_site = table(
            [
                "Vendor",
                "Model",
                "Site",
                "Member",
                "Nodes",
                "Devices",
                "Busy",
                "Utilization",
                "Down",
                "Draining",
            ],
            [
                [
                    e(g.vendor),
                    e(g.model),
                    e(g.site),
                    e(g.member),
                    str(g.nodes),
                    f"{g.devices:,}",
                    f"{g.busy:,}",
                    bar(g.busy / g.devices if g.devices else 0),
                    str(g.down),
                    str(g.draining),
                ]
                for g in groups
            ],
            {4, 5, 6, 8, 9},
            "pool",
        )
        node_rows = table(
            ["Node", "Vendor", "Model", "Site", "Member", "Devices", "Busy", "State", "Health"],
            [
                [
                    e(n.id),
                    e(v),
                    e(n.model),
                    e(n.site),
                    e(m),
                    str(n.devices),
                    str(u),
                    pill(n.state),
                    pill(n.health)
                    + (
                        f" <span class=muted>{e(n.health_reason)}</span>"
                        if n.health_reason and n.health != "up"
                        else ""
                    ),
                ]
                for n, v, m, u in nodes
            ],
            {5, 6},
            "nodes",
        )
        body = (
            f"<div class=cards>{cards}</div><h2>By vendor</h2>{vendors}"
            f"<h2>By vendor, model and site</h2>{model_site}"
            f"<details><summary>All {len(nodes):,} nodes</summary>{node_rows}</details>"
        )
        return _html("Pool", "/ui/", who, body)

    @r.get("/ui/queue")
    def queue_page(request: Request, member: str = "", page_no: int = 0) -> HTMLResponse:
        who = _who(request)
        members = None if _sees_all(who) else {who.member or ""}
        if member:
            members = {member} if members is None or member in members else set()
        offset = max(0, page_no) * PAGE_SIZE
        with request.app.state.service.db.session() as s:
            rows, total = data.queue(s, members, offset, PAGE_SIZE)
        tbl = table(
            ["Job", "Member", "Position", "Devices", "Models", "Submitted", "Why it waits"],
            [
                [
                    f'<a href="/ui/jobs/{e(q["id"])}">{e(q["id"])}</a>',
                    e(q["member"]),
                    str(q["position"]),
                    e(q["count"]),
                    e(", ".join(q["models"])),
                    e(when(q["submitted_at"])),
                    f"<span class=muted>{e(q['reason'])}</span>",
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
        return _html("Queue", "/ui/queue", who, body)

    @r.get("/ui/jobs")
    def jobs_page(
        request: Request, member: str = "", phase: str = "", after: int = 0
    ) -> HTMLResponse:
        who = _who(request)
        members = None if _sees_all(who) else {who.member or ""}
        if member:
            members = {member} if members is None or member in members else set()
        phases = {phase} if phase in {p.value for p in Phase} else None
        with request.app.state.service.db.session() as s:
            pg = jobs.list_jobs(s, members, phases, max(0, after), PAGE_SIZE)
            rows = [
                [
                    f'<a href="/ui/jobs/{e(j.id)}">{e(j.id)}</a>',
                    e(j.name or ""),
                    e(j.member),
                    pill(j.phase),
                    str(j.attempt),
                    e(when(j.submitted_at)),
                    f"<span class=muted>{e(j.reason or '')}</span>",
                ]
                for j in pg.items
            ]
        options = "".join(
            f"<option {'selected' if p.value == phase else ''}>{p.value}</option>" for p in Phase
        )
        form = (
            "<form class=inline method=get>"
            f'<input name=member placeholder=member value="{e(member)}">'
            f"<select name=phase><option value=''>any phase</option>{options}</select>"
            "<button>Show</button></form>"
        )
        more = (
            f'<p><a href="{e(url("/ui/jobs", member=member, phase=phase, after=pg.next_after))}">'
            "next page</a></p>"
            if pg.next_after
            else ""
        )
        tbl = table(
            ["Job", "Name", "Member", "Phase", "Attempt", "Submitted", "Reason"], rows, {4}, "jobs"
        )
        body = f"{form}<p class=muted>{pg.total:,} jobs</p>{tbl}{more}"
        return _html("Jobs", "/ui/jobs", who, body)

    @r.get("/ui/jobs/{job_id}")
    def job_page(request: Request, job_id: str) -> HTMLResponse:
        who = _who(request)
        with request.app.state.service.db.session() as s:
            try:
                row = jobs.get(s, job_id)
            except SuanliError:
                row = None
            if row is None or not who.can_see_job_metadata(row.member):
                return _html("Not found", "/ui/jobs", who, f"<p>No job {e(job_id)}.</p>")
            info = [
                ("Member", e(row.member)),
                ("Phase", pill(row.phase)),
                ("Reason", e(row.reason or "")),
                ("Attempt", str(row.attempt)),
                ("Preemptions", str(row.preemptions)),
                ("Placement", e(json.dumps(row.placement) if row.placement else "")),
                ("Submitted", e(when(row.submitted_at)) + f" by {e(row.submitted_by)}"),
                ("Started", e(when(row.started_at))),
                ("Finished", e(when(row.finished_at))),
                ("Exit code", e(row.exit_code)),
                ("Spec", f"<code>{e(json.dumps(row.spec))}</code>"),
            ]
            readable = who.can_read_member(row.member)
        details = table(["", ""], [[f"<b>{k}</b>", v] for k, v in info], table_id="job")
        if not readable:
            return _html(f"Job {job_id}", "/ui/jobs", who, details)
        body = (
            f"{details}<h2>Log <span class=muted id=logstate>following…</span></h2>"
            "<pre class=log id=log></pre>"
        )
        script = (
            f"const jid={json.dumps(job_id)};let off=0;const el=document.getElementById('log');"
            "async function tick(){try{const r=await fetch('/api/v1/jobs/'+encodeURIComponent(jid)"
            "+'/logs?offset='+off,{credentials:'same-origin'});if(r.ok){const t=await r.text();"
            "off=parseInt(r.headers.get('X-Next-Offset')||off);if(t){el.textContent+=t;"
            "el.scrollTop=el.scrollHeight;}if(r.headers.get('X-Job-Done')==='true'){"
            "document.getElementById('logstate').textContent='(ended)';return;}}}catch(x){}"
            "setTimeout(tick,1000);}tick();"
        )
        return _html(f"Job {job_id}", "/ui/jobs", who, body, script)

    @r.get("/ui/members")
    def members_page(request: Request, days: int = 7) -> HTMLResponse:
        who = _who(request)
        now = time.time()
        days = max(1, min(days, 92))
        with request.app.state.service.db.session() as s:
            alliance = read_alliance(s)[0]
            entitled = alliance.entitlement_nu()
            xs, used = data.usage_series(s, now - days * 86400, now)
        hours = [(x - now) / 3600 for x in xs]
        plots = []
        for m in sorted(alliance.members):
            ys = used.get(m, [0.0] * len(xs))
            ent = entitled.get(m, 0.0)
            plots.append(
                "<div class=plot>"
                + line_chart(
                    f"{m}: used vs entitled (NU)",
                    hours,
                    [("used", ys), ("entitled", [ent] * len(xs))],
                    f"hours (last {days} days)",
                    "NU",
                )
                + "</div>"
            )
        rows = [
            [
                e(m),
                e(alliance.members[m].kind),
                e(alliance.members[m].tier),
                f"{entitled.get(m, 0.0):.3f}",
                f"{(used.get(m) or [0.0])[-1]:.3f}",
            ]
            for m in sorted(alliance.members)
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
        return _html("Members", "/ui/members", who, body)

    @r.get("/ui/ledger")
    def ledger_page(
        request: Request, member: str = "", period: str = "", book: str = "real"
    ) -> HTMLResponse:
        who = _who(request)
        member = member or (who.member or "")
        period = period or time.strftime("%Y-%m", time.gmtime())
        form = (
            "<form class=inline method=get>"
            f'<input name=member placeholder=member value="{e(member)}">'
            f'<input name=period placeholder=2026-11 value="{e(period)}">'
            f'<input name=book value="{e(book)}"><button>Show</button></form>'
        )
        if not member:
            return _html("Ledger", "/ui/ledger", who, form + "<p>Choose a member.</p>")
        try:
            period_bounds(period)
            with request.app.state.service.db.session() as s:
                st = ledger_service.statement(s, who, member, period, book).to_json()
        except SuanliError as exc:
            return _html("Ledger", "/ui/ledger", who, form + f"<p>{e(exc)}</p>")
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
        ]:
            rows += [[f"{title} {e(k)}", f"{v:,.3f}"] for k, v in st[section].items()]
        csv_link = url(
            "/api/v1/ledger/statement", member=member, period=period, book=book, format="csv"
        )
        body = (
            form + f"<p class=muted>{e(member)}, {e(period)}, {e(book)} book: {st['records']:,} "
            f'records, NU-hours. <a href="{e(csv_link)}">CSV</a></p>'
            + table(["Line", "NU-hours"], rows, {1}, "statement")
        )
        return _html("Ledger", "/ui/ledger", who, body)

    @r.get("/ui/reports")
    def reports_page(request: Request) -> HTMLResponse:
        who = _who(request)
        found = []
        if reports_dir is not None and reports_dir.is_dir():
            found = sorted(p.relative_to(reports_dir) for p in reports_dir.rglob("*.html"))
        body = (
            "<ul>"
            + "".join(f'<li><a href="/ui/reports/{e(p)}">{e(p)}</a></li>' for p in found)
            + "</ul>"
            if found
            else "<p>No simulator reports yet: <code>suanli sim compare --scenario "
            f"alliance-philly --report {e(reports_dir or 'DIR')}/philly</code></p>"
        )
        return _html("Simulator reports", "/ui/reports", who, body)

    @r.get("/ui/reports/{path:path}")
    def report_file(request: Request, path: str) -> Response:
        _who(request)
        if reports_dir is None:
            return HTMLResponse("no reports directory", status_code=404)
        root = reports_dir.resolve()
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            return HTMLResponse("not found", status_code=404)
        return FileResponse(target)

    return r


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


def sign_in_redirect(request: Request, exc: Exception) -> Response:
    return RedirectResponse("/ui/login", status_code=303)
