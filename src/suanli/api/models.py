"""What the API returns and accepts: pydantic models, one per resource."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    """A response: read from the service's result objects' attributes."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)


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
    #: ``batch``, ``federated`` (a federated run) or ``part`` (one participant's part of one)
    kind: str = "batch"
    #: a part's federated run
    run: str | None = None
    #: a federated run's rounds and final model (its submitter, participants and admins)
    progress: dict[str, Any] | None = None


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
    executor: str = Field(description="the address of the site's own Ray cluster, or empty")
    engine: str = Field(description="slurm, ray (its own cluster) or server (the server's)")
    partition: str = Field(description="a Slurm site's partition, or empty")


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
    #: members whose federated runs may train on it without reading it
    federated_with: list[str] = []


class AuditOut(_Out):
    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


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


class HealthOut(_Out):
    status: str
    version: str
    #: what is wrong, when the status is not ``ok``
    problem: str | None = None
    #: ``controller`` (this server runs the pool), ``standby`` (another server's controller
    #: holds the lease), or none yet
    role: str | None = None


class WhoAmI(_Out):
    name: str
    role: str
    member: str | None


class DrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vendor: str | None = Field(default=None, max_length=100)
    model: str | None = Field(default=None, max_length=100)


class MoveOut(_Out):
    job: str
    #: the models it may move to
    to: list[str]


class StayOut(_Out):
    job: str
    reason: str


class DrainOut(_Out):
    nodes: list[str]
    moving: list[MoveOut]
    staying: list[StayOut]


class VerifyOut(_Out):
    book: str
    #: the hash of the book's last record (publish it when a period closes)
    head: str
    records: int
    ok: bool
    #: the sequence number of the first record that does not check, and why
    first_bad: int | None
    reason: str | None
