"""The controller: a reconcile loop in the manner of Kubernetes controllers.

One :meth:`Controller.step`:

1. **Observe.** Ask the executor what every run is doing and record it: a run that started is
   RUNNING; one that exited ends the job (SUCCEEDED or FAILED by exit code, CANCELLED if a
   cancel was asked) or, if it was preempted, puts it back in the queue; a run the executor lost
   puts the job back too. An ADMITTED job with no run (the controller died between recording
   the admission and starting it) is started now.
2. **Decide.** Build the snapshot from the database and call the same ``schedule()`` as the
   simulator.
3. **Act.** Record each decision first (ADMITTED with its placement and a new attempt number;
   or a stop request), commit, then tell the executor. Starts and stops are keyed by
   ``(job, attempt)`` and idempotent, and stop requests are repeated every step until the run
   has ended.

Before observing, the controller records what the executor says of the nodes' health: a node
whose Ray node died, or whose site has not answered for longer than the timeout, is ``down``
and takes no jobs; an ADMITTED job placed on a down node and not yet started goes back to the
queue. A run the executor reports of an attempt that is no longer the job's current one (its
site came back after the job was placed elsewhere) is stopped: it is *fenced*.

So a crash at any point loses nothing (every intention is in the database before it is carried
out) and runs nothing twice (a repeated start of the same key is a no-op; a new attempt is
only made after the previous one was observed to end).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from suanli.errors import CannotRunError
from suanli.executors.base import Executor, RunPhase, RunRequest, RunState
from suanli.model.alliance import Alliance
from suanli.model.ids import JobId, NodeId
from suanli.model.job import Phase
from suanli.sched.decision import Admit, Preempt
from suanli.sched.policy import Policy
from suanli.sched.schedule import schedule
from suanli.service.accounting import Accountant
from suanli.service.audit import record
from suanli.service.metrics import Metrics
from suanli.service.vault import Vault, VaultError
from suanli.store.alliance_rows import bump_revision, read_alliance
from suanli.store.codec import placement_from_json, placement_to_json, spec_from_json
from suanli.store.database import Database
from suanli.store.snapshot import ACTIVE, build_snapshot
from suanli.store.tables import JobRow, NodeRow

log = logging.getLogger("suanli.controller")
ACTOR = "controller"


@dataclass
class StepReport:
    observed: int = 0
    admitted: list[str] = field(default_factory=list)
    preempted: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    fenced: list[str] = field(default_factory=list)
    pass_s: float = 0.0
    pending: int = 0


class Controller:
    def __init__(
        self,
        db: Database,
        executor: Executor,
        policy: Policy,
        clock: Callable[[], float] = time.time,
        accounting_interval_s: float = 300.0,
        metrics: Metrics | None = None,
        vault: Vault | None = None,
    ) -> None:
        self.metrics = metrics
        #: opens jobs' sealed secrets for their runs
        self.vault = vault
        self.db = db
        self.accountant = Accountant(accounting_interval_s)
        self.executor = executor
        self.policy = policy
        self.clock = clock
        #: stale runs being stopped (their attempt was replaced while their site was away)
        self._fencing: set[tuple[JobId, int]] = set()

    # -- 0. node health --------------------------------------------------------------------
    def _health(self, s: Session, now: float) -> None:
        health = self.executor.node_health()
        if not health:
            return
        changed = False
        for row in s.scalars(select(NodeRow).where(NodeRow.id.in_(list(health)))):
            why = health[NodeId(row.id)]
            want = "up" if why is None else "down"
            if row.health != want:
                row.health, row.health_reason, row.health_since = want, why, now
                record(s, now, ACTOR, f"node.{want}", f"node/{row.id}", reason=why)
                log.warning("node %s is %s%s", row.id, want, f": {why}" if why else "")
                changed = True
        if changed:
            bump_revision(s)

    # -- 1. observe ------------------------------------------------------------------------
    def _observe(self, s: Session, now: float, report: StepReport) -> list[RunRequest]:
        observed = self.executor.observe()
        report.observed = len(observed)
        to_start: list[RunRequest] = []
        alliance = read_alliance(s)[0]
        down = {NodeId(n) for n in s.scalars(select(NodeRow.id).where(NodeRow.health != "up"))}
        current: set[tuple[JobId, int]] = set()
        for row in s.scalars(select(JobRow).where(JobRow.phase.in_(ACTIVE))):
            key = (JobId(row.id), row.attempt)
            current.add(key)
            st = observed.get(key)
            if st is None:
                if row.phase == Phase.ADMITTED.value:
                    if row.stop_requested:  # never started, no need to: back or gone
                        self._ended(s, row, None, now, report)
                    elif self._placed_on(row, down):
                        self._ended(s, row, None, now, report, lost=True)
                    else:
                        self._to_start(s, row, alliance, to_start, now, report)
                else:  # RUNNING, and the executor knows nothing of it
                    self._ended(s, row, None, now, report, lost=True)
            elif st.phase is RunPhase.UNKNOWN:
                continue  # its site is silent: wait for it, or for its timeout
            elif st.phase is RunPhase.PENDING:
                # Ray cannot stop a job that has not started: a run to be stopped, or whose
                # node went down before it started, is left behind (its stop is queued in
                # Ray, and should it start anyway it is fenced) and the job moves on.
                if row.stop_requested or self._placed_on(row, down):
                    try:  # queued in Ray until the run starts; if it fails, fencing stops it
                        self.executor.stop(key[0], key[1], 0.0)
                    except Exception:
                        log.warning("queueing the stop of %s attempt %d failed", *key)
                    self._ended(s, row, None, now, report, lost=not row.stop_requested)
            elif st.phase is RunPhase.RUNNING:
                if row.phase == Phase.ADMITTED.value:
                    row.phase = Phase.RUNNING.value
                    row.started_at = st.started_at or now
                    row.reason = "running"
            else:
                self._ended(s, row, st, now, report, lost=st.phase is RunPhase.LOST)
        self._fence(s, observed, current, now, report)
        return to_start

    @staticmethod
    def _placed_on(row: JobRow, nodes: set[NodeId]) -> bool:
        if not nodes or row.placement is None:
            return False
        return any(n in nodes for n, _ in placement_from_json(row.placement).assignments)

    def _fence(
        self,
        s: Session,
        observed: dict[tuple[JobId, int], RunState],
        current: set[tuple[JobId, int]],
        now: float,
        report: StepReport,
    ) -> None:
        """Stop runs of attempts that were replaced (seen again after their site came back)."""
        for key, st in observed.items():
            if key in current:
                continue
            if st.phase is RunPhase.RUNNING:
                if key not in self._fencing:
                    self._fencing.add(key)
                    record(s, now, ACTOR, "run.fenced", f"job/{key[0]}", attempt=key[1])
                    log.warning("stopping %s attempt %d: a newer attempt replaced it", *key)
                report.fenced.append(key[0])
            elif st.phase is RunPhase.EXITED and key in self._fencing:
                self._fencing.discard(key)
                self.executor.forget(*key)

    def _ended(
        self,
        s: Session,
        row: JobRow,
        st: RunState | None,
        now: float,
        report: StepReport,
        lost: bool = False,
    ) -> None:
        """The current attempt of ``row`` is over: record the outcome."""
        code = st.exit_code if st is not None else None
        ended_at = (st.finished_at if st is not None else None) or now
        # a run may start and end between two observations: the executor knows it started
        started = row.started_at if row.phase == Phase.RUNNING.value else None
        self.accountant.run_ended(s, row, started or (st.started_at if st else None), ended_at)
        if row.cancel_requested:
            phase, reason = Phase.CANCELLED, "cancelled; its run stopped"
        elif row.stop_requested or lost:
            phase = Phase.PENDING
            reason = (
                "preempted; back in the queue, resumes from its checkpoint"
                if row.stop_requested
                else "its run was lost (its node, site or supervisor died); back in the queue"
            )
        elif code == 0:
            phase, reason = Phase.SUCCEEDED, "exited 0"
        else:
            phase, reason = Phase.FAILED, f"exited {code}"
        record(
            s,
            now,
            ACTOR,
            f"job.{phase.value.lower()}",
            f"job/{row.id}",
            attempt=row.attempt,
            exit_code=code,
        )
        log.info(
            "%s %s (attempt %d): %s",
            row.id,
            phase.value.lower(),
            row.attempt,
            reason,
            extra={
                "event": f"job.{phase.value.lower()}",
                "job": row.id,
                "member": row.member,
                "attempt": row.attempt,
                "exit_code": code,
            },
        )
        row.exit_code = code
        row.stop_requested = False
        row.stop_deadline = None
        row.reason = reason
        if phase is Phase.PENDING:
            row.phase = Phase.PENDING.value
            row.placement = None
            row.preemptions += 1
            report.requeued.append(row.id)
        else:
            row.phase = phase.value
            row.finished_at = now
            report.finished.append(row.id)
        if st is not None and st.phase is RunPhase.EXITED:
            # a lost run is not forgotten: should it turn up again, it is fenced
            self.executor.forget(JobId(row.id), row.attempt)

    def _request(self, row: JobRow, alliance: Alliance) -> RunRequest:
        spec = spec_from_json(row.spec)
        assert row.placement is not None
        placement = placement_from_json(row.placement)
        model = alliance.catalog.get(placement.model)
        raw = spec.runtime_env.get("env_vars")
        env = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        if spec.datasets:
            env["SUANLI_DATASETS"] = ",".join(spec.datasets)
        if row.secrets:
            if self.vault is None:
                raise CannotRunError("it has secrets and this server keeps none")
            try:
                env.update(self.vault.open_sealed(row.secrets))
            except VaultError as exc:
                raise CannotRunError(str(exc)) from None
        wd = spec.runtime_env.get("working_dir")
        return RunRequest(
            JobId(row.id),
            row.attempt,
            spec.entrypoint or "true",
            placement.model,
            model.stack,
            placement.assignments,
            env,
            str(wd) if wd else None,
            member=row.member,
            datasets={
                d: alliance.datasets[d].location if d in alliance.datasets else None
                for d in spec.datasets
            },
        )

    # -- the step --------------------------------------------------------------------------
    def step(self) -> StepReport:
        report = StepReport()
        now = self.clock()
        with self.db.session() as s:
            self._health(s, now)
        with self.db.session() as s:
            to_start = self._observe(s, now, report)
        with self.db.session() as s:
            self.accountant.flush(s, now)
        self._start_all(to_start, report)
        starts: list[RunRequest] = []
        stops: list[tuple[str, int, float]] = []
        with self.db.session() as s:
            alliance, draining = read_alliance(s)
            snap = build_snapshot(s, alliance, draining, now)
            report.pending = len(snap.pending)
            t0 = time.perf_counter()
            result = schedule(snap, self.policy)
            report.pass_s = time.perf_counter() - t0
            if self.metrics is not None:
                self.metrics.pool(snap)
            rows = {
                r.id: r
                for r in s.scalars(
                    select(JobRow).where(JobRow.id.in_([d.job for d in result.decisions]))
                )
            }
            for d in result.decisions:
                row = rows[d.job]
                if isinstance(d, Admit):
                    row.phase = Phase.ADMITTED.value
                    row.attempt += 1
                    row.placement = placement_to_json(d.placement)
                    row.accounted_until = None
                    row.reason = f"admitted: {d.reason}" if d.reason else "admitted"
                    row.exit_code = None
                    record(
                        s,
                        now,
                        ACTOR,
                        "job.admit",
                        f"job/{row.id}",
                        attempt=row.attempt,
                        placement=str(d.placement),
                    )
                    self._to_start(s, row, alliance, starts, now, report)
                    report.admitted.append(row.id)
                    log.info(
                        "admitted %s",
                        row.id,
                        extra={
                            "event": "job.admit",
                            "job": row.id,
                            "member": row.member,
                            "attempt": row.attempt,
                            "placement": str(d.placement),
                        },
                    )
                elif isinstance(d, Preempt):
                    row.stop_requested = True
                    row.stop_deadline = now + d.grace_s
                    row.reason = f"preempting: {d.reason}"
                    record(s, now, ACTOR, "job.preempt", f"job/{row.id}", reason=d.reason)
                    report.preempted.append(row.id)
                    log.info(
                        "preempting %s: %s",
                        row.id,
                        d.reason,
                        extra={"event": "job.preempt", "job": row.id, "member": row.member},
                    )
            # why the examined jobs wait (the others' reasons are derived when asked for)
            waiting = [
                {"jid": jid, "why": why}
                for jid, why in result.reasons.items()
                if jid not in rows and jid in snap.pending
            ]
            if waiting:
                table = cast(Table, JobRow.__table__)
                s.connection().execute(
                    update(table)
                    .where(table.c.id == bindparam("jid"), table.c.phase == Phase.PENDING.value)
                    .values(reason=bindparam("why")),
                    waiting,
                )
            stops = [
                (r.id, r.attempt, max(0.0, (r.stop_deadline or now) - now))
                for r in s.scalars(
                    select(JobRow).where(JobRow.phase.in_(ACTIVE), JobRow.stop_requested)
                )
            ]
        self._start_all(starts, report)
        if self.metrics is not None:
            self.metrics.step(
                len(report.admitted),
                len(report.preempted),
                len(report.requeued),
                len(set(report.fenced)),
                report.pass_s,
            )
        stops += [(j, a, 0.0) for j, a in sorted(self._fencing)]
        for jid, attempt, grace in stops:
            try:
                self.executor.stop(JobId(jid), attempt, grace)
            except Exception:  # an unreachable site: the stop is repeated next step
                log.warning("stopping %s attempt %d failed; retrying", jid, attempt, exc_info=True)
        return report

    def _to_start(
        self,
        s: Session,
        row: JobRow,
        alliance: Alliance,
        out: list[RunRequest],
        now: float,
        report: StepReport,
    ) -> None:
        """Add the run of ``row`` to ``out``, or fail the job if it can never run."""
        try:
            out.append(self._request(row, alliance))
        except CannotRunError as exc:
            self._cannot_run(s, row, exc, now, report)

    def _cannot_run(
        self, s: Session, row: JobRow, exc: Exception, now: float, report: StepReport
    ) -> None:
        row.phase = Phase.FAILED.value
        row.reason = f"the executor cannot run it: {exc}"
        row.finished_at = now
        record(s, now, ACTOR, "job.failed", f"job/{row.id}", attempt=row.attempt, error=str(exc))
        log.warning("%s failed: it cannot run: %s", row.id, exc)
        report.finished.append(row.id)

    def _start_all(self, requests: list[RunRequest], report: StepReport) -> None:
        """Start runs. One the executor cannot run at all (:class:`CannotRunError`) fails its
        job with the reason; any other error (an unreachable cluster) is logged and the start
        is retried at the next step, since the job stays ADMITTED with no run."""
        for req in requests:
            try:
                self.executor.start(req)
            except CannotRunError as exc:
                with self.db.session() as s:
                    row = s.scalars(select(JobRow).where(JobRow.id == req.job)).one()
                    if row.attempt == req.attempt and row.phase == Phase.ADMITTED.value:
                        self._cannot_run(s, row, exc, self.clock(), report)
            except Exception:
                log.exception("starting %s attempt %d failed; retrying", req.job, req.attempt)

    def drained(self) -> set[NodeId]:
        with self.db.session() as s:
            return read_alliance(s)[1]
