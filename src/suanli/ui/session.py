"""Signing in and out of the dashboard, and what every page needs: who is looking, and the
page around its body.

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
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from suanli.errors import PayloadTooLargeError, UnauthenticatedError
from suanli.service.auth import SESSION_COOKIE as COOKIE
from suanli.service.auth import Principal, close_session, find_session, open_session
from suanli.service.context import Service
from suanli.ui.html import e, page, url

#: the sign-in form's own CSRF cookie (before there is a session)
LOGIN_COOKIE = "suanli_login"

#: what the sign-in page says after a failed sign-in (never text from the URL)
LOGIN_ERRORS = {
    "unknown": "Unknown or revoked token.",
    "expired": "This token has expired: ask an admin to rotate it.",
}
#: the largest form the dashboard reads (a token and a CSRF token)
MAX_FORM = 4096


class SignInRequired(Exception):
    """A page was asked for without a live session: the browser is sent to sign in."""


@dataclass(frozen=True)
class SignedIn(Principal):
    """A principal seen through its dashboard session, with the session's CSRF token."""

    csrf: str = ""


def service_of(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


def who_of(request: Request) -> SignedIn:
    svc = service_of(request)
    try:
        with svc.db.session() as s:
            web = find_session(s, request.cookies.get(COOKIE), svc.clock())
    except UnauthenticatedError:
        raise SignInRequired from None
    return SignedIn(web.who.name, web.who.role, web.who.member, web.csrf)


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


def render(title: str, here: str, who: Principal, body: str, script: str = "") -> HTMLResponse:
    """A page of the dashboard: the navigation, who is signed in (with the sign-out form)."""
    csrf = who.csrf if isinstance(who, SignedIn) else ""
    label = f"{who.name} ({who.role.value}{', ' + who.member if who.member else ''})"
    return HTMLResponse(page(title, here, label, body, script, csrf))


def sign_in_redirect(request: Request, exc: Exception) -> Response:
    return RedirectResponse("/ui/login", status_code=303)


router = APIRouter(include_in_schema=False)


@router.get("/ui/login")
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


@router.post("/ui/login")
async def login(request: Request) -> Response:
    if not _same_origin(request):
        return _forbidden("a sign-in must come from this dashboard's own page")
    form = await _form(request)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not hmac.compare_digest(nonce, form.get("csrf", "")):
        return _forbidden("the sign-in form expired or did not come from this dashboard")
    svc = service_of(request)
    try:
        with svc.db.session() as s:
            session = open_session(s, form.get("token", "").strip(), svc.clock())
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


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    who = who_of(request)
    form = await _form(request)
    if not _same_origin(request) or not hmac.compare_digest(who.csrf, form.get("csrf", "")):
        return _forbidden("a sign-out must come from this dashboard's own page")
    svc = service_of(request)
    with svc.db.session() as s:
        close_session(s, request.cookies.get(COOKIE), svc.clock())
    resp = RedirectResponse("/ui/login", status_code=303)
    resp.delete_cookie(COOKIE)
    return resp


@router.get("/ui")
def ui_root() -> Response:
    return RedirectResponse("/ui/", status_code=307)
