"""What every route needs: the service it runs against, the caller, and the one map from
domain errors to HTTP answers."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

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
from suanli.service.auth import SESSION_COOKIE, Principal, authenticate, find_session
from suanli.service.context import Service
from suanli.spec.common import parse_yaml

#: the largest body a route reads (1 MiB)
MAX_BODY = 1 << 20
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


def principal(request: Request) -> Principal:
    """The caller, from its bearer token; for reads only, also from the dashboard's session
    cookie (a cookie never authorizes a change, so no other site can make a signed-in browser
    write)."""
    svc = service(request)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    found = token.strip() if scheme.lower() == "bearer" else None
    cookie = request.cookies.get(SESSION_COOKIE)
    with svc.db.session() as s:
        if not found and request.method in ("GET", "HEAD") and cookie:
            return find_session(s, cookie, svc.clock()).who
        return authenticate(s, found, svc.clock())


Who = Annotated[Principal, Depends(principal)]


async def body_document(request: Request) -> Any:
    """A JSON body, or YAML with a YAML content type."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise PayloadTooLargeError(f"the body is over {MAX_BODY} bytes")
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError([Problem("body", "not UTF-8 text")], "request") from None
    if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
        return parse_yaml(text, "body")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            [Problem("body", f"invalid JSON at line {exc.lineno}: {exc.msg}")], "request"
        ) from None


async def mapping_body(request: Request, what: str) -> dict[str, Any]:
    doc = await body_document(request)
    if not isinstance(doc, dict):
        raise ValidationError([Problem("body", f"{what} is a mapping")], "request")
    return doc
