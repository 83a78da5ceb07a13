"""Service functions for the pool: the alliance, its members, sites and nodes."""

from __future__ import annotations

from sqlalchemy.orm import Session

from suanli.errors import ConflictError
from suanli.model.alliance import Alliance
from suanli.service.audit import record
from suanli.store.alliance_rows import has_alliance, write_alliance


def create_alliance(s: Session, alliance: Alliance, actor: str, now: float) -> None:
    """Load a validated alliance into an empty database."""
    if has_alliance(s):
        raise ConflictError("the database already holds an alliance")
    write_alliance(s, alliance, now)
    record(
        s,
        now,
        actor,
        "alliance.create",
        f"alliance/{alliance.name}",
        members=len(alliance.members),
        nodes=len(alliance.nodes),
    )
