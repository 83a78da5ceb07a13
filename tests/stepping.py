"""Stepping a controller until the jobs in the database reach a wanted state."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import select

from suanli.service.controller import Controller
from suanli.store.database import Database
from suanli.store.tables import JobRow


def run_until(
    ctl: Controller,
    db: Database,
    done: Callable[[dict[str, JobRow]], bool],
    timeout: float = 30.0,
    pause: float = 0.05,
) -> dict[str, JobRow]:
    deadline = time.time() + timeout
    rows: dict[str, JobRow] = {}
    while time.time() < deadline:
        ctl.step()
        with db.session() as s:
            rows = {r.id: r for r in s.scalars(select(JobRow))}
        if done(rows):
            return rows
        time.sleep(pause)
    raise AssertionError(f"not done: {[(r.id, r.phase, r.reason) for r in rows.values()]}")
