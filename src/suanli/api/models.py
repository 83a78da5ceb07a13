"""What the API returns and accepts: pydantic models, one per resource."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from suanli.service.auth import Principal
from suanli.service.jobs import visible_spec
from suanli.store.tables import AuditRow, DatasetRow, JobRow, NodeRow


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProblemOut(_Out):
    field: str
    message: str


class ErrorOut(_Out):
    error: str
    message: str
    problems: list[ProblemOut] = []


class JobOut(_Out):
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

    @classmethod
    def of(cls, r: JobRow, who: Principal) -> JobOut:
        return cls(
            id=r.id,
            member=r.member,
            name=r.name,
            phase=r.phase,
            reason=r.reason,
            attempt=r.attempt,
            preemptions=r.preemptions,
            exit_code=r.exit_code,
            submitted_by=r.submitted_by,
            submitted_at=r.submitted_at,
            started_at=r.started_at,
            finished_at=r.finished_at,
            placement=r.placement,
            spec=visible_spec(r, who),
        )


class JobPage(_Out):
    items: list[JobOut]
    total: int
    next_after: int | None


class QueueEntry(_Out):
    id: str
    member: str
    position: int
    priority: int
    count: int
    models: list[str]
    submitted_at: float
    reason: str


class NodeOut(_Out):
    id: str
    site: str
    member: str
    model: str
    devices: int
    used: int
    cpu: float
    memory_gb: float
    state: str
    #: ``up``, or ``down`` (its Ray node died or its site is unreachable), and why
    health: str
    health_reason: str | None

    @classmethod
    def of(cls, r: NodeRow, member: str, used: int) -> NodeOut:
        return cls(
            id=r.id,
            site=r.site,
            member=member,
            model=r.model,
            devices=r.devices,
            used=used,
            cpu=r.cpu,
            memory_gb=r.memory_gb,
            state=r.state,
            health=r.health,
            health_reason=r.health_reason,
        )


class MemberOut(_Out):
    id: str
    name: str
    kind: str
    tier: str
    weight: float
    entitled_nu: float
    used_nu: float
    pending: int


class SiteOut(_Out):
    id: str
    member: str
    region: str
    executor: str


class ShareOut(_Out):
    member: str
    model: str
    nominal: int
    borrowing_limit: int | None
    lending_limit: int | None
    used: int


class ShareLimitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    borrowing_limit: int | None = Field(default=None, ge=0, le=1_000_000)
    lending_limit: int | None = Field(default=None, ge=0, le=1_000_000)


class DatasetOut(_Out):
    id: str
    owner: str
    readers: list[str]
    residency_sites: list[str]
    residency_members: list[str]
    #: where its files lie, relative to DATA_ROOT/OWNER on the nodes of its sites
    path: str

    @classmethod
    def of(cls, r: DatasetRow) -> DatasetOut:
        return cls(
            id=r.id,
            owner=r.owner,
            readers=r.readers,
            residency_sites=r.residency_sites,
            residency_members=r.residency_members,
            path=r.path or r.id,
        )


class AuditOut(_Out):
    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, r: AuditRow) -> AuditOut:
        return cls(
            id=r.id, at=r.at, actor=r.actor, action=r.action, target=r.target, detail=r.detail
        )


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    role: str
    member: str | None = None
    #: the token stops working after this many days (default: never)
    expires_in_days: float | None = Field(default=None, gt=0, le=3650)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: the new token stops working after this many days (default: never)
    expires_in_days: float | None = Field(default=None, gt=0, le=3650)


class TokenOut(_Out):
    name: str
    token: str


class RevokedOut(_Out):
    name: str
    #: how many of its tokens were live
    revoked: int


class UserOut(_Out):
    name: str
    role: str
    member: str | None
    created_at: float
    #: live tokens (neither revoked nor expired)
    tokens: int
    #: when its last live token expires (None: never, or it has none)
    expires_at: float | None


class UserCreated(_Out):
    name: str
    role: str
    member: str | None
    token: str


class WhoAmI(_Out):
    name: str
    role: str
    member: str | None


class DrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vendor: str | None = Field(default=None, max_length=100)
    model: str | None = Field(default=None, max_length=100)


class DrainOut(_Out):
    nodes: list[str]
    moving: list[dict[str, Any]]
    staying: list[dict[str, Any]]
