"""One controller at a time: a lease in the database, with a fencing token.

Several servers may share one PostgreSQL database (and serve its API); exactly one of them
runs the controller. Each step, a server's controller asks for the lease (:meth:`Lease.hold`):
it gets it if nobody holds it, if it holds it already (then it is renewed), or if the holder's
has expired (then the token grows). Every transaction of the controller then touches the lease
first (:meth:`Lease.fence`: an ``UPDATE`` that matches only while this server still holds it,
with its token): it takes the row's lock, so a takeover and the old holder's writes are
serialized, and a holder that lost the lease (paused, partitioned, slow) has every further
write refused (:class:`LeaseLostError`) and its transaction rolled back. So nothing is decided
twice; a new leader picks up from the database and the executors' own records.

A server that stops releases its lease, and another takes over at its next step; one that dies
is replaced once its lease expires (``ttl_s``).
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, field

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from suanli.errors import LeaseLostError
from suanli.store.database import Database
from suanli.store.tables import LeaseRow

__all__ = ["TTL_S", "Lease", "LeaseLostError"]

#: how long a lease lasts without being renewed (seconds)
TTL_S = 10.0


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class Lease:
    db: Database
    name: str = "controller"
    ttl_s: float = TTL_S
    holder: str = field(default_factory=_me)
    #: the token this server holds the lease with (None: it does not hold it)
    token: int | None = None

    def hold(self, now: float) -> bool:
        """Take or renew the lease; True if this server holds it now."""
        with self.db.session() as s:
            row = s.scalars(
                select(LeaseRow).where(LeaseRow.name == self.name).with_for_update()
            ).one_or_none()
            if row is None:
                try:
                    with s.begin_nested():
                        s.execute(
                            insert(LeaseRow).values(
                                name=self.name,
                                holder=self.holder,
                                token=1,
                                expires_at=now + self.ttl_s,
                            )
                        )
                except IntegrityError:  # another server made it first
                    self.token = None
                    return False
                self.token = 1
                return True
            if row.holder == self.holder and row.token == self.token:
                row.expires_at = now + self.ttl_s
                return True
            if row.expires_at > now:
                self.token = None
                return False
            row.holder, row.token, row.expires_at = self.holder, row.token + 1, now + self.ttl_s
            self.token = row.token
            return True

    def fence(self, s: Session, now: float) -> None:
        """In a transaction about to write as the controller: touch the lease, or raise if
        this server no longer holds it."""
        if self.token is None:
            raise LeaseLostError(f"this server does not hold the {self.name} lease")
        touched = s.execute(
            update(LeaseRow)
            .where(
                LeaseRow.name == self.name,
                LeaseRow.holder == self.holder,
                LeaseRow.token == self.token,
                LeaseRow.expires_at > now,
            )
            .values(expires_at=LeaseRow.expires_at)
            .execution_options(synchronize_session=False)
        )
        if getattr(touched, "rowcount", 0) != 1:
            self.token = None
            raise LeaseLostError(f"this server lost the {self.name} lease")

    def release(self) -> None:
        """Give the lease up now (a stopping server), so another takes over at once."""
        if self.token is None:
            return
        with self.db.session() as s:
            s.execute(
                update(LeaseRow)
                .where(
                    LeaseRow.name == self.name,
                    LeaseRow.holder == self.holder,
                    LeaseRow.token == self.token,
                )
                .values(expires_at=0.0)
            )
        self.token = None
