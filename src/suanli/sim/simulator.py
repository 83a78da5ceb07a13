"""The simulation loop: arrivals, passes of the real ``schedule()``, completions, preemptions.

Nothing here is special to the simulation in the scheduler: the loop owns a
:class:`~suanli.sched.snapshot.Snapshot` and keeps it up to date exactly as the service's
controller will, with a virtual clock and the simulated executor in place of the wall clock and
Ray.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from suanli.model.alliance import Alliance
from suanli.model.ids import JobId, MemberId, ModelId, NodeId
from suanli.sched.decision import Admit, Preempt
from suanli.sched.policy import Policy
from suanli.sched.schedule import schedule
from suanli.sched.snapshot import Snapshot
from suanli.sim.engine import EventQueue, Kind
from suanli.sim.executor import JobRecord, SimulatedExecutor
from suanli.sim.workload import SimJob


@dataclass(frozen=True)
class SimParams:
    """``round_s``: also run a pass every this many seconds while jobs wait or run (Gavel's
    rounds; None: passes only when something happened). ``checkpoint_on_signal``: a preempted
    job saves its progress when signaled (the grace period's work is lost); otherwise only its
    periodic checkpoints count. ``grace_s``: the guarantee-violation
    clock starts after this much waiting. ``half_life_s``: decay of members' past usage fed to
    the scheduler. ``sample_s``: spacing of the time series for plots. ``pass_interval_s``: at
    most one pass per this many seconds of virtual time, as a controller reconciling on a
    period (None: a pass at every instant something happened).

    Gavel's physics, for a side-by-side comparison with its simulator (docs/simulator.md):
    ``round_arrivals``: a round-based policy's rounds are Gavel's: a job that arrives waits
    for the next round, a round lasts ``round_s`` or until the last job running in it ends
    (then the next one starts), and with nothing running the next starts at the next
    arrival. ``free_switching``: a preempted job stops at once with all its work, and its
    devices go to other jobs in the same pass."""

    default_checkpoint_s: float | None = 1800.0
    checkpoint_on_signal: bool = True
    round_s: float | None = None
    grace_s: float = 300.0
    half_life_s: float = 7 * 86400.0
    sample_s: float = 3600.0
    pass_interval_s: float | None = None
    round_arrivals: bool = False
    free_switching: bool = False


@dataclass(frozen=True)
class Fault:
    """At ``at`` seconds, ``node`` fails (its jobs stop at once, keeping only periodic
    checkpoints, and are requeued); it comes back after ``down_s`` seconds, or never (None:
    removed from the pool)."""

    at: float
    node: NodeId
    down_s: float | None = None


@dataclass
class Series:
    t: list[float] = field(default_factory=list)
    busy_by_model: dict[ModelId, list[int]] = field(default_factory=dict)
    nu_by_member: dict[MemberId, list[float]] = field(default_factory=dict)


@dataclass
class SimResult:
    policy: str
    alliance: Alliance
    records: dict[JobId, JobRecord]
    entitlement_nu: dict[MemberId, float]
    series: Series
    busy_device_s: dict[ModelId, float]
    busy_nu_s: float
    member_nu_s: dict[MemberId, float]
    violation_s: dict[MemberId, float]
    jain_weighted: float
    passes: int
    sched_s: float
    wall_s: float
    end_time: float
    #: jobs that could never start, with the scheduler's reason
    unfinished: dict[JobId, str] = field(default_factory=dict)


class Simulation:
    def __init__(
        self,
        alliance: Alliance,
        jobs: list[SimJob],
        policy: Policy,
        params: SimParams | None = None,
        faults: tuple[Fault, ...] = (),
    ) -> None:
        self.alliance = alliance
        self.policy = policy
        self.faults = faults
        for f in faults:
            if f.node not in alliance.nodes:
                raise ValueError(f"fault names unknown node {f.node!r}")
        self.params = params or SimParams()
        self.jobs = {j.spec.id: j for j in jobs}
        if len(self.jobs) != len(jobs):
            raise ValueError("job ids in a simulation must be unique")
        self.snap = Snapshot.from_alliance(alliance)
        self.snap.instant_switch = self.params.free_switching
        #: arrivals waiting for the next round (``round_arrivals``)
        self._held: list[SimJob] = []
        #: when each running job's current run would end
        self._ends: dict[JobId, float] = {}
        #: the instant passes were repeated at, and how many times (free switching)
        self._again = (-math.inf, 0)
        self.exec = SimulatedExecutor(
            self.jobs, self.params.default_checkpoint_s, self.params.checkpoint_on_signal
        )
        self.q = EventQueue()
        self._tokens: dict[JobId, int] = {}
        self._pass_at: float | None = None
        self._last_pass = -math.inf
        self._rates_at = -1
        self._rates_cache: (
            tuple[list[tuple[ModelId, int]], float, list[tuple[MemberId, float]], float | None]
            | None
        ) = None
        self._last = 0.0
        self._nu_total = self.snap.pool.total_nu
        self._models_total = dict(self.snap.pool.devices_by_model)
        self.busy_device_s: dict[ModelId, float] = dict.fromkeys(self._models_total, 0.0)
        self.busy_nu_s = 0.0
        self.member_nu_s: dict[MemberId, float] = dict.fromkeys(alliance.members, 0.0)
        self.violation_s: dict[MemberId, float] = dict.fromkeys(alliance.members, 0.0)
        self._within_since: dict[MemberId, float | None] = dict.fromkeys(alliance.members)
        self._jain_num = 0.0
        self._jain_den = 0.0
        self.series = Series()
        self._next_sample = 0.0
        self.passes = 0
        self.sched_s = 0.0
        self.node_failures_jobs = 0
        #: a policy that plans in rounds says so (Gavel); otherwise passes follow events
        self._round_s: float | None = policy.round_s or self.params.round_s

    # -- time ------------------------------------------------------------------------------
    def _rates(
        self,
    ) -> tuple[list[tuple[ModelId, int]], float, list[tuple[MemberId, float]], float | None]:
        """Busy devices per model, NU in use, NU per member in use and Jain's index: constant
        between changes to the snapshot, so computed once per change."""
        snap = self.snap
        if self._rates_at == snap.changes and self._rates_cache is not None:
            return self._rates_cache
        busy = [(model, n) for model, n in snap.busy_by_model.items() if n]
        used = [(m, u) for m, u in snap.used_nu.items() if u > 0]
        self._rates_cache = (busy, sum(u for _, u in used), used, self._jain())
        self._rates_at = snap.changes
        return self._rates_cache

    def _advance(self, t: float) -> None:
        dt = t - self._last
        if dt <= 0:
            return
        busy, used_total, used, jain = self._rates()
        for model, n in busy:
            self.busy_device_s[model] += n * dt
        self.busy_nu_s += used_total * dt
        half = self.params.half_life_s
        decay = 2.0 ** (-dt / half)
        grow = half / math.log(2) * (1.0 - decay)
        history = self.snap.usage_history
        for m in history:
            history[m] *= decay
        for m, u in used:
            self.member_nu_s[m] += u * dt
            history[m] += u * grow
        for m, since in self._within_since.items():
            if since is not None:
                start = max(self._last, since + self.params.grace_s)
                if t > start:
                    self.violation_s[m] += t - start
        if jain is not None:
            self._jain_num += jain * dt
            self._jain_den += dt
        self._last = t

    def _jain(self) -> float | None:
        """Jain's index of usage over entitlement, over contributors with demand."""
        xs = []
        ent = self.snap.entitlement_nu
        for m, e in ent.items():
            if e > 0 and (self.snap.pending_count(m) or self.snap.used_nu[m] > 0):
                xs.append(self.snap.used_nu[m] / e)
        if len(xs) >= 2 and sum(xs) > 0:
            return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs))
        return None

    def _update_guarantees(self, t: float) -> None:
        """Members whose head job fits within their entitlement are 'waiting within share'."""
        snap = self.snap
        for m, e in snap.entitlement_nu.items():
            within = False
            if e > 0 and snap.pending_count(m):
                head = next(snap.member_queue(m))
                pool = snap.pool
                need = min(
                    (
                        head.spec.count * pool.model_nu(f)
                        for f in head.spec.models
                        if f in pool.devices_by_model and pool.could_host(head.spec, f)
                    ),
                    default=math.inf,
                )
                within = snap.used_nu[m] + need <= e + 1e-9
            if within and self._within_since[m] is None:
                self._within_since[m] = t
            elif not within:
                self._within_since[m] = None

    def _sample(self, t: float) -> None:
        if t < self._next_sample:
            return
        self._next_sample = t + self.params.sample_s
        s = self.series
        s.t.append(t)
        for model in self._models_total:
            s.busy_by_model.setdefault(model, []).append(self.snap.busy_by_model[model])
        for m, u in self.snap.used_nu.items():
            s.nu_by_member.setdefault(m, []).append(u)

    # -- events ----------------------------------------------------------------------------
    def _want_pass(self, t: float) -> None:
        """Something changed: pass now (or when the pass interval allows), or at the next round
        for a round-based policy."""
        if self._round_s and self._pass_at is not None:
            return
        if self.params.pass_interval_s is not None:
            t = max(t, self._last_pass + self.params.pass_interval_s)
        if self._pass_at is None or self._pass_at > t:
            self._pass_at = t
            self.q.push(t, Kind.PASS)

    def _pass(self, t: float) -> None:
        if self._pass_at != t:
            return  # superseded by an earlier one
        self._pass_at = None
        self._last_pass = t
        snap = self.snap
        snap.now = t
        for job in self._held:  # (the round's arrivals)
            self._submit(job)
        self._held.clear()
        t0 = time.perf_counter()
        result = schedule(snap, self.policy)
        self.sched_s += time.perf_counter() - t0
        self.passes += 1
        if self.params.free_switching:  # stopped now, so that the admissions may follow
            stopped = [d.job for d in result.decisions if isinstance(d, Preempt)]
            for jid in stopped:
                self._stop(jid, t, t)
            # a reclaim's job takes the devices its victims just freed, at this instant
            if result.reserved and self._again[0] != t:
                self._again = (t, 0)
            if result.reserved and self._again[1] < 4:
                self._again = (t, self._again[1] + 1)
                self._want_pass(t)
        for d in result.decisions:
            if isinstance(d, Admit):
                snap.start(d.job, d.placement, t)
                end, token = self.exec.start(d.job, d.placement, t)
                self._tokens[d.job] = token
                self._ends[d.job] = end
                self.q.push(end, Kind.COMPLETE, (d.job, token))
            elif isinstance(d, Preempt) and not self.params.free_switching:
                snap.mark_stopping(d.job)
                self.q.push(t + d.grace_s, Kind.STOPPED, (d.job, self._tokens[d.job], t))
        self._update_guarantees(t)
        self._sample(t)
        stuck = not result.decisions and not snap.running and not len(self.q)
        if self._round_s and self.params.round_arrivals:
            # Gavel's round ends when its last job's share of it does (or the job ends)
            if snap.running:
                last = max(self._ends[j] for j in snap.running)
                self._want_round(min(t + self._round_s, last))
        elif self._round_s and snap.pending and not stuck:
            # Rounds re-plan only while jobs wait; when everything runs, the next event does.
            # With nothing running, nothing decided and nothing else to come, a round-based
            # policy's state no longer changes: its waiting jobs can never start.
            self._want_round(t + self._round_s)

    def _want_round(self, t: float) -> None:
        if self._pass_at is None:
            self._pass_at = t
            self.q.push(t, Kind.PASS)

    def _submit(self, job: SimJob) -> None:
        self.snap.submit(job.spec, job.arrival, self.alliance.sites_for(job.spec))
        self.snap.throughput[job.spec.id] = {m: s / job.spec.count for m, s in job.speed.items()}

    def _stop(self, jid: JobId, now: float, signaled_at: float) -> None:
        """A running job stops (keeping what its executor keeps) and waits again."""
        self.exec.stop(jid, now, signaled_at)
        self._attain(jid, now)
        self.snap.requeue(jid)
        self._tokens.pop(jid)
        self._ends.pop(jid, None)

    def _node_down(self, fault: Fault, now: float) -> None:
        """The node stops taking jobs; jobs on it die now (no signal, so only periodic
        checkpoints survive) and are requeued; the node returns after ``down_s``."""
        self.snap.set_schedulable(fault.node, False)
        victims = [j for j, r in self.snap.running.items() if fault.node in r.placement.nodes]
        for jid in sorted(victims):
            self._stop(jid, now, self.exec.current(jid).start)
        self.node_failures_jobs += len(victims)
        if fault.down_s is not None:
            self.q.push(now + fault.down_s, Kind.NODE_UP, fault.node)
        self._want_pass(now)

    def _attain(self, job: JobId, now: float) -> None:
        """Device time received per model, closed when a run ends (Gavel's rounds use it)."""
        r = self.snap.running[job]
        model = r.placement.model
        r.job.attained_s[model] = r.job.attained_s.get(model, 0.0) + now - r.started_at

    def run(self, progress: Callable[[float], None] | None = None) -> SimResult:
        wall0 = time.perf_counter()
        for sj in sorted(self.jobs.values(), key=lambda j: (j.arrival, j.spec.id)):
            self.q.push(sj.arrival, Kind.ARRIVAL, sj)
        for f in self.faults:
            self.q.push(f.at, Kind.NODE_DOWN, f)
        total = len(self.jobs)
        finished = 0
        while len(self.q):
            ev = self.q.pop()
            self._advance(ev.time)
            if ev.kind is Kind.ARRIVAL:
                job: SimJob = ev.payload
                if self._round_s and self.params.round_arrivals:
                    self._held.append(job)
                else:
                    self._submit(job)
                self._want_pass(ev.time)
            elif ev.kind is Kind.COMPLETE:
                jid, token = ev.payload
                if self.exec.complete(jid, token, ev.time):
                    self._attain(jid, ev.time)
                    self.snap.finish(jid)
                    self._tokens.pop(jid)
                    self._ends.pop(jid, None)
                    finished += 1
                    if progress:
                        progress(finished / total)
                    self._want_pass(ev.time)
            elif ev.kind is Kind.STOPPED:
                jid, token, signaled_at = ev.payload
                if self._tokens.get(jid) == token and jid in self.snap.running:
                    self._stop(jid, ev.time, signaled_at)
                    self._want_pass(ev.time)
            elif ev.kind is Kind.NODE_DOWN:
                self._node_down(ev.payload, ev.time)
            elif ev.kind is Kind.NODE_UP:
                self.snap.set_schedulable(ev.payload, True)
                self._want_pass(ev.time)
            elif ev.kind is Kind.PASS:
                self._pass(ev.time)
        # Jobs still waiting when nothing else can happen never start: say why, once.
        unfinished = {}
        if self.snap.pending:
            last = schedule(self.snap, self.policy)
            unfinished = {j: last.reason(self.snap, j) for j in self.snap.pending}
        return SimResult(
            policy=getattr(self.policy, "name", type(self.policy).__name__),
            alliance=self.alliance,
            records=self.exec.records,
            entitlement_nu=dict(self.snap.entitlement_nu),
            series=self.series,
            busy_device_s=self.busy_device_s,
            busy_nu_s=self.busy_nu_s,
            member_nu_s=self.member_nu_s,
            violation_s=self.violation_s,
            jain_weighted=self._jain_num / self._jain_den if self._jain_den else 1.0,
            passes=self.passes,
            sched_s=self.sched_s,
            wall_s=time.perf_counter() - wall0,
            end_time=self._last,
            unfinished=unfinished,
        )
