"""The audit log: every change, in the same transaction as the change itself."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from suanli.store.tables import AuditRow


def record(s: Session, now: float, actor: str, action: str, target: str, **detail: Any) -> None:
    s.add(AuditRow(at=now, actor=actor, action=action, target=target, detail=detail))
