"""A job's life has one owner (:mod:`suanli.service.lifecycle`): whatever order transitions
are asked in, a job never leaves SUCCEEDED, FAILED or CANCELLED, a cancelled job is never
admitted, and every transition that happens leaves exactly one audit record."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from suanli.model.ids import JobId, MemberId, ModelId, NodeId
from suanli.model.job import Gang, JobSpec, Phase, Placement
from suanli.service import lifecycle
from suanli.service.lifecycle import Outcome
from suanli.service.pool import create_alliance
from suanli.spec.alliance_file import loads_alliance
from suanli.store.database import Database
from suanli.store.tables import AuditRow, JobRow

from ..stack import ALLIANCE

PLACEMENT = Placement(ModelId("H800-80GB"), ((NodeId("lab-h800"), (0,)),))
STEPS = ["admit", "started", "stop", "cancel", "ended-0", "ended-1", "lost", "fail"]
_ids = itertools.count()


def _apply(s: object, row: JobRow, step: str, now: float) -> bool:
    if step == "admit":
        return lifecycle.admit(s, row, PLACEMENT, "", "t", now)  # type: ignore[arg-type]
    if step == "started":
        return lifecycle.started(s, row, now)  # type: ignore[arg-type]
    if step == "stop":
        return lifecycle.request_stop(s, row, "preempting", now + 1, "t", now)  # type: ignore[arg-type]
    if step == "cancel":
        return lifecycle.cancel(s, row, "t", now)  # type: ignore[arg-type]
    if step == "fail":
        return lifecycle.fail(s, row, "no", "t", now)  # type: ignore[arg-type]
    outcome = Outcome(None, lost=True) if step == "lost" else Outcome(int(step[-1]))
    return lifecycle.ended(s, row, outcome, "t", now) is not None  # type: ignore[arg-type]


def test_terminal_phases_are_never_left(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'l.db'}")
    with db.session() as s:
        create_alliance(s, loads_alliance(ALLIANCE), "t", time.time())

    @settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(st.lists(st.sampled_from(STEPS), max_size=12))
    def check(steps: list[str]) -> None:
        jid = JobId(f"j{next(_ids)}")
        spec = JobSpec(jid, MemberId("lab"), 1, frozenset({ModelId("H800-80GB")}), Gang(1, 1))
        with db.session() as s:
            row = lifecycle.create(s, spec, "t", 0.0)
            s.flush()
            ended = None
            cancelled = False
            for k, step in enumerate(steps):
                before = Phase(row.phase)
                audits = s.scalar(select(func.count()).select_from(AuditRow)) or 0
                changed = _apply(s, row, step, float(k + 1))
                s.flush()
                after = Phase(row.phase)
                if before.terminal:
                    assert after is before and not changed, (steps, k)
                if after.terminal and ended is None:
                    ended = after
                if ended is not None:
                    assert after is ended, (steps, k)
                cancelled = cancelled or row.cancel_requested
                if cancelled:
                    assert after is not Phase.ADMITTED or before is Phase.ADMITTED, (steps, k)
                grew = (s.scalar(select(func.count()).select_from(AuditRow)) or 0) - audits
                # one record per transition that happened (none for "started", none if dropped)
                assert grew == (1 if changed and step != "started" else 0), (steps, k)

    check()
    db.close()
