"""Jobs: submit, list, read, cancel, logs, and the queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from suanli.api.deps import DOCUMENT_BODY, MAX_INT, Svc, Who, body_document
from suanli.api.models import JobOut, JobPage
from suanli.api.models import QueueEntry as QueueEntryOut
from suanli.service import jobs, pool
from suanli.service.jobs import JobView
from suanli.service.pool import QueueEntry

router = APIRouter(prefix="/api/v1", tags=["jobs"])


@router.post("/jobs", status_code=201, response_model=list[JobOut], openapi_extra=DOCUMENT_BODY)
async def jobs_submit(svc: Svc, who: Who, request: Request) -> list[JobView]:
    doc = await body_document(request)
    with svc.db.session() as s:
        return jobs.submit(s, who, doc, svc.clock(), svc.vault)


@router.get("/jobs", response_model=JobPage)
def jobs_list(
    svc: Svc,
    who: Who,
    member: Annotated[list[str] | None, Query()] = None,
    phase: Annotated[list[str] | None, Query()] = None,
    after: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=jobs.MAX_PAGE)] = 100,
) -> jobs.JobPage:
    wanted = set(member) if member else None
    with svc.db.session() as s:
        return jobs.list_jobs(s, who, wanted, set(phase) if phase else None, after, limit)


@router.get("/jobs/{job_id}", response_model=JobOut)
def jobs_get(job_id: str, svc: Svc, who: Who) -> JobView:
    with svc.db.session() as s:
        return jobs.get(s, who, job_id)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def jobs_cancel(job_id: str, svc: Svc, who: Who) -> JobView:
    with svc.db.session() as s:
        return jobs.cancel(s, who, job_id, svc.clock())


@router.get("/jobs/{job_id}/logs")
def jobs_logs(
    job_id: str,
    svc: Svc,
    who: Who,
    attempt: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> Response:
    with svc.db.session() as s:
        chunk = jobs.logs(s, who, svc.executor, job_id, attempt, offset)
    return Response(
        chunk.data,
        media_type="text/plain; charset=utf-8",
        headers={
            "X-Next-Offset": str(chunk.next_offset),
            "X-Attempt": str(chunk.attempt),
            "X-Job-Done": "true" if chunk.done else "false",
        },
    )


@router.get("/queue", response_model=list[QueueEntryOut])
def queue(svc: Svc, who: Who) -> list[QueueEntry]:
    with svc.db.session() as s:
        return pool.queue(s, who, svc.policy, svc.clock())
