"""Who may do what: bearer tokens per user (only their SHA-256 is stored) and four roles.

- ``alliance-admin``: sees and changes everything (members, shares, nodes, users, any job).
- ``member-admin``: sees the pool, its member's jobs, logs and datasets and the datasets shared
  with it; changes its member's jobs, datasets, nodes and users.
- ``member-user``: sees the same; changes its member's jobs only.
- ``viewer``: sees the pool, the queue and job metadata (no logs, no datasets); changes nothing.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from suanli.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    Problem,
    UnauthenticatedError,
    ValidationError,
)
from suanli.service.audit import record
from suanli.store.tables import MemberRow, UserRow


class Role(StrEnum):
    ALLIANCE_ADMIN = "alliance-admin"
    MEMBER_ADMIN = "member-admin"
    MEMBER_USER = "member-user"
    VIEWER = "viewer"


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    member: str | None

    @property
    def admin(self) -> bool:
        return self.role is Role.ALLIANCE_ADMIN

    def can_read_member(self, member: str) -> bool:
        """Jobs and logs of ``member``."""
        return self.admin or self.member == member

    def can_see_job_metadata(self, member: str) -> bool:
        return self.admin or self.role is Role.VIEWER or self.member == member

    def require_books(self, member: str) -> None:
        """A member's ledger statement: alliance admins and viewers read every member's,
        members their own."""
        if not (self.admin or self.role is Role.VIEWER or self.member == member):
            raise PermissionDeniedError(
                f"{self.name} may not read the ledger statement of member {member!r}"
            )

    def require_member(self, member: str, what: str) -> None:
        if not (self.admin or self.member == member):
            raise PermissionDeniedError(f"{self.name} may not {what} of member {member!r}")

    def require_member_admin(self, member: str, what: str) -> None:
        if not (self.admin or (self.role is Role.MEMBER_ADMIN and self.member == member)):
            raise PermissionDeniedError(f"{self.name} may not {what} of member {member!r}")

    def require_admin(self, what: str) -> None:
        if not self.admin:
            raise PermissionDeniedError(f"only an alliance admin may {what}")

    def require_writer(self, what: str) -> None:
        if self.role is Role.VIEWER:
            raise PermissionDeniedError(f"a viewer may not {what}")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


#: how long a verified token is trusted without asking the database again (seconds)
TOKEN_TTL_S = 5.0
_verified: dict[str, tuple[float, Principal]] = {}
_verified_lock = threading.Lock()


def authenticate(s: Session, token: str | None) -> Principal:
    if not token:
        raise UnauthenticatedError("a bearer token is required (Authorization: Bearer TOKEN)")
    digest = token_hash(token)
    key = f"{id(s.get_bind())}:{digest}"
    now = time.monotonic()
    with _verified_lock:
        hit = _verified.get(key)
    if hit is not None and now - hit[0] < TOKEN_TTL_S:
        return hit[1]
    row = s.scalars(select(UserRow).where(UserRow.token_sha256 == digest)).first()
    if row is None:
        raise UnauthenticatedError("unknown or revoked token")
    who = Principal(row.name, Role(row.role), row.member)
    with _verified_lock:
        if len(_verified) > 10_000:
            _verified.clear()
        _verified[key] = (now, who)
    return who


def create_user(
    s: Session, by: Principal | None, name: str, role: str, member: str | None, now: float
) -> str:
    """A new user; returns its token (shown once, stored hashed). ``by`` None: bootstrap."""
    problems = []
    try:
        r = Role(role)
    except ValueError:
        problems.append(Problem("role", f"one of {', '.join(x.value for x in Role)}"))
        r = Role.VIEWER
    member_role = r in (Role.MEMBER_ADMIN, Role.MEMBER_USER)
    if member_role and not member:
        problems.append(Problem("member", f"required for role {r.value}"))
    if not member_role and member:
        problems.append(Problem("member", f"role {r.value} belongs to no member"))
    if problems:
        raise ValidationError(problems)
    if member and s.get(MemberRow, member) is None:
        raise NotFoundError(f"no member {member!r}")
    if by is not None:
        if member_role and member:
            by.require_member_admin(member, "create users")
        else:
            by.require_admin("create users without a member")
    if s.get(UserRow, name) is not None:
        raise ConflictError(f"user {name!r} already exists")
    token = secrets.token_urlsafe(32)
    s.add(
        UserRow(
            name=name, role=r.value, member=member, token_sha256=token_hash(token), created_at=now
        )
    )
    record(
        s,
        now,
        by.name if by else "bootstrap",
        "user.create",
        f"user/{name}",
        role=r.value,
        member=member,
    )
    return token
