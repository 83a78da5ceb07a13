"""Jobs: submit, list, read, cancel, logs, and the queue."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from suanli.api.deps import (
    DOCUMENT_BODY,
    INLINE_JSON,
    MAX_INT,
    Credentials,
    Creds,
    Svc,
    Who,
    body_document,
)
from suanli.api.models import JobOut, JobPage
from suanli.api.models import QueueEntry as QueueEntryOut
from suanli.service import jobs, pool
from suanli.service.context import Service
from suanli.service.jobs import JobView
from suanli.service.pool import QueueEntry

router = APIRouter(prefix="/api/v1", tags=["jobs"])


@router.post("/jobs", status_code=201, response_model=list[JobOut], openapi_extra=DOCUMENT_BODY)
async def jobs_submit(svc: Svc, creds: Creds, request: Request) -> list[JobView]:
    doc = await body_document(request)
    if len(await request.body()) <= INLINE_JSON:
        # a small submission on SQLite runs here when it cannot wait for the database (no
        # one writes): a thread would cost more than the work (measured: a sixth of the rate)
        with svc.db.writer_if_free() as free:
            if free:
                return _submit(svc, creds, doc)
    return await run_in_threadpool(_submit, svc, creds, doc)


def _submit(svc: Service, creds: Credentials, doc: Any) -> list[JobView]:
    # the caller is checked in the same thread and transaction (one hop off the event loop)
    with svc.db.session() as s:
        return jobs.submit(s, creds.who(s, svc), doc, svc.clock(), svc.vault, svc.federation_host)


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
        return jobs.cancel(s, who, job_id, svc.clock(), svc.policy.grace_s)


@router.get("/jobs/{job_id}/logs")
def jobs_logs(
    job_id: str,
    svc: Svc,
    who: Who,
    attempt: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[int, Query(ge=1, le=jobs.MAX_LOG_CHUNK_BYTES)] = jobs.LOG_CHUNK_BYTES,
    tail: Annotated[int | None, Query(ge=0, le=MAX_INT)] = None,
) -> Response:
    """At most ``limit`` bytes of output from ``offset`` (or the last ``tail`` bytes);
    ``X-Next-Offset`` says where the next read starts, ``X-Log-Size`` how much there is, and
    ``X-Job-Done`` that nothing more will come."""
    with svc.db.session() as s:
        chunk = jobs.logs(s, who, svc.executor, job_id, attempt, offset, limit, tail)
    return Response(
        chunk.data,
        media_type="text/plain; charset=utf-8",
        headers={
            "X-Next-Offset": str(chunk.next_offset),
            "X-Attempt": str(chunk.attempt),
            "X-Job-Done": "true" if chunk.done else "false",
            "X-Log-Size": str(chunk.size),
        },
    )


@router.get("/queue", response_model=list[QueueEntryOut])
def queue(svc: Svc, who: Who) -> list[QueueEntry]:
    with svc.db.session() as s:
        return pool.queue(s, who, svc.policy, svc.clock())
