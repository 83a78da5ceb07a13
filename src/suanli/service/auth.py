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
import time
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import delete, select
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
from suanli.spec.common import did_you_mean
from suanli.store.tables import MemberRow, SessionRow, TokenRow, UserRow


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
    #: the job whose run token this is (None: a user's token or session)
    job: str | None = None

    @property
    def admin(self) -> bool:
        return self.role is Role.ALLIANCE_ADMIN

    def can_read_member(self, member: str) -> bool:
        """Jobs and logs of ``member``."""
        return self.admin or self.member == member

    @property
    def sees_all_members(self) -> bool:
        """Alliance admins and viewers see every member's jobs' metadata and queue."""
        return self.admin or self.role is Role.VIEWER

    def can_see_job_metadata(self, member: str) -> bool:
        return self.sees_all_members or self.member == member

    def visible_members(self, wanted: set[str] | None) -> set[str] | None:
        """Of the members ``wanted`` (None: all), those whose jobs this principal may see
        (None: all of them)."""
        if self.sees_all_members:
            return wanted
        own = {self.member or ""}
        return own if wanted is None else wanted & own

    def require_books(self, member: str) -> None:
        """A member's ledger statement: alliance admins and viewers read every member's,
        members their own."""
        if not self.can_see_job_metadata(member):
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


#: the longest life a token may be given (seconds; ten years)
MAX_TOKEN_LIFE_S = 10 * 365 * 86400.0
#: how long a dashboard session lasts
SESSION_LIFE_S = 12 * 3600.0
#: the dashboard session's cookie (it authorizes reads only)
SESSION_COOKIE = "suanli_session"


def _principal(s: Session, user: str) -> Principal:
    row = s.get(UserRow, user)
    if row is None:
        raise UnauthenticatedError("unknown or revoked token")
    return Principal(row.name, Role(row.role), row.member)


def authenticate(s: Session, token: str | None, now: float | None = None) -> Principal:
    """The user of a bearer token. Asked of the database every time: a revoked or expired
    token stops working at the next request."""
    if not token:
        raise UnauthenticatedError("a bearer token is required (Authorization: Bearer TOKEN)")
    at = time.time() if now is None else now
    row = s.scalars(select(TokenRow).where(TokenRow.sha256 == token_hash(token))).first()
    if row is None or row.revoked_at is not None:
        raise UnauthenticatedError("unknown or revoked token")
    if row.expires_at is not None and row.expires_at <= at:
        raise UnauthenticatedError("the token has expired: ask an admin to rotate it")
    return _principal(s, row.user)


def _issue(s: Session, user: str, now: float, expires_in_s: float | None) -> str:
    if expires_in_s is not None and not 0 < expires_in_s <= MAX_TOKEN_LIFE_S:
        raise ValidationError(
            [Problem("expires_in_days", f"between 0 and {MAX_TOKEN_LIFE_S / 86400:.0f} days")]
        )
    token = secrets.token_urlsafe(32)
    s.add(
        TokenRow(
            user=user,
            sha256=token_hash(token),
            created_at=now,
            expires_at=None if expires_in_s is None else now + expires_in_s,
        )
    )
    return token


def create_user(
    s: Session,
    by: Principal | None,
    name: str,
    role: str,
    member: str | None,
    now: float,
    expires_in_s: float | None = None,
) -> str:
    """A new user; returns its token (shown once, stored hashed). ``by`` None: bootstrap."""
    problems = []
    try:
        r = Role(role)
    except ValueError:
        roles = [x.value for x in Role]
        hint = did_you_mean(role, roles)
        problems.append(Problem("role", f"unknown role {role!r}{hint} (one of {', '.join(roles)})"))
        r = None
    member_role = r in (Role.MEMBER_ADMIN, Role.MEMBER_USER)
    if r is not None and member_role and not member:
        problems.append(Problem("member", f"required for role {r.value}"))
    if r is not None and not member_role and member:
        problems.append(Problem("member", f"role {r.value} belongs to no member"))
    if problems or r is None:
        raise ValidationError(problems)
    if member and s.get(MemberRow, member) is None:
        hint = did_you_mean(member, s.scalars(select(MemberRow.id)).all())
        raise ValidationError([Problem("member", f"no member {member!r}{hint}")])
    if by is not None:
        if member_role and member:
            by.require_member_admin(member, "create users")
        else:
            by.require_admin("create users without a member")
    if s.get(UserRow, name) is not None:
        raise ConflictError(f"user {name!r} already exists")
    s.add(UserRow(name=name, role=r.value, member=member, created_at=now))
    s.flush()
    token = _issue(s, name, now, expires_in_s)
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


@dataclass(frozen=True)
class UserView:
    name: str
    role: str
    member: str | None
    created_at: float
    #: live tokens (neither revoked nor expired)
    tokens: int
    #: when the last live token expires (None: one never does, or there is none)
    expires_at: float | None


def _manageable(s: Session, by: Principal, name: str, what: str) -> UserRow:
    """The user ``name``, if ``by`` may manage it: alliance admins everyone, member admins
    their member's users, and everyone themselves; others do not learn whether it exists."""
    row = s.get(UserRow, name)
    if row is not None and (
        by.admin
        or by.name == name
        or (by.role is Role.MEMBER_ADMIN and row.member is not None and row.member == by.member)
    ):
        return row
    if row is None or not (by.admin or by.role is Role.MEMBER_ADMIN):
        raise NotFoundError(f"no user {name!r}")
    raise PermissionDeniedError(f"{by.name} may not {what} of user {name!r}")


def list_users(s: Session, by: Principal, now: float) -> list[UserView]:
    """Alliance admins see every user, member admins their member's; others themselves."""
    q = select(UserRow).order_by(UserRow.name)
    if not by.admin:
        if by.role is Role.MEMBER_ADMIN and by.member:
            q = q.where(UserRow.member == by.member)
        else:
            q = q.where(UserRow.name == by.name)
    out = []
    for u in s.scalars(q):
        live = [
            t
            for t in s.scalars(select(TokenRow).where(TokenRow.user == u.name))
            if t.revoked_at is None and (t.expires_at is None or t.expires_at > now)
        ]
        ends = [t.expires_at for t in live]
        out.append(
            UserView(
                u.name,
                u.role,
                u.member,
                u.created_at,
                len(live),
                None if not ends or None in ends else max(e for e in ends if e is not None),
            )
        )
    return out


def _revoke_all(s: Session, user: str, now: float) -> int:
    n = 0
    for t in s.scalars(select(TokenRow).where(TokenRow.user == user)):
        if t.revoked_at is None:
            t.revoked_at = now
            n += 1
    s.execute(delete(SessionRow).where(SessionRow.user == user))
    return n


def revoke(s: Session, by: Principal, name: str, now: float) -> int:
    """Revoke every token of ``name`` and end its dashboard sessions, at once. Returns how
    many tokens were live."""
    _manageable(s, by, name, "revoke the tokens")
    n = _revoke_all(s, name, now)
    record(s, now, by.name, "user.revoke", f"user/{name}", tokens=n)
    return n


def rotate(
    s: Session, by: Principal, name: str, now: float, expires_in_s: float | None = None
) -> str:
    """A new token for ``name``; its others (and its sessions) stop working. Returns it."""
    _manageable(s, by, name, "rotate the token")
    _revoke_all(s, name, now)
    token = _issue(s, name, now, expires_in_s)
    record(s, now, by.name, "user.rotate", f"user/{name}")
    return token


# -- dashboard sessions --------------------------------------------------------------------
@dataclass(frozen=True)
class WebSession:
    """A dashboard session: the cookie's value (``id``), the token its forms carry, when it
    ends, and whose it is."""

    id: str
    csrf: str
    expires_at: float
    who: Principal


def open_session(s: Session, token: str, now: float) -> WebSession:
    """Sign in to the dashboard with a bearer token: a new server-side session."""
    who = authenticate(s, token, now)
    sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + SESSION_LIFE_S
    s.execute(delete(SessionRow).where(SessionRow.expires_at <= now))
    s.add(
        SessionRow(
            id_sha256=token_hash(sid), user=who.name, csrf=csrf, created_at=now, expires_at=expires
        )
    )
    record(s, now, who.name, "session.open", f"user/{who.name}")
    return WebSession(sid, csrf, expires, who)


def find_session(s: Session, sid: str | None, now: float) -> WebSession:
    """The live dashboard session whose cookie is ``sid``."""
    if not sid:
        raise UnauthenticatedError("not signed in")
    row = s.get(SessionRow, token_hash(sid))
    if row is None or row.expires_at <= now:
        raise UnauthenticatedError("the session has ended: sign in again")
    return WebSession(sid, row.csrf, row.expires_at, _principal(s, row.user))


def close_session(s: Session, sid: str | None, now: float) -> None:
    if not sid:
        return
    row = s.get(SessionRow, token_hash(sid))
    if row is not None:
        s.delete(row)
        record(s, now, row.user, "session.close", f"user/{row.user}")
