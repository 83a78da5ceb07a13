"""Users and their tokens."""

from __future__ import annotations

from fastapi import APIRouter

from suanli.api.deps import Svc, Who
from suanli.api.models import RevokedOut, TokenIn, TokenOut, UserCreated, UserIn, UserOut
from suanli.service import auth
from suanli.service.auth import UserView

router = APIRouter(prefix="/api/v1/users", tags=["service"])


def _seconds(days: float | None) -> float | None:
    return None if days is None else days * 86400


@router.get("", response_model=list[UserOut])
def users_list(svc: Svc, who: Who) -> list[UserView]:
    """Alliance admins see every user, member admins their member's, others themselves."""
    with svc.db.session() as s:
        return auth.list_users(s, who, svc.clock())


@router.post("", status_code=201)
def users_create(body: UserIn, svc: Svc, who: Who) -> UserCreated:
    with svc.db.session() as s:
        token = auth.create_user(
            s,
            who,
            body.name,
            body.role,
            body.member,
            svc.clock(),
            _seconds(body.expires_in_days),
        )
    return UserCreated(name=body.name, role=body.role, member=body.member, token=token)


@router.post("/{name}/revoke")
def users_revoke(name: str, svc: Svc, who: Who) -> RevokedOut:
    """Every token of the user stops working at once, and its dashboard sessions end."""
    with svc.db.session() as s:
        return RevokedOut(name=name, revoked=auth.revoke(s, who, name, svc.clock()))


@router.post("/{name}/rotate")
def users_rotate(name: str, svc: Svc, who: Who, body: TokenIn | None = None) -> TokenOut:
    """A new token for the user (shown once); its other tokens stop working."""
    expires = _seconds(body.expires_in_days if body else None)
    with svc.db.session() as s:
        return TokenOut(name=name, token=auth.rotate(s, who, name, svc.clock(), expires))
