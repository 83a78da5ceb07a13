"""Service functions for jobs: submit, read, list, cancel. Each is one transaction."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from suanli.errors import ConflictError, NotFoundError, Problem, ValidationError
from suanli.model.alliance import Alliance
from suanli.model.ids import JobId
from suanli.model.job import Phase
from suanli.service.audit import record
from suanli.service.auth import Principal
from suanli.service.vault import Vault
from suanli.spec.job_file import parse_jobs
from suanli.store.codec import spec_to_json
from suanli.store.tables import JobRow

MAX_PAGE = 1000


@dataclass(frozen=True)
class Page:
    items: list[JobRow]
    total: int
    next_after: int | None


def submit(
    s: Session,
    alliance: Alliance,
    document: Any,
    actor: str,
    now: float,
    vault: Vault | None = None,
) -> list[JobRow]:
    """Validate a job document (one job or ``{jobs: [...]}``) against the alliance and queue
    every job in it, or none. A job without ``id`` gets ``MEMBER-XXXXXXXX`` (random hex). Its
    secrets are sealed by ``vault`` and kept apart from the spec."""
    specs = parse_jobs(document, "job", alliance)
    items = _items(document)
    sealed: list[str | None] = []
    for k, (sp, item) in enumerate(zip(specs, items, strict=True)):
        if not sp.secrets:
            sealed.append(None)
            continue
        if vault is None:
            where = f"jobs.{k}.secrets" if len(items) > 1 else "secrets"
            raise ValidationError([Problem(where, "this server keeps no secrets")], "job")
        sealed.append(vault.seal({str(n): str(v) for n, v in item["secrets"].items()}))
    given_ids = [isinstance(i, dict) and i.get("id") is not None for i in items]
    given_names = [isinstance(i, dict) and bool(i.get("name")) for i in items]
    fresh = []
    for parsed, has_id, has_name in zip(specs, given_ids, given_names, strict=True):
        if has_id:
            fresh.append(parsed)
            continue
        new_id = JobId(f"{parsed.member}-{secrets.token_hex(4)}")
        fresh.append(replace(parsed, id=new_id, name=parsed.name if has_name else new_id))
    specs = fresh
    ids = [sp.id for sp in specs]
    clashes = sorted(s.scalars(select(JobRow.id).where(JobRow.id.in_(ids))).all())
    if clashes:
        raise ConflictError(f"job id(s) already exist: {', '.join(clashes)}")
    rows = []
    for sp, secret in zip(specs, sealed, strict=True):
        row = JobRow(
            id=sp.id,
            member=sp.member,
            name=sp.name,
            spec=spec_to_json(sp),
            phase=Phase.PENDING.value,
            reason="submitted; waiting for the next scheduling pass",
            submitted_by=actor,
            submitted_at=now,
            secrets=secret,
        )
        s.add(row)
        record(s, now, actor, "job.submit", f"job/{row.id}", member=sp.member)
        rows.append(row)
    s.flush()
    return rows


#: what others see instead of a job's variables' values
HIDDEN = "(hidden)"


def visible_spec(row: JobRow, who: Principal) -> dict[str, Any]:
    """The job's spec as ``who`` may see it: the values of its ``env_vars`` only for its own
    member and alliance admins (secrets are never in the spec, only their names)."""
    spec = row.spec
    env = (spec.get("runtime_env") or {}).get("env_vars")
    if not env or who.can_read_member(row.member):
        return spec
    runtime = {**spec["runtime_env"], "env_vars": dict.fromkeys(env, HIDDEN)}
    return {**spec, "runtime_env": runtime}


def _items(document: Any) -> list[Any]:
    if isinstance(document, dict) and "jobs" in document:
        jobs = document["jobs"]
        return jobs if isinstance(jobs, list) else []
    return [document]


def get(s: Session, job_id: str) -> JobRow:
    row = s.scalars(select(JobRow).where(JobRow.id == job_id)).first()
    if row is None:
        raise NotFoundError(f"no job {job_id!r}")
    return row


def list_jobs(
    s: Session,
    members: set[str] | None = None,
    phases: set[str] | None = None,
    after: int = 0,
    limit: int = 100,
) -> Page:
    """Jobs in submit order; ``members`` limits to those members (None: all); ``after``: the
    ``seq`` the previous page ended at (keyset pagination, stable under inserts)."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError([Problem("limit", f"must be between 1 and {MAX_PAGE}")])
    bad = sorted(set(phases or ()) - {p.value for p in Phase})
    if bad:
        raise ValidationError([Problem("phase", f"unknown phase {bad[0]!r}")])
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
    return Page(items, s.scalar(count) or 0, items[-1].seq if more else None)


def cancel(s: Session, job_id: str, actor: str, now: float) -> JobRow:
    """A pending job is cancelled at once; a running one is stopped by the controller and
    ends CANCELLED. Cancelling a finished job is a conflict; cancelling twice is not."""
    row = get(s, job_id)
    phase = Phase(row.phase)
    if phase.terminal:
        if phase is Phase.CANCELLED:
            return row
        raise ConflictError(f"job {job_id!r} already ended {row.phase}")
    row.cancel_requested = True
    if phase is Phase.PENDING:
        row.phase = Phase.CANCELLED.value
        row.finished_at = now
        row.reason = f"cancelled by {actor}"
    else:
        row.stop_requested = True
        row.reason = f"cancel requested by {actor}; stopping"
    record(s, now, actor, "job.cancel", f"job/{row.id}", phase=phase.value)
    return row
