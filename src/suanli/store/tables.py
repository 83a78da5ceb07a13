"""The database tables: desired state (the alliance, submitted jobs), observed state (what the
executor reported) and the audit log. One row per alliance entity, so that nodes can be
registered, drained and removed one at a time; lists are JSON columns.

The schema is created and changed only by Alembic migrations (``store/migrations``); these
classes are what the code reads and writes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = String(64)
#: a 64-bit surrogate key (SQLite only autoincrements its INTEGER PRIMARY KEY)
BIGINT_ID = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    pass


class AllianceRow(Base):
    """The alliance itself: one row. ``revision`` grows with every change to the alliance's
    entities (members, sites, nodes and their states, shares, grants, datasets), so that a
    process can keep the parsed alliance until it changes."""

    __tablename__ = "alliance"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)
    revision: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")


class MemberRow(Base):
    __tablename__ = "members"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(20))
    tier: Mapped[str] = mapped_column(String(20))
    weight: Mapped[float] = mapped_column(Float, default=1.0)


class SiteRow(Base):
    __tablename__ = "sites"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    member: Mapped[str] = mapped_column(ForeignKey("members.id"))
    region: Mapped[str] = mapped_column(String(100), default="")
    executor: Mapped[str] = mapped_column(String(500), default="")
    #: a Slurm site's settings, as the alliance file's ``slurm`` entry (None: not Slurm)
    slurm: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True, default=None)


class NodeRow(Base):
    """``state``: ``active`` takes jobs; ``draining`` keeps its running jobs and takes no new
    ones. A removed node's row is deleted (the audit log keeps what it was). ``health`` is what
    the executor last said of the node: ``up``, or ``down`` (its Ray node died, or its site has
    not answered for longer than the timeout): a down node takes no jobs until it is up again."""

    __tablename__ = "nodes"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    site: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    model: Mapped[str] = mapped_column(String(64))
    devices: Mapped[int] = mapped_column(Integer)
    cpu: Mapped[float] = mapped_column(Float)
    memory_gb: Mapped[float] = mapped_column(Float)
    topology: Mapped[list[list[int]]] = mapped_column(JSON, default=list)
    calibrated_tflops: Mapped[float | None] = mapped_column(Float, nullable=True)
    state: Mapped[str] = mapped_column(String(20), default="active")
    health: Mapped[str] = mapped_column(String(20), default="up", server_default="up")
    health_reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
    health_since: Mapped[float | None] = mapped_column(Float, nullable=True)


class ShareRow(Base):
    __tablename__ = "shares"
    member: Mapped[str] = mapped_column(ForeignKey("members.id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    borrowing_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lending_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)


class GrantRow(Base):
    __tablename__ = "grants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    member: Mapped[str] = mapped_column(ForeignKey("members.id"))
    model: Mapped[str] = mapped_column(String(64))
    devices: Mapped[int] = mapped_column(Integer)
    donor: Mapped[str | None] = mapped_column(ForeignKey("members.id"), nullable=True)


class DatasetRow(Base):
    __tablename__ = "datasets"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    owner: Mapped[str] = mapped_column(ForeignKey("members.id"))
    readers: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: members whose federated runs may train on it without reading it
    federated_with: Mapped[list[str] | None] = mapped_column(JSON, nullable=True, default=list)
    residency_sites: Mapped[list[str]] = mapped_column(JSON, default=list)
    residency_members: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: where its files lie, relative to DATA_ROOT/OWNER ("": its id)
    path: Mapped[str] = mapped_column(String(500), default="", server_default="")


class JobRow(Base):
    """A job: its resolved spec (JSON), what is wanted of it and what was observed.

    ``seq`` is the submit order. ``attempt`` counts starts: the executor keys every run by
    ``(id, attempt)``, so that a start repeated after a crash is recognized, not run twice.
    ``stop_requested``: a preemption or cancellation was decided and not yet observed done;
    ``cancel_requested``: the user wants it gone (terminal CANCELLED once stopped).
    """

    __tablename__ = "jobs"
    seq: Mapped[int] = mapped_column(BIGINT_ID, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(ID, unique=True)
    member: Mapped[str] = mapped_column(ForeignKey("members.id"))
    name: Mapped[str] = mapped_column(String(200), default="")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    phase: Mapped[str] = mapped_column(String(20), default="PENDING")
    reason: Mapped[str] = mapped_column(Text, default="")
    placement: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: a pending job that reclaimed devices in the last pass: where it will run (the next
    #: pass holds those devices for it)
    reservation: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    preemptions: Mapped[int] = mapped_column(Integer, default=0)
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    stop_deadline: Mapped[float | None] = mapped_column(Float, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    submitted_by: Mapped[str] = mapped_column(String(64), default="")
    submitted_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: the current attempt's usage is in the ledger up to this time
    accounted_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: the job's secret values, encrypted (see :mod:`suanli.service.vault`); their names are
    #: in the spec
    secrets: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: how many of its runs in a row were lost (never seen to exit): past a limit it fails
    losses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: ``batch`` (a job the scheduler places), ``federated`` (a federated run: its SuperLink
    #: beside the control plane; the scheduler places its parts) or ``part`` (one
    #: participant's SuperNode)
    kind: Mapped[str] = mapped_column(String(20), default="batch", server_default="batch")
    #: a part's federated run
    run: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: a federated run's rounds and model as its run reported them (see
    #: :mod:`suanli.service.federation`)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: the phase a part ends in once its run has stopped (its federated run ended)
    concluded: Mapped[str | None] = mapped_column(String(20), nullable=True)

    __table_args__ = (
        Index("ix_jobs_phase_seq", "phase", "seq"),
        Index("ix_jobs_member_seq", "member", "seq"),
        Index("ix_jobs_kind_phase", "kind", "phase"),
        Index("ix_jobs_run", "run"),
    )


class AuditRow(Base):
    """Every change, who made it and what it was: append-only."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(BIGINT_ID, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_audit_target", "target"),)


class UserRow(Base):
    """A user. ``role``: alliance-admin, member-admin, member-user or viewer; ``member`` for
    the two member roles. Its bearer tokens are :class:`TokenRow` rows."""

    __tablename__ = "users"
    name: Mapped[str] = mapped_column(ID, primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    member: Mapped[str | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class TokenRow(Base):
    """A user's bearer token: only its SHA-256 is stored (a token is 256 random bits, so a
    fast hash is enough). It works until ``expires_at`` (None: no expiry) and not after
    ``revoked_at``; rotating a token revokes the user's others."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(BIGINT_ID, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(ForeignKey("users.name"))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (Index("ix_tokens_user", "user"),)


class SessionRow(Base):
    """A dashboard session: the browser's cookie holds a random id whose SHA-256 is the key
    (never the bearer token); ``csrf`` is the token every form of the session posts back.
    It ends at ``expires_at``, on sign-out, or when its user's tokens are revoked."""

    __tablename__ = "sessions"
    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user: Mapped[str] = mapped_column(ForeignKey("users.name"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_sessions_user", "user"),)


class LeaseRow(Base):
    """Who may act as ``name`` (the controller) until ``expires_at``. ``token`` grows with
    every change of holder: a fencing token. The holder renews it every step; another server
    takes it over once it has expired, and every write of the old holder fails from then on
    (each controller transaction first touches the row, holder and token checked)."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    token: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[float] = mapped_column(Float)


class LedgerRow(Base):
    """One ledger record (see :mod:`suanli.ledger.record`): append-only, hash-chained per
    book. ``member`` and ``provider`` are plain ids, not foreign keys: the books outlive the
    members and nodes they speak of."""

    __tablename__ = "ledger"
    seq: Mapped[int] = mapped_column(BIGINT_ID, primary_key=True, autoincrement=True)
    book: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    member: Mapped[str] = mapped_column(ID)
    provider: Mapped[str] = mapped_column(ID)
    model: Mapped[str] = mapped_column(String(64))
    devices: Mapped[int] = mapped_column(Integer)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    units: Mapped[float] = mapped_column(Float)
    job: Mapped[str | None] = mapped_column(ID, nullable=True)
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: a release's repo, tag, commit, licence and jobs (None for usage and capacity)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    prev: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_ledger_book_member_start", "book", "member", "start"),
        Index("ix_ledger_book_provider_start", "book", "provider", "start"),
        Index("ix_ledger_book_seq", "book", "seq"),
    )


class LedgerHeadRow(Base):
    """The last record of each book (the chain's head, locked by each append) and the time up
    to which its capacity has been recorded."""

    __tablename__ = "ledger_heads"
    book: Mapped[str] = mapped_column(String(128), primary_key=True)
    seq: Mapped[int] = mapped_column(BIGINT_ID, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    capacity_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: the longest record's duration (statements look that far back before their period)
    max_span: Mapped[float | None] = mapped_column(Float, nullable=True)


class HubRepoRow(Base):
    """A repo of the hub (see :mod:`suanli.service.hub`): a model or dataset owned by a
    member, named ``MEMBER/NAME``. ``visibility``: ``private`` (its member), ``members`` (and
    those in ``shared_with``), ``alliance`` (every user of the alliance) or ``public`` (anyone,
    without a token)."""

    __tablename__ = "hub_repos"
    id: Mapped[int] = mapped_column(BIGINT_ID, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    member: Mapped[str] = mapped_column(ForeignKey("members.id"))
    name: Mapped[str] = mapped_column(String(96))
    visibility: Mapped[str] = mapped_column(String(16))
    shared_with: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    #: a dataset's files leave only to its member's users and to runs placed at these sites
    #: (empty: no such rule)
    resident_sites: Mapped[list[str] | None] = mapped_column(JSON, nullable=True, default=list)

    __table_args__ = (Index("ux_hub_repos_name", "kind", "member", "name", unique=True),)


class HubCommitRow(Base):
    """A revision of a repo: its files are :class:`HubFileRow` rows (the whole tree, so that
    any revision is read without walking its history)."""

    __tablename__ = "hub_commits"
    sha: Mapped[str] = mapped_column(String(40), primary_key=True)
    repo: Mapped[int] = mapped_column(ForeignKey("hub_repos.id"))
    parent: Mapped[str | None] = mapped_column(String(40), nullable=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    #: the job whose run token made it (None: a person)
    job: Mapped[str | None] = mapped_column(ID, nullable=True)

    __table_args__ = (Index("ix_hub_commits_repo", "repo", "created_at"),)


class HubFileRow(Base):
    __tablename__ = "hub_files"
    commit: Mapped[str] = mapped_column(ForeignKey("hub_commits.sha"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    sha1: Mapped[str] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_hub_files_sha256", "sha256"),)


class HubRefRow(Base):
    """A branch (moved by each commit to it) or a tag (fixed) of a repo."""

    __tablename__ = "hub_refs"
    repo: Mapped[int] = mapped_column(ForeignKey("hub_repos.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    commit: Mapped[str] = mapped_column(ForeignKey("hub_commits.sha"))
