"""Service functions for jobs: submit, read, list, cancel, logs. Each takes the principal and
authorizes it; each is one transaction (the caller's session). A job's phase changes only in
:mod:`suanli.service.lifecycle`."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from suanli.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    Problem,
    ValidationError,
)
from suanli.executors.base import Executor
from suanli.model.federation import FederatedSpec
from suanli.model.ids import JobId
from suanli.model.job import JobSpec, Phase
from suanli.sched.policy import DEFAULT_GRACE_S
from suanli.service import federation, lifecycle
from suanli.service.auth import Principal
from suanli.service.vault import Vault
from suanli.spec.job_file import parse_specs
from suanli.store.alliance_rows import read_alliance
from suanli.store.codec import spec_to_json
from suanli.store.tables import JobRow

MAX_PAGE = 1000
#: the most jobs one request may submit
MAX_JOBS = 1000
#: the most a job's spec may hold, stored (its runtime environment, its entrypoint...)
MAX_SPEC_BYTES = 64 * 1024
#: what others see instead of a job's variables' values
HIDDEN = "(hidden)"


@dataclass(frozen=True)
class JobView:
    """A job as one principal may see it (the values of its ``env_vars`` hidden from anyone
    but its member and alliance admins; its secrets never in it, only their names)."""

    id: str
    member: str
    name: str
    phase: str
    reason: str
    attempt: int
    preemptions: int
    exit_code: int | None
    submitted_by: str
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    placement: dict[str, Any] | None
    spec: dict[str, Any]
    #: ``batch``, ``federated`` (a federated run) or ``part`` (a participant's part of one)
    kind: str = "batch"
    #: a part's federated run
    run: str | None = None
    #: a federated run's rounds (train and evaluation metrics, participants) and final model,
    #: for its submitter, its participants and alliance admins
    progress: dict[str, Any] | None = None

    @classmethod
    def of(cls, row: JobRow, who: Principal) -> JobView:
        return cls(
            id=row.id,
            member=row.member,
            name=row.name,
            phase=row.phase,
            reason=row.reason,
            attempt=row.attempt,
            preemptions=row.preemptions,
            exit_code=row.exit_code,
            submitted_by=row.submitted_by,
            submitted_at=row.submitted_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            placement=row.placement,
            spec=_visible_spec(row, who),
            kind=row.kind,
            run=row.run,
            progress=_visible_progress(row, who),
        )


@dataclass(frozen=True)
class JobPage:
    items: list[JobView]
    total: int
    next_after: int | None


@dataclass(frozen=True)
class LogChunk:
    """A run's output from ``offset``: the bytes, where the next read starts, which attempt,
    and whether the job has ended (no more will come)."""

    data: bytes
    next_offset: int
    attempt: int
    done: bool
    #: the output's size when it was read
    size: int = 0


#: how much of a run's output one read returns, unless asked for less (at most the maximum)
LOG_CHUNK_BYTES = 1 << 20
MAX_LOG_CHUNK_BYTES = 8 << 20


def _visible_spec(row: JobRow, who: Principal) -> dict[str, Any]:
    spec = row.spec
    env = (spec.get("runtime_env") or {}).get("env_vars")
    if not env or who.can_read_member(row.member):
        return spec
    runtime = {**spec["runtime_env"], "env_vars": dict.fromkeys(env, HIDDEN)}
    return {**spec, "runtime_env": runtime}


def _visible_progress(row: JobRow, who: Principal) -> dict[str, Any] | None:
    if row.kind != "federated":
        return None
    if not (who.admin or who.member == row.member or _participates(row, who)):
        return None
    progress = row.progress or {}
    return {
        "rounds": progress.get("rounds", []),
        "model": progress.get("model"),
        "attempt": progress.get("attempt"),
    }


def _items(document: Any) -> list[Any]:
    if isinstance(document, dict) and "jobs" in document:
        jobs = document["jobs"]
        if not isinstance(jobs, list):
            raise ValidationError([Problem("jobs", "expected a list of jobs")], "job")
        return jobs
    return [document]


def submit(
    s: Session,
    who: Principal,
    document: Any,
    now: float,
    vault: Vault | None = None,
    federation_host: str = "127.0.0.1",
) -> list[JobView]:
    """Validate a job document (one job or ``{jobs: [...]}``, at most :data:`MAX_JOBS`)
    against the alliance and queue every job in it, or none: jobs of ``who``'s own member only
    (alliance admins: any). A job without ``id`` gets ``MEMBER-`` and 16 random hex digits; an
    id a member's user chooses begins with ``MEMBER-`` (so that a conflict can only be with
    the member's own jobs, never reveal another member's). Its secrets are sealed by ``vault``
    and kept apart from the spec; its spec, stored, is at most :data:`MAX_SPEC_BYTES`.

    A federated job (``kind: federated``) is stored as its run and one part per participant
    (:mod:`suanli.service.federation`; its SuperLink listens on ``federation_host``); the
    view returned is the run's, which needs ``vault`` (its keys are sealed)."""
    who.require_writer("submit jobs")
    items = _items(document)
    if not items:
        raise ValidationError([Problem("jobs", "no job given")], "job")
    if len(items) > MAX_JOBS:
        raise ValidationError([Problem("jobs", f"at most {MAX_JOBS} jobs a request")], "job")
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("member"), str):
            who.require_member(item["member"], "submit jobs")
    specs = parse_specs(document, "job", read_alliance(s)[0])
    _check_ids_and_sizes(who, specs, items)
    sealed: list[str | None] = []
    for k, (sp, item) in enumerate(zip(specs, items, strict=True)):
        federated = isinstance(sp, FederatedSpec)
        if isinstance(sp, JobSpec) and not sp.secrets:
            sealed.append(None)
            continue
        if vault is None:
            field, why = (
                ("kind", "this server keeps no secrets, and a federated run's keys are sealed")
                if federated
                else ("secrets", "this server keeps no secrets")
            )
            raise ValidationError([Problem(_where(k, items, field), why)], "job")
        sealed.append(
            None if federated else vault.seal({str(n): str(v) for n, v in item["secrets"].items()})
        )
    fresh = _with_ids(s, specs, items)
    rows = []
    for sp, secret in zip(fresh, sealed, strict=True):
        if isinstance(sp, FederatedSpec):
            assert vault is not None
            made = federation.prepare(sp, federation_host)
            rows.append(lifecycle.create(s, made.run, who.name, now, vault.seal(made.run_secrets)))
            for part, keys in made.parts:
                lifecycle.create(s, part, who.name, now, vault.seal(keys), run=sp.id)
        else:
            rows.append(lifecycle.create(s, sp, who.name, now, secret))
    try:
        s.flush()
    except IntegrityError:  # the same id submitted at the same moment by another request
        raise ConflictError("a job with one of these ids was just submitted") from None
    return [JobView.of(r, who) for r in rows]


def _where(k: int, items: list[Any], name: str) -> str:
    return f"jobs.{k}.{name}" if len(items) > 1 else name


def _check_ids_and_sizes(
    who: Principal, specs: list[JobSpec | FederatedSpec], items: list[Any]
) -> None:
    problems = []
    for k, (sp, item) in enumerate(zip(specs, items, strict=True)):
        given = isinstance(item, dict) and item.get("id") is not None
        if given and not who.admin and not sp.id.startswith(f"{sp.member}-"):
            why = f"a job id chosen by a member's user begins with its member: {sp.member}-..."
            problems.append(Problem(_where(k, items, "id"), why))
        if isinstance(sp, FederatedSpec):
            continue  # (its schema bounds it)
        size = len(json.dumps(spec_to_json(sp)))
        if size > MAX_SPEC_BYTES:
            why = f"the job spec is {size:,} bytes, over the {MAX_SPEC_BYTES:,} one may hold"
            problems.append(Problem(_where(k, items, "runtime_env"), why))
    if problems:
        raise ValidationError(problems, "job")


def _with_ids(
    s: Session, specs: list[JobSpec | FederatedSpec], items: list[Any]
) -> list[JobSpec | FederatedSpec]:
    """The specs with their ids: given ones must be free (409), made ones are drawn again on
    the (astronomically unlikely) clash."""
    given = {k for k, item in enumerate(items) if isinstance(item, dict) and item.get("id")}
    out = list(specs)
    for _ in range(5):
        for k, parsed in enumerate(out):
            if k not in given and parsed.id == specs[k].id:  # (not drawn yet, or clashed)
                new_id = JobId(f"{parsed.member}-{secrets.token_hex(8)}")
                named = isinstance(items[k], dict) and bool(items[k].get("name"))
                out[k] = replace(parsed, id=new_id, name=parsed.name if named else new_id)
        ids = [sp.id for sp in out]
        taken = set(s.scalars(select(JobRow.id).where(JobRow.id.in_(ids))).all())
        mine = sorted(sp.id for k, sp in enumerate(out) if k in given and sp.id in taken)
        if mine:
            raise ConflictError(f"job id(s) already exist: {', '.join(mine)}")
        if not taken:
            return out
        out = [specs[k] if sp.id in taken else sp for k, sp in enumerate(out)]
    raise ConflictError("could not draw free job ids")


def _row(s: Session, job_id: str) -> JobRow | None:
    return s.scalars(select(JobRow).where(JobRow.id == job_id)).first()


def _visible(s: Session, who: Principal, job_id: str) -> JobRow:
    """The job, if ``who`` may see it; another member's job is not found (its existence is
    not revealed)."""
    row = _row(s, job_id)
    if row is None or not (who.can_see_job_metadata(row.member) or _participates(row, who)):
        raise NotFoundError(f"no job {job_id!r}")
    return row


def _participates(row: JobRow, who: Principal) -> bool:
    """Whether ``who`` is of a member taking part in the federated run ``row``."""
    if row.kind != "federated" or who.member is None:
        return False
    return any(p["member"] == who.member for p in row.spec.get("participants", ()))


def get(s: Session, who: Principal, job_id: str) -> JobView:
    return JobView.of(_visible(s, who, job_id), who)


def list_jobs(
    s: Session,
    who: Principal,
    members: set[str] | None = None,
    phases: set[str] | None = None,
    after: int = 0,
    limit: int = 100,
) -> JobPage:
    """Jobs in submit order that ``who`` may see, of ``members`` (None: all of those);
    ``after``: the ``seq`` the previous page ended at (keyset pagination, stable under
    inserts)."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError([Problem("limit", f"must be between 1 and {MAX_PAGE}")])
    bad = sorted(set(phases or ()) - {p.value for p in Phase})
    if bad:
        raise ValidationError([Problem("phase", f"unknown phase {bad[0]!r}")])
    members = who.visible_members(members)
    q = select(JobRow)
    count = select(func.count()).select_from(JobRow)
    if members is not None:
        q = q.where(JobRow.member.in_(members))
        count = count.where(JobRow.member.in_(members))
    if phases:
        q = q.where(JobRow.phase.in_(phases))
        count = count.where(JobRow.phase.in_(phases))
    items = list(s.scalars(q.where(JobRow.seq > after).order_by(JobRow.seq).limit(limit + 1)))
    more = len(items) > limit
    items = items[:limit]
    return JobPage(
        [JobView.of(r, who) for r in items], s.scalar(count) or 0, items[-1].seq if more else None
    )


def cancel(
    s: Session, who: Principal, job_id: str, now: float, grace_s: float = DEFAULT_GRACE_S
) -> JobView:
    """A pending job is cancelled at once, for good; a running one is stopped by the controller
    (SIGTERM, then ``grace_s`` to checkpoint and exit) and ends CANCELLED. Cancelling a
    finished job is a conflict; cancelling twice is not."""
    row = _visible(s, who, job_id)
    who.require_member(row.member, "cancel jobs")
    done = lifecycle.cancel(s, row, who.name, now, grace_s)
    if not done and row.phase != Phase.CANCELLED.value:
        raise ConflictError(f"job {job_id!r} already ended {row.phase}")
    return JobView.of(row, who)


def logs_readable(who: Principal, job: JobView) -> bool:
    """Whether ``who`` may read the job's output: its member's users and alliance admins."""
    return who.can_read_member(job.member)


def logs(
    s: Session,
    who: Principal,
    executor: Executor,
    job_id: str,
    attempt: int | None = None,
    offset: int = 0,
    limit: int = LOG_CHUNK_BYTES,
    tail: int | None = None,
) -> LogChunk:
    """At most ``limit`` bytes of a run's output from byte ``offset``, or from ``tail`` bytes
    before its end (the latest attempt by default): its member's users and alliance admins
    only. Nothing more will come once ``done``: the job has ended and this read reached the
    end."""
    row = _visible(s, who, job_id)
    if not logs_readable(who, JobView.of(row, who)):
        raise PermissionDeniedError(f"{who.name} may not read logs of {row.member!r}")
    n = attempt or row.attempt
    ended = Phase(row.phase).terminal
    if not n:
        return LogChunk(b"", offset, n, ended, 0)
    size = executor.log_size(JobId(job_id), n)
    if tail is not None:
        offset = max(0, size - tail)
    limit = max(1, min(limit, MAX_LOG_CHUNK_BYTES))
    data = executor.logs(JobId(job_id), n, offset, limit)
    size = max(size, offset + len(data))
    return LogChunk(data, offset + len(data), n, ended and offset + len(data) >= size, size)
