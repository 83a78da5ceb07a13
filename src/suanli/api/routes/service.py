"""The service itself: health, the caller, metrics, the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse, RedirectResponse

from suanli import __version__
from suanli.api.deps import MAX_INT, Svc, Who
from suanli.api.models import AuditOut, HealthOut, WhoAmI
from suanli.service import pool
from suanli.service.metrics import CONTENT_TYPE
from suanli.service.pool import AuditView

router = APIRouter(tags=["service"])


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    """People who open the server's address land on the dashboard."""
    return RedirectResponse("/ui/", status_code=307)


@router.get("/healthz", responses={503: {"model": HealthOut}})
def healthz(svc: Svc) -> JSONResponse:
    """``ok``, or 503 with what is wrong (the database lost, the last write failed)."""
    problem = svc.health.fatal or svc.db.write_problem or svc.health.degraded
    body = HealthOut(
        status="failing" if problem else "ok",
        version=__version__,
        problem=problem,
        role=svc.health.role,
    )
    return JSONResponse(body.model_dump(), status_code=503 if problem else 200)


@router.get("/metrics", responses={200: {"content": {"text/plain": {}}}})
def metrics(svc: Svc, who: Who) -> Response:
    """Prometheus metrics (scrape with any user's token, a viewer's say)."""
    return Response(svc.metrics.exposition(), media_type=CONTENT_TYPE)


@router.get("/api/v1/whoami", response_model=WhoAmI)
def whoami(who: Who) -> WhoAmI:
    return WhoAmI(name=who.name, role=who.role.value, member=who.member)


@router.get("/api/v1/audit", response_model=list[AuditOut])
def audit(
    svc: Svc,
    who: Who,
    after: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditView]:
    with svc.db.session() as s:
        return pool.audit(s, who, after, limit)
