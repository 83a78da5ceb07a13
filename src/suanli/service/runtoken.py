"""Run tokens: what a job's run presents to the hub, made for one attempt of one job.

A run token is ``sr_JOB.ATTEMPT.MAC``, the MAC an HMAC of ``JOB.ATTEMPT`` under a key derived
from the vault's (:meth:`~suanli.service.vault.Vault.mac`): any server of the alliance can
check it, and the controller makes the same one again after a restart (a start repeated after
a crash hands the run the token it already has). Nothing is stored. It is good only while that
attempt is admitted or running: once the run ends, is preempted or replaced, the token stops
working at the next request. It speaks for the job's member, as a member user, on the hub's
routes only (never the API's), and the hub records the job on every revision it commits.
"""

from __future__ import annotations

import hmac

from sqlalchemy import select
from sqlalchemy.orm import Session

from suanli.errors import UnauthenticatedError
from suanli.service.auth import Principal, Role
from suanli.service.lifecycle import ACTIVE
from suanli.service.vault import Vault
from suanli.store.tables import JobRow

PREFIX = "sr_"


def issue(vault: Vault, job: str, attempt: int) -> str:
    body = f"{job}.{attempt}"
    return f"{PREFIX}{body}.{vault.mac(body)}"


def is_run_token(token: str | None) -> bool:
    return bool(token) and str(token).startswith(PREFIX)


def check(s: Session, vault: Vault | None, token: str) -> Principal:
    """The run a token speaks for, as a principal (401 if forged, or its run is over)."""
    body, _, mac = token.removeprefix(PREFIX).rpartition(".")
    job, _, attempt = body.rpartition(".")
    if vault is None or not attempt.isdigit() or not hmac.compare_digest(mac, vault.mac(body)):
        raise UnauthenticatedError("unknown or revoked token")
    row = s.scalars(select(JobRow).where(JobRow.id == job)).first()
    if row is None or row.attempt != int(attempt) or row.phase not in ACTIVE:
        raise UnauthenticatedError(f"the run this token was made for ({body}) is over")
    return Principal(f"run:{body}", Role.MEMBER_USER, row.member, job)
