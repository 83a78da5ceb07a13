"""What made a hub revision: its commits, and the jobs (or federated runs) whose runs
committed them, with what each read, ran on, ran (its code revision) and used (NU-hours from
the ledger's real book). Another member's job is shown by its id and member only."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from suanli.ledger.record import Kind
from suanli.model.job import CodeRevision
from suanli.service.auth import Principal
from suanli.service.hub import CommitView, commits_of, find, resolve
from suanli.store.codec import code_from_json, placement_from_json
from suanli.store.ledger_rows import REAL
from suanli.store.snapshot import FEDERATED
from suanli.store.tables import JobRow, LedgerRow


@dataclass(frozen=True)
class JobLineage:
    """A job that committed to a revision's history. ``shown``: whether the caller may see
    its details (its member's users, admins and viewers); otherwise only its id and member."""

    job: str
    member: str
    shown: bool
    phase: str = ""
    datasets: list[str] = field(default_factory=list)
    model: str | None = None
    nodes: list[str] = field(default_factory=list)
    devices: int = 0
    entrypoint: str = ""
    working_dir: str | None = None
    #: the code it ran (None: its job did not say)
    code: CodeRevision | None = None
    #: NU-hours the ledger's real book holds for it, in all and by provider
    nu_hours: float = 0.0
    by_provider: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Lineage:
    repo: str
    kind: str
    revision: str
    sha: str
    commits: list[CommitView]
    jobs: list[JobLineage]


def lineage(s: Session, who: Principal | None, kind: str, repo_id: str, revision: str) -> Lineage:
    """What made a revision: its commits, the jobs whose runs made them, and what each job
    read, ran on and used (from its spec, its placement and the ledger)."""
    row = find(s, who, kind, repo_id)
    sha = resolve(s, row, revision)
    commits = [
        CommitView(c.sha, c.parent, c.summary, c.author, c.created_at, c.job)
        for c in commits_of(s, sha)
    ]
    ids = sorted({c.job for c in commits if c.job is not None})
    jobs = [_job_lineage(s, who, j) for j in ids]
    return Lineage(repo_id, kind, revision, sha, commits, jobs)


def _job_lineage(s: Session, who: Principal | None, job: str) -> JobLineage:
    row = s.scalars(select(JobRow).where(JobRow.id == job)).first()
    if row is None:
        return JobLineage(job, "", False)
    if who is None or not who.can_see_job_metadata(row.member):
        return JobLineage(job, row.member, False)
    spec = row.spec
    ids, datasets = [job], list(spec.get("datasets") or [])
    placements = [placement_from_json(row.placement)] if row.placement else []
    if row.kind == FEDERATED:  # what its parts read, ran on and used
        ids += [p["part"] for p in spec["participants"]]
        datasets = [p["dataset"] for p in spec["participants"]]
        parts = s.scalars(select(JobRow).where(JobRow.id.in_(ids[1:])))
        placements += [placement_from_json(p.placement) for p in parts if p.placement]
    used = s.execute(
        select(LedgerRow.provider, func.sum(LedgerRow.units))
        .where(LedgerRow.book == REAL, LedgerRow.job.in_(ids), LedgerRow.kind == Kind.USAGE.value)
        .group_by(LedgerRow.provider)
    ).all()
    by_provider = {str(p): round(float(u or 0.0), 6) for p, u in used}
    runtime = spec.get("runtime_env") or {}
    code = spec.get("code")
    if code is None and spec.get("group"):  # a federated run's part runs its run's code
        run = s.scalars(select(JobRow).where(JobRow.id == spec["group"][0])).first()
        code = run.spec.get("code") if run is not None else None
    return JobLineage(
        job=job,
        member=row.member,
        shown=True,
        phase=row.phase,
        datasets=datasets,
        model=", ".join(sorted({p.model for p in placements})) or None,
        nodes=[n for p in placements for n in p.nodes],
        devices=sum(p.devices for p in placements),
        entrypoint=str(spec.get("entrypoint") or ""),
        working_dir=str(runtime["working_dir"]) if runtime.get("working_dir") else None,
        code=code_from_json(code),
        nu_hours=round(sum(by_provider.values()), 6),
        by_provider=by_provider,
    )
