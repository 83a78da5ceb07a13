"""What every route needs: the service it runs against, the caller, and the one map from
domain errors to HTTP answers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from suanli.api.models import ErrorOut, ProblemOut
from suanli.errors import (
    CannotRunError,
    ConflictError,
    DatabaseError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    Problem,
    SuanliError,
    UnauthenticatedError,
    ValidationError,
)
from suanli.service import runtoken
from suanli.service.auth import SESSION_COOKIE, Principal, authenticate, find_session
from suanli.service.context import Service
from suanli.spec.common import parse_json, parse_yaml

#: the largest body a route reads (1 MiB)
MAX_BODY = 1 << 20
#: a JSON body up to this size is parsed on the event loop, a larger one in a thread
INLINE_JSON = 8 * 1024
#: the largest integer a query may carry (a 63-bit database integer)
MAX_INT = 1 << 62
#: routes that parse their own body (JSON, or YAML for people) declare it for the schema
DOCUMENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}
#: every domain error's HTTP status, in one place (anything else: 500)
STATUS: dict[type[SuanliError], int] = {
    ValidationError: 422,
    NotFoundError: 404,
    ConflictError: 409,
    PermissionDeniedError: 403,
    UnauthenticatedError: 401,
    PayloadTooLargeError: 413,
    CannotRunError: 422,
    DatabaseError: 503,
}


def error_response(exc: SuanliError) -> JSONResponse:
    status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 500)
    problems = exc.problems if isinstance(exc, ValidationError) else []
    message = str(exc).split("\n", 1)[0] if problems else str(exc)
    body = ErrorOut(
        error=type(exc).__name__,
        message=message,
        problems=[ProblemOut(field=p.field, message=p.message) for p in problems],
    )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


Svc = Annotated[Service, Depends(service)]


@dataclass(frozen=True)
class Credentials:
    """What a request says of its caller, not yet checked: a bearer token, or for reads only
    the dashboard's session cookie (a cookie never authorizes a change, so no other site can
    make a signed-in browser write)."""

    token: str | None
    cookie: str | None

    def who(self, s: Session, svc: Service) -> Principal:
        """The caller, checked against the database (401 if unknown, revoked or expired)."""
        if svc.health.fatal:
            raise DatabaseError(svc.health.fatal)
        if not self.token and self.cookie:
            return find_session(s, self.cookie, svc.clock()).who
        return authenticate(s, self.token, svc.clock())


async def credentials(request: Request) -> Credentials:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    found = token.strip() if scheme.lower() == "bearer" else None
    read = request.method in ("GET", "HEAD")
    return Credentials(found, request.cookies.get(SESSION_COOKIE) if read else None)


Creds = Annotated[Credentials, Depends(credentials)]


def principal(request: Request, creds: Creds) -> Principal:
    """The caller (see :class:`Credentials`)."""
    svc = service(request)
    with svc.db.session() as s:
        return creds.who(s, svc)


Who = Annotated[Principal, Depends(principal)]


def maybe_principal(request: Request, creds: Creds) -> Principal | None:
    """The hub's caller: a user, a job's run (its run token: the hub's routes only), or None
    for a request with no credentials at all (what anyone may read, such as a public repo);
    credentials that do not check out are still 401."""
    if not creds.token and not creds.cookie:
        return None
    if runtoken.is_run_token(creds.token):
        svc = service(request)
        with svc.db.session() as s:
            return runtoken.check(s, svc.vault, str(creds.token))
    return principal(request, creds)


MaybeWho = Annotated[Principal | None, Depends(maybe_principal)]


async def body_document(request: Request) -> Any:
    """A JSON body, or YAML with a YAML content type: bounded (JSON's types only, a limited
    depth and number of values: :func:`suanli.spec.common.check_document`), parsed off the
    event loop."""
    raw = await request.body()  # (at most MAX_BODY: the RequestLimits middleware saw to it)
    if len(raw) > MAX_BODY:
        raise PayloadTooLargeError(f"the body is over {MAX_BODY} bytes")
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError([Problem("body", "not UTF-8 text")], "request") from None
    if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
        return await run_in_threadpool(parse_yaml, text, "body")
    if len(raw) <= INLINE_JSON:  # (parsed in microseconds: not worth a thread)
        return parse_json(text, "request")
    return await run_in_threadpool(parse_json, text, "request")


async def mapping_body(request: Request, what: str) -> dict[str, Any]:
    doc = await body_document(request)
    if not isinstance(doc, dict):
        raise ValidationError([Problem("body", f"{what} is a mapping")], "request")
    return doc


class RequestLimits:
    """What every request is held to before any route sees it. A URL with a NUL character is
    refused (no name, path or filter holds one; databases refuse it). No body over
    ``max_bytes`` is read: one that says it is larger is answered 413 at once, one that turns
    out larger is answered 413 as soon as it has; the app behind sees the body replayed, whole
    and bounded. The paths that ``streamed`` matches (the hub's uploads) are held only to the
    larger ``streamed_max`` by what they declare, and their routes read (and count) the body
    as it comes."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = MAX_BODY,
        streamed: re.Pattern[str] | None = None,
        streamed_max: int = 0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streamed = streamed
        self.streamed_max = streamed_max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = bytes(scope.get("query_string") or b"").lower()
        if "\0" in scope["path"] or b"%00" in query or b"\0" in query:
            problem = Problem("url", "a NUL character is in the URL")
            await self._refuse(send, ValidationError([problem], "request"))
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"0")
        if self.streamed is not None and self.streamed.match(scope["path"]):
            if declared.isdigit() and int(declared) <= self.streamed_max:
                await self.app(scope, receive, send)
            else:
                await self._refuse(send, PayloadTooLargeError(f"over {self.streamed_max} bytes"))
            return
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._refuse(send)
                return
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, error: SuanliError | None = None) -> None:
        too_large = PayloadTooLargeError(f"the body is over {self.max_bytes} bytes")
        response = error_response(error or too_large)
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [(k.encode(), v.encode()) for k, v in response.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": response.body})
