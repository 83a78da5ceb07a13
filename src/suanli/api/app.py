"""The FastAPI application: routes are thin (authenticate, one service function, a response
model); the domain's errors map to status codes in one place (:data:`STATUS`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from suanli import __version__
from suanli.api.models import (
    AuditOut,
    DatasetOut,
    DrainIn,
    DrainOut,
    ErrorOut,
    JobOut,
    JobPage,
    MemberOut,
    NodeOut,
    ProblemOut,
    QueueEntry,
    RevokedOut,
    ShareLimitsIn,
    ShareOut,
    SiteOut,
    TokenIn,
    TokenOut,
    UserCreated,
    UserIn,
    UserOut,
    WhoAmI,
)
from suanli.errors import (
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    Problem,
    SuanliError,
    UnauthenticatedError,
    ValidationError,
)
from suanli.executors.base import Executor
from suanli.model.ids import JobId
from suanli.model.job import Phase
from suanli.sched.policy import Policy
from suanli.service import auth, jobs, ledger, pool
from suanli.service.auth import Principal, authenticate, session_principal
from suanli.service.metrics import CONTENT_TYPE as METRICS_TYPE
from suanli.service.metrics import Metrics
from suanli.service.vault import Vault
from suanli.spec.common import parse_yaml
from suanli.store.alliance_rows import read_alliance
from suanli.store.database import Database, DatabaseError
from suanli.store.tables import MemberRow, SiteRow
from suanli.ui.pages import COOKIE, SignInRequired, router, sign_in_redirect

MAX_BODY = 1 << 20
#: the largest integer a query may carry (a 63-bit database integer)
MAX_INT = 1 << 62
#: routes that parse their own body (JSON, or YAML for people) declare it for the schema
_DOCUMENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}
STATUS: dict[type[SuanliError], int] = {
    ValidationError: 422,
    NotFoundError: 404,
    ConflictError: 409,
    PermissionDeniedError: 403,
    UnauthenticatedError: 401,
    DatabaseError: 503,
}


@dataclass
class Service:
    db: Database
    policy: Policy
    executor: Executor
    clock: Callable[[], float] = time.time
    extra: dict[str, Any] = field(default_factory=dict)
    #: the controller's metrics when it runs in this process (``suanli server``)
    metrics: Metrics = field(default_factory=Metrics)
    #: where the dashboard finds the simulator's HTML reports
    reports_dir: Path | None = None
    #: seals jobs' secrets (None: this server accepts no job with secrets)
    vault: Vault | None = None


def _error(exc: SuanliError) -> JSONResponse:
    status = 413 if isinstance(exc, PayloadTooLargeError) else 500
    for cls, code in STATUS.items():
        if isinstance(exc, cls):
            status = code
            break
    problems = exc.problems if isinstance(exc, ValidationError) else []
    message = str(exc).split("\n", 1)[0] if problems else str(exc)
    body = ErrorOut(
        error=type(exc).__name__,
        message=message,
        problems=[ProblemOut(field=p.field, message=p.message) for p in problems],
    )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def principal(request: Request) -> Principal:
    """The caller, from its bearer token; for reads only, also from the dashboard's cookie (a
    cookie never authorizes a change, so no other site can make a signed-in browser write)."""
    svc: Service = request.app.state.service
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    found = token.strip() if scheme.lower() == "bearer" else None
    with svc.db.session() as s:
        if not found and request.method in ("GET", "HEAD") and request.cookies.get(COOKIE):
            return session_principal(s, request.cookies.get(COOKIE), svc.clock())[0]
        return authenticate(s, found, svc.clock())


Who = Annotated[Principal, Depends(principal)]


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI document (published as ``schemas/openapi.json``); it does not depend
    on the state behind the app."""
    return create_app(Service(None, None, None)).openapi()  # type: ignore[arg-type]


def create_app(svc: Service) -> FastAPI:
    app = FastAPI(
        title="suanli",
        version=__version__,
        description="The control plane of an alliance's pooled accelerators.",
        responses={
            401: {"model": ErrorOut},
            403: {"model": ErrorOut},
            404: {"model": ErrorOut},
            422: {"model": ErrorOut},
        },
    )
    app.state.service = svc

    @app.exception_handler(SuanliError)
    async def _domain(_: Request, exc: SuanliError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def _request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            Problem(".".join(str(x) for x in e["loc"] if x != "body"), e["msg"])
            for e in exc.errors()
        ]
        return _error(ValidationError(problems, "request"))

    async def body_document(request: Request) -> Any:
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

    # -- service ---------------------------------------------------------------------------
    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.include_router(router(svc.reports_dir))
    app.add_exception_handler(SignInRequired, sign_in_redirect)

    svc.metrics.watch_database(lambda: svc.db.session())  # noqa: PLW0108 - late: no db yet for the OpenAPI document

    @app.get("/metrics", tags=["service"], responses={200: {"content": {"text/plain": {}}}})
    def metrics(who: Who) -> Response:
        """Prometheus metrics (scrape with any user's token, a viewer's say)."""
        return Response(svc.metrics.exposition(), media_type=METRICS_TYPE)

    @app.get("/api/v1/whoami", tags=["service"])
    def whoami(who: Who) -> WhoAmI:
        return WhoAmI(name=who.name, role=who.role.value, member=who.member)

    @app.get("/api/v1/users", tags=["service"])
    def users_list(who: Who) -> list[UserOut]:
        """Alliance admins see every user, member admins their member's, others themselves."""
        with svc.db.session() as s:
            return [UserOut(**vars(u)) for u in auth.list_users(s, who, svc.clock())]

    @app.post("/api/v1/users", status_code=201, tags=["service"])
    def users_create(body: UserIn, who: Who) -> UserCreated:
        days = body.expires_in_days
        with svc.db.session() as s:
            token = auth.create_user(
                s,
                who,
                body.name,
                body.role,
                body.member,
                svc.clock(),
                None if days is None else days * 86400,
            )
        return UserCreated(name=body.name, role=body.role, member=body.member, token=token)

    @app.post("/api/v1/users/{name}/revoke", tags=["service"])
    def users_revoke(name: str, who: Who) -> RevokedOut:
        """Every token of the user stops working at once, and its dashboard sessions end."""
        with svc.db.session() as s:
            return RevokedOut(name=name, revoked=auth.revoke(s, who, name, svc.clock()))

    @app.post("/api/v1/users/{name}/rotate", tags=["service"])
    def users_rotate(name: str, who: Who, body: TokenIn | None = None) -> TokenOut:
        """A new token for the user (shown once); its other tokens stop working."""
        days = body.expires_in_days if body else None
        with svc.db.session() as s:
            token = auth.rotate(s, who, name, svc.clock(), None if days is None else days * 86400)
        return TokenOut(name=name, token=token)

    @app.get("/api/v1/audit", tags=["service"])
    def audit(
        who: Who,
        after: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[AuditOut]:
        with svc.db.session() as s:
            return [AuditOut.of(r) for r in pool.audit(s, who, after, limit)]

    # -- pool ------------------------------------------------------------------------------
    @app.get("/api/v1/members", tags=["pool"])
    def members(who: Who) -> list[MemberOut]:
        with svc.db.session() as s:
            _, _, snap = pool.view(s, svc.clock())
            use = {u["member"]: u for u in pool.usage(snap)}
            rows = s.query(MemberRow).order_by(MemberRow.id).all()
            return [
                MemberOut(
                    id=m.id,
                    name=m.name,
                    kind=m.kind,
                    tier=m.tier,
                    weight=m.weight,
                    entitled_nu=use[m.id]["entitled_nu"],
                    used_nu=use[m.id]["used_nu"],
                    pending=use[m.id]["pending"],
                )
                for m in rows
            ]

    @app.get("/api/v1/sites", tags=["pool"])
    def sites(who: Who) -> list[SiteOut]:
        with svc.db.session() as s:
            return [
                SiteOut(id=x.id, member=x.member, region=x.region, executor=x.executor)
                for x in s.query(SiteRow).order_by(SiteRow.id).all()
            ]

    @app.get("/api/v1/nodes", tags=["pool"])
    def nodes(who: Who) -> list[NodeOut]:
        with svc.db.session() as s:
            alliance, _, snap = pool.view(s, svc.clock())
            used = pool.node_usage(snap)
            owner = {str(x.id): str(x.member) for x in alliance.sites.values()}
            return [NodeOut.of(n, owner[n.site], used.get(n.id, 0)) for n in pool.nodes(s)]

    def _node_out(s: Any, row: Any) -> NodeOut:
        site = s.get(SiteRow, row.site)
        return NodeOut.of(row, site.member, 0)

    @app.post("/api/v1/nodes", status_code=201, tags=["pool"], openapi_extra=_DOCUMENT_BODY)
    async def nodes_register(who: Who, request: Request) -> NodeOut:
        doc = await body_document(request)
        if not isinstance(doc, dict):
            raise ValidationError([Problem("body", "a node is a mapping")], "request")
        with svc.db.session() as s:
            row = pool.register_node(s, who, doc, svc.clock())
            return _node_out(s, row)

    @app.post("/api/v1/nodes/{node_id}/drain", tags=["pool"])
    def nodes_drain(node_id: str, who: Who) -> NodeOut:
        with svc.db.session() as s:
            return _node_out(s, pool.drain_node(s, who, node_id, True, svc.clock()))

    @app.post("/api/v1/nodes/{node_id}/undrain", tags=["pool"])
    def nodes_undrain(node_id: str, who: Who) -> NodeOut:
        with svc.db.session() as s:
            return _node_out(s, pool.drain_node(s, who, node_id, False, svc.clock()))

    @app.delete("/api/v1/nodes/{node_id}", status_code=204, tags=["pool"])
    def nodes_remove(node_id: str, who: Who) -> Response:
        with svc.db.session() as s:
            pool.remove_node(s, who, node_id, svc.clock())
        return Response(status_code=204)

    @app.post("/api/v1/pool/drain", tags=["pool"])
    def pool_drain(body: DrainIn, who: Who) -> DrainOut:
        grace = float(getattr(svc.policy, "grace_s", 300.0))
        with svc.db.session() as s:
            return DrainOut(**pool.drain_many(s, who, body.vendor, body.model, grace, svc.clock()))

    @app.get("/api/v1/datasets", tags=["pool"])
    def datasets(who: Who) -> list[DatasetOut]:
        with svc.db.session() as s:
            return [DatasetOut.of(d) for d in pool.datasets(s, who)]

    @app.post("/api/v1/datasets", status_code=201, tags=["pool"], openapi_extra=_DOCUMENT_BODY)
    async def datasets_create(who: Who, request: Request) -> DatasetOut:
        doc = await body_document(request)
        if not isinstance(doc, dict):
            raise ValidationError([Problem("body", "a dataset is a mapping")], "request")
        with svc.db.session() as s:
            return DatasetOut.of(pool.create_dataset(s, who, doc, svc.clock()))

    @app.get("/api/v1/shares", tags=["pool"])
    def shares(who: Who) -> list[ShareOut]:
        with svc.db.session() as s:
            _, _, snap = pool.view(s, svc.clock())
            return [ShareOut(**x) for x in pool.shares(snap)]

    @app.put("/api/v1/shares/{member}/{model}", tags=["pool"])
    def shares_set(member: str, model: str, body: ShareLimitsIn, who: Who) -> ShareOut:
        with svc.db.session() as s:
            pool.set_share_limits(
                s, who, member, model, body.borrowing_limit, body.lending_limit, svc.clock()
            )
        with svc.db.session() as s:
            _, _, snap = pool.view(s, svc.clock())
            for x in pool.shares(snap):
                if x["member"] == member and x["model"] == model:
                    return ShareOut(**x)
        return ShareOut(
            member=member,
            model=model,
            nominal=0,
            used=0,
            borrowing_limit=body.borrowing_limit,
            lending_limit=body.lending_limit,
        )

    # -- jobs ------------------------------------------------------------------------------
    @app.post("/api/v1/jobs", status_code=201, tags=["jobs"], openapi_extra=_DOCUMENT_BODY)
    async def jobs_submit(who: Who, request: Request) -> list[JobOut]:
        who.require_writer("submit jobs")
        doc = await body_document(request)
        items = doc.get("jobs") if isinstance(doc, dict) and "jobs" in doc else [doc]
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and isinstance(item.get("member"), str):
                who.require_member(item["member"], "submit jobs")
        with svc.db.session() as s:
            alliance, _ = read_alliance(s)
            rows = jobs.submit(s, alliance, doc, who.name, svc.clock(), svc.vault)
            return [JobOut.of(r, who) for r in rows]

    @app.get("/api/v1/jobs", tags=["jobs"])
    def jobs_list(
        who: Who,
        member: Annotated[list[str] | None, Query()] = None,
        phase: Annotated[list[str] | None, Query()] = None,
        after: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
        limit: Annotated[int, Query(ge=1, le=jobs.MAX_PAGE)] = 100,
    ) -> JobPage:
        wanted = set(member) if member else None
        if not (who.admin or who.role.value == "viewer"):
            wanted = {who.member or ""} if wanted is None else wanted & {who.member or ""}
        with svc.db.session() as s:
            page = jobs.list_jobs(s, wanted, set(phase) if phase else None, after, limit)
            return JobPage(
                items=[JobOut.of(r, who) for r in page.items],
                total=page.total,
                next_after=page.next_after,
            )

    def _visible_job(s: Any, who: Principal, job_id: str) -> Any:
        row = jobs.get(s, job_id)
        if not who.can_see_job_metadata(row.member):
            raise NotFoundError(f"no job {job_id!r}")  # do not reveal other members' jobs
        return row

    @app.get("/api/v1/jobs/{job_id}", tags=["jobs"])
    def jobs_get(job_id: str, who: Who) -> JobOut:
        with svc.db.session() as s:
            return JobOut.of(_visible_job(s, who, job_id), who)

    @app.post("/api/v1/jobs/{job_id}/cancel", tags=["jobs"])
    def jobs_cancel(job_id: str, who: Who) -> JobOut:
        with svc.db.session() as s:
            row = _visible_job(s, who, job_id)
            who.require_member(row.member, "cancel jobs")
            return JobOut.of(jobs.cancel(s, job_id, who.name, svc.clock()), who)

    @app.get("/api/v1/jobs/{job_id}/logs", tags=["jobs"])
    def jobs_logs(
        job_id: str,
        who: Who,
        attempt: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
        offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    ) -> Response:
        with svc.db.session() as s:
            row = _visible_job(s, who, job_id)
            if not who.can_read_member(row.member):
                raise PermissionDeniedError(f"{who.name} may not read logs of {row.member!r}")
            n = attempt or row.attempt
            done = Phase(row.phase).terminal
        data = svc.executor.logs(JobId(job_id), n, offset) if n else b""
        return Response(
            data,
            media_type="text/plain; charset=utf-8",
            headers={
                "X-Next-Offset": str(offset + len(data)),
                "X-Attempt": str(n),
                "X-Job-Done": "true" if done else "false",
            },
        )

    @app.get("/api/v1/queue", tags=["jobs"])
    def queue(who: Who) -> list[QueueEntry]:
        with svc.db.session() as s:
            entries = pool.queue(s, svc.policy, svc.clock())
        if not (who.admin or who.role.value == "viewer"):
            entries = [e for e in entries if e["member"] == who.member]
        return [QueueEntry(**e) for e in entries]

    # -- ledger ----------------------------------------------------------------------------
    @app.get(
        "/api/v1/ledger/statement",
        tags=["ledger"],
        responses={200: {"content": {"text/csv": {}}}},
    )
    def ledger_statement(
        who: Who,
        member: Annotated[str, Query(max_length=64)],
        period: Annotated[str, Query(max_length=16, description="a month: 2026-11")],
        book: Annotated[str, Query(max_length=128)] = "real",
        format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
    ) -> Any:
        with svc.db.session() as s:
            st = ledger.statement(s, who, member, period, book)
        if format == "csv":
            return Response(ledger.statement_csv(st), media_type="text/csv")
        return st.to_json()

    @app.get("/api/v1/ledger/verify", tags=["ledger"])
    def ledger_verify(who: Who, book: Annotated[str, Query(max_length=128)] = "real") -> Any:
        with svc.db.session() as s:
            c, head = ledger.check(s, who, book)
        return {
            "book": book,
            "head": head,
            "records": c.records,
            "ok": c.ok,
            "first_bad": c.first_bad,
            "reason": c.reason,
        }

    return app
