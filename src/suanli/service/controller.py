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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from suanli.errors import CannotRunError, LeaseLostError
from suanli.executors.base import Executor, RunPhase, RunRequest, RunState
from suanli.model.alliance import Alliance
from suanli.model.ids import JobId, NodeId
from suanli.model.job import Phase
from suanli.model.node import NodeHealth
from suanli.sched.decision import Admit, Preempt
from suanli.sched.policy import Policy
from suanli.sched.schedule import schedule
from suanli.service import federation, lifecycle, runtoken
from suanli.service.accounting import Accountant
from suanli.service.audit import record
from suanli.service.leader import Lease
from suanli.service.lifecycle import Outcome
from suanli.service.metrics import Metrics
from suanli.service.vault import Vault, VaultError
from suanli.store.alliance_rows import bump_revision, read_alliance
from suanli.store.codec import placement_from_json, spec_from_json
from suanli.store.database import Database
from suanli.store.snapshot import (
    ACTIVE,
    FEDERATED,
    build_snapshot,
    set_pending_reasons,
    set_reservations,
)
from suanli.store.tables import JobRow, NodeRow

log = logging.getLogger("suanli.controller")
ACTOR = "controller"
#: how many times a start that fails for a reason other than an unreachable cluster is tried
START_TRIES = 3


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
    #: another server's controller holds the lease: this one did nothing
    standby: bool = False


@dataclass
class _Plan:
    """What a step decided to carry out once its decisions are committed."""

    starts: list[RunRequest] = field(default_factory=list)
    stops: list[tuple[JobId, int, float]] = field(default_factory=list)


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
        lease: Lease | None = None,
        hub_url: str | None = None,
    ) -> None:
        self.metrics = metrics
        #: where runs reach the hub (HF_ENDPOINT); None: runs get no run token
        self.hub_url = hub_url
        #: opens jobs' sealed secrets for their runs
        self.vault = vault
        #: held while this controller is the one (None: it is the only one, a test's say)
        self.lease = lease
        self.db = db
        self.accountant = Accountant(accounting_interval_s)
        self.executor = executor
        self.policy = policy
        self.clock = clock
        #: devices per node busy with the members' own work, as last told by the executor
        self._outside: dict[NodeId, int] = {}
        #: stale runs being stopped (their attempt was replaced while their site was away)
        self._fencing: set[tuple[JobId, int]] = set()
        #: ended runs the executor may forget once the transaction recording their end commits
        #: (forgotten before, a crash in between would leave their jobs waiting for them)
        self._forgettable: list[tuple[JobId, int]] = []
        #: runs whose start failed for a reason other than an unreachable cluster: how often
        self._start_errors: dict[tuple[JobId, int], int] = {}

    # -- the step --------------------------------------------------------------------------
    def step(self) -> StepReport:
        """One reconcile step (see the module's docstring); each stage commits on its own."""
        report = StepReport()
        now = self.clock()
        if self.lease is not None and not self.lease.hold(now):
            report.standby = True  # another server's controller runs the pool
            return report
        try:
            self._record_health(now)  # 0. nodes up or down
            self._start_all(self._observe(now, report), report)  # 1. observe
            self._start_all(self._federate(now, report), report)  # federated runs
            self._account(now)
            plan = self._decide(now, report)  # 2. decide, and record every decision
        except LeaseLostError as exc:
            log.warning("%s; standing by", exc)
            report.standby = True
            return report
        self._start_all(plan.starts, report)  # 3. act: start, then stop
        self._stop_all(plan.stops)
        self._publish(report)
        return report

    @contextmanager
    def _session(self, now: float) -> Iterator[Session]:
        """A transaction of the controller's: under its lease (refused if it lost it)."""
        with self.db.session() as s:
            if self.lease is not None:
                self.lease.fence(s, now)
            yield s

    # -- 0. node health --------------------------------------------------------------------
    def _record_health(self, now: float) -> None:
        # devices busy with the members' own work (a Slurm site's jobs outside the pool)
        outside = getattr(self.executor, "busy_outside", None)
        self._outside = outside() if outside is not None else {}
        health = self.executor.node_health()
        if not health:
            return
        with self._session(now) as s:
            changed = False
            for row in s.scalars(select(NodeRow).where(NodeRow.id.in_(list(health)))):
                why = health[NodeId(row.id)]
                want = NodeHealth.UP if why is None else NodeHealth.DOWN
                if row.health != want:
                    row.health, row.health_reason, row.health_since = want.value, why, now
                    record(s, now, ACTOR, f"node.{want}", f"node/{row.id}", reason=why)
                    log.warning("node %s is %s%s", row.id, want, f": {why}" if why else "")
                    changed = True
            if changed:
                bump_revision(s)

    # -- 1. observe ------------------------------------------------------------------------
    def _observe(self, now: float, report: StepReport) -> list[RunRequest]:
        """Record what every run is doing; returns the runs of ADMITTED jobs that have none
        (the controller died between recording the admission and starting it)."""
        observed = self.executor.observe()
        report.observed = len(observed)
        to_start: list[RunRequest] = []
        self._forgettable = []
        with self._session(now) as s:
            alliance = read_alliance(s)[0]
            sick = select(NodeRow.id).where(NodeRow.health != NodeHealth.UP.value)
            down = {NodeId(n) for n in s.scalars(sick)}
            current: set[tuple[JobId, int]] = set()
            for row in s.scalars(select(JobRow).where(JobRow.phase.in_(ACTIVE))):
                key = (JobId(row.id), row.attempt)
                current.add(key)
                self._reconcile(s, row, observed.get(key), down, now, report, alliance, to_start)
            self._fence(s, observed, current, now, report)
        for key in self._forgettable:  # (their ends are committed)
            self.executor.forget(*key)
        self._forgettable = []
        return to_start

    def _reconcile(
        self,
        s: Session,
        row: JobRow,
        st: RunState | None,
        down: set[NodeId],
        now: float,
        report: StepReport,
        alliance: Alliance,
        to_start: list[RunRequest],
    ) -> None:
        """Bring one active job in line with what its run is doing."""
        if st is None:
            if row.phase != Phase.ADMITTED.value:  # RUNNING, and the executor knows nothing of it
                self._ended(s, row, None, now, report, lost=True)
            elif row.stop_requested:  # never started, no need to: back or gone
                self._ended(s, row, None, now, report)
            elif self._placed_on(row, down):
                self._ended(s, row, None, now, report, lost=True)
            else:
                self._to_start(s, row, alliance, to_start, now, report)
        elif st.phase is RunPhase.UNKNOWN:
            return  # its site is silent: wait for it, or for its timeout
        elif st.phase is RunPhase.PENDING:
            # Ray cannot stop a job that has not started: a run to be stopped, or whose node
            # went down before it started, is left behind (its stop is queued in Ray, and
            # should it start anyway it is fenced) and the job moves on.
            if row.stop_requested or self._placed_on(row, down):
                try:
                    self.executor.stop(JobId(row.id), row.attempt, 0.0)
                except Exception:
                    log.warning("queueing the stop of %s attempt %d failed", row.id, row.attempt)
                self._ended(s, row, None, now, report, lost=not row.stop_requested)
        elif st.phase is RunPhase.RUNNING:
            lifecycle.started(s, row, st.started_at or now)
        else:
            self._ended(s, row, st, now, report, lost=st.phase is RunPhase.LOST)

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
            elif st.phase is RunPhase.EXITED:
                # a replaced attempt that ended, or a run whose end was committed before the
                # controller could forget it (it died in between): nothing more to record
                self._fencing.discard(key)
                self._forgettable.append(key)

    def _ended(
        self,
        s: Session,
        row: JobRow,
        st: RunState | None,
        now: float,
        report: StepReport,
        lost: bool = False,
    ) -> None:
        """The current attempt of ``row`` is over: account for it and record the outcome."""
        code = st.exit_code if st is not None else None
        ended_at = (st.finished_at if st is not None else None) or now
        # a run may start and end between two observations: the executor knows it started
        started = row.started_at if row.phase == Phase.RUNNING.value else None
        self.accountant.run_ended(s, row, started or (st.started_at if st else None), ended_at)
        if row.kind == FEDERATED:
            federation.read_progress(row, self.executor)
        phase = lifecycle.ended(s, row, Outcome(code, lost), ACTOR, now)
        if row.kind == FEDERATED:
            federation.ended(row, phase)
        if phase is Phase.PENDING:
            report.requeued.append(row.id)
        elif phase is not None:
            report.finished.append(row.id)
        if st is not None and st.phase is RunPhase.EXITED:
            # a lost run is not forgotten: should it turn up again, it is fenced
            self._forgettable.append((JobId(row.id), row.attempt))

    def _account(self, now: float) -> None:
        with self._session(now) as s:
            self.accountant.flush(s, now)

    def _federate(self, now: float, report: StepReport) -> list[RunRequest]:
        """Federated runs: progress read, ended runs' parts ended, and the runs whose minimum
        of parts is placed admitted (their runs returned, to be started)."""
        out: list[RunRequest] = []
        with self._session(now) as s:
            admitted = federation.reconcile(s, self.executor, ACTOR, now)
            if admitted:
                alliance = read_alliance(s)[0]
                for row in admitted:
                    self._to_start(s, row, alliance, out, now, report)
                    report.admitted.append(row.id)
        return out

    # -- 2. decide -------------------------------------------------------------------------
    def _decide(self, now: float, report: StepReport) -> _Plan:
        """One pass of the scheduler over the state in the database; every decision is
        recorded (and committed) before anything is carried out."""
        plan = _Plan()
        with self._session(now) as s:
            alliance, draining = read_alliance(s)
            snap = build_snapshot(s, alliance, draining, now, self._outside)
            report.pending = len(snap.pending)
            t0 = time.perf_counter()
            result = schedule(snap, self.policy)
            report.pass_s = time.perf_counter() - t0
            if self.metrics is not None:
                self.metrics.pool(snap)
            decided = {d.job for d in result.decisions}
            rows = {r.id: r for r in s.scalars(select(JobRow).where(JobRow.id.in_(decided)))}
            for d in result.decisions:
                row = rows[d.job]
                if isinstance(d, Admit):
                    if lifecycle.admit(s, row, d.placement, d.reason, ACTOR, now):
                        self._to_start(s, row, alliance, plan.starts, now, report)
                        report.admitted.append(row.id)
                elif isinstance(d, Preempt):
                    why = f"preempting: {d.reason}"
                    if lifecycle.request_stop(s, row, why, now + d.grace_s, ACTOR, now):
                        report.preempted.append(row.id)
            # why the examined jobs wait (the others' reasons are derived when asked for)
            set_pending_reasons(
                s,
                {
                    j: why
                    for j, why in result.reasons.items()
                    if j not in rows and j in snap.pending
                },
            )
            set_reservations(s, result.reservations)
            plan.stops = [
                (JobId(r.id), r.attempt, max(0.0, (r.stop_deadline or now) - now))
                for r in s.scalars(
                    select(JobRow).where(JobRow.phase.in_(ACTIVE), JobRow.stop_requested)
                )
            ]
        plan.stops += [(j, a, 0.0) for j, a in sorted(self._fencing)]
        return plan

    def _secrets(self, row: JobRow) -> dict[str, str]:
        if not row.secrets:
            return {}
        if self.vault is None:
            raise CannotRunError("it has secrets and this server keeps none")
        try:
            return self.vault.open_sealed(row.secrets)
        except VaultError as exc:
            raise CannotRunError(str(exc)) from None

    def _hub_env(self, row: JobRow) -> dict[str, str]:
        """The run's way to the hub: its run token and the hub's address, as the Hugging Face
        and ModelScope clients read them (see :mod:`suanli.service.runtoken`)."""
        if self.vault is None or self.hub_url is None:
            return {}
        token = runtoken.issue(self.vault, row.id, row.attempt)
        url = self.hub_url
        return {
            "SUANLI_RUN_TOKEN": token,
            "HF_TOKEN": token,
            "HF_ENDPOINT": url,
            "MODELSCOPE_ENDPOINT": url,
            "MODELSCOPE_API_TOKEN": token,
        }

    def _request(self, row: JobRow, alliance: Alliance) -> RunRequest:
        if row.kind == FEDERATED:
            env = {**self._secrets(row), **self._hub_env(row)}  # (it publishes its model)
            return federation.link_request(row, env, alliance)
        spec = spec_from_json(row.spec)
        assert row.placement is not None
        placement = placement_from_json(row.placement)
        model = alliance.catalog.get(placement.model)
        raw = spec.runtime_env.get("env_vars")
        env = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        if spec.datasets:
            env["SUANLI_DATASETS"] = ",".join(spec.datasets)
        env.update(self._secrets(row))
        env.update(self._hub_env(row))
        wd = spec.runtime_env.get("working_dir")
        req = RunRequest(
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
        return federation.part_request(req) if row.kind == federation.PART else req

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
            if lifecycle.fail(s, row, str(exc), ACTOR, now):
                report.finished.append(row.id)

    # -- 3. act ----------------------------------------------------------------------------
    def _start_all(self, requests: list[RunRequest], report: StepReport) -> None:
        """Start runs. One the executor cannot run at all (:class:`CannotRunError`) fails its
        job with the reason. A start that fails because its cluster cannot be reached is
        retried at every step (the job stays ADMITTED with no run; a site silent past its
        timeout has its nodes put down, and the job moves); any other error is retried
        :data:`START_TRIES` times, then fails the job with the reason."""
        for req in requests:
            try:
                self.executor.start(req)
                self._start_errors.pop(req.key, None)
            except CannotRunError as exc:
                self._fail_start(req, str(exc), report)
            except (ConnectionError, TimeoutError) as exc:
                log.warning("starting %s attempt %d: %s; retrying", req.job, req.attempt, exc)
            except Exception as exc:
                tries = self._start_errors.get(req.key, 0) + 1
                self._start_errors[req.key] = tries
                log.exception("starting %s attempt %d failed (%d)", req.job, req.attempt, tries)
                if tries >= START_TRIES:
                    self._start_errors.pop(req.key, None)
                    why = f"starting it failed {tries} times: {type(exc).__name__}: {exc}"
                    self._fail_start(req, why, report)

    def _fail_start(self, req: RunRequest, why: str, report: StepReport) -> None:
        with self._session(self.clock()) as s:
            row = s.scalars(select(JobRow).where(JobRow.id == req.job)).one()
            if row.attempt == req.attempt and lifecycle.fail(s, row, why, ACTOR, self.clock()):
                report.finished.append(row.id)

    def _stop_all(self, stops: list[tuple[JobId, int, float]]) -> None:
        """Ask runs to stop (repeated every step until they have: an unreachable site's stop
        is retried)."""
        for jid, attempt, grace in stops:
            try:
                self.executor.stop(jid, attempt, grace)
            except Exception:
                log.warning("stopping %s attempt %d failed; retrying", jid, attempt, exc_info=True)

    def _publish(self, report: StepReport) -> None:
        if self.metrics is not None:
            self.metrics.step(
                len(report.admitted),
                len(report.preempted),
                len(report.requeued),
                len(set(report.fenced)),
                report.pass_s,
            )

    def drained(self) -> set[NodeId]:
        with self.db.session() as s:
            return read_alliance(s)[1]
