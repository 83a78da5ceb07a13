"""The simulation loop: arrivals, passes of the real ``schedule()``, completions, preemptions.

Nothing here is special to the simulation in the scheduler: the loop owns a
:class:`~suanli.sched.snapshot.Snapshot` and keeps it up to date exactly as the service's
controller will, with a virtual clock and the simulated executor in place of the wall clock and
Ray.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from suanli.model.alliance import Alliance
from suanli.model.ids import JobId, MemberId, ModelId, NodeId
from suanli.sched.decision import Admit, Preempt
from suanli.sched.policy import Policy
from suanli.sched.schedule import schedule
from suanli.sched.snapshot import QueuedJob, Snapshot
from suanli.sim.engine import EventQueue, Kind, spaced_collections
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
class Tally:
    """Finished jobs folded into sums, for a stream whose records are not kept."""

    jobs: int = 0
    jct_s: float = 0.0
    wait_s: float = 0.0
    preemptions: int = 0
    lost_device_s: float = 0.0
    #: per member: [finished jobs, sum of their JCT in seconds]
    by_member: dict[MemberId, list[float]] = field(default_factory=dict)

    def add(self, rec: JobRecord) -> None:
        job = rec.job
        jct = (rec.finished_at or job.arrival) - job.arrival
        self.jobs += 1
        self.jct_s += jct
        self.wait_s += (rec.first_start or job.arrival) - job.arrival
        self.preemptions += rec.preemptions
        self.lost_device_s += rec.lost_device_s
        m = self.by_member.setdefault(job.spec.member, [0, 0.0])
        m[0] += 1
        m[1] += jct


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
    #: a stream's finished jobs (their records are not kept: ``records`` holds the others)
    tally: Tally | None = None


class Simulation:
    #: stopped runs before the heap is rid of their completions (at most once per as many
    #: stops as half the heap)
    stale_min = 4096

    def __init__(
        self,
        alliance: Alliance,
        jobs: list[SimJob] | Iterator[SimJob],
        policy: Policy,
        params: SimParams | None = None,
        faults: tuple[Fault, ...] = (),
    ) -> None:
        """``jobs``: a list, or an iterator of jobs in arrival order (a stream: each is read
        when the one before it arrives, and a finished job is folded into ``SimResult.tally``
        and forgotten, so that memory follows the jobs alive, not the trace)."""
        self.alliance = alliance
        self.policy = policy
        self.faults = faults
        for f in faults:
            if f.node not in alliance.nodes:
                raise ValueError(f"fault names unknown node {f.node!r}")
        self.params = params or SimParams()
        self._stream: Iterator[SimJob] | None = None
        self.tally: Tally | None = None
        if isinstance(jobs, list):
            self.jobs = {j.spec.id: j for j in jobs}
            if len(self.jobs) != len(jobs):
                raise ValueError("job ids in a simulation must be unique")
        else:
            self._stream = jobs
            self.jobs = {}
            self.tally = Tally()
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
        #: runs stopped since the heap last lost its stale completion events
        self._stale = 0
        self._pass_at: float | None = None
        self._last_pass = -math.inf
        self._last = 0.0
        self._nu_total = self.snap.pool.total_nu
        self._models_total = dict(self.snap.pool.devices_by_model)
        self.busy_device_s: dict[ModelId, float] = dict.fromkeys(self._models_total, 0.0)
        self.member_nu_s: dict[MemberId, float] = dict.fromkeys(alliance.members, 0.0)
        self.violation_s: dict[MemberId, float] = dict.fromkeys(alliance.members, 0.0)
        #: per member, its jobs owed now (within its entitlement, in its queue's order) and
        #: since when each has been owed; the oldest of them, per member that has any
        self._owed: dict[MemberId, dict[JobId, float]] = {}
        self._oldest_owed: dict[MemberId, float] = {}
        #: when guarantees were last looked at (violations are accrued up to it)
        self._owed_checked = 0.0
        #: per node, the devices of the running jobs on it that are held to sites
        self._fixed_on: dict[NodeId, dict[JobId, int]] = {}
        # Integrals over time are brought up to date per member and per model when theirs
        # change (and for all before a pass reads the usage history), not at every event:
        # an event costs the same with 10 members or 1,000.
        self._member_at: dict[MemberId, float] = dict.fromkeys(alliance.members, 0.0)
        self._model_at: dict[ModelId, float] = dict.fromkeys(self._models_total, 0.0)
        self._tau = self.params.half_life_s / math.log(2)
        # Jain's index from running sums over the contributors with demand (n, Σx, Σx²)
        self._entitled = {m: e for m, e in self.snap.entitlement_nu.items() if e > 0}
        self._queues = self.snap.member_queues()
        self._jx: dict[MemberId, float] = {}
        self._jn, self._js, self._js2 = 0, 0.0, 0.0
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
    def _advance(self, t: float) -> None:
        dt = t - self._last
        if dt <= 0:
            return
        jain = self._jain()
        if jain is not None:
            self._jain_num += jain * dt
            self._jain_den += dt
        self._last = t

    def _jain(self) -> float | None:
        """Jain's index of usage over entitlement, over contributors with demand."""
        if self._jn >= 2 and self._js > 1e-12:
            return self._js * self._js / (self._jn * self._js2)
        return None

    def _fold_member(self, m: MemberId) -> None:
        """Member ``m``'s NU-seconds and decayed usage history, up to now."""
        dt = self._last - self._member_at[m]
        if dt <= 0:
            return
        self._member_at[m] = self._last
        u = self.snap.used_nu[m]
        decay = 2.0 ** (-dt / self.params.half_life_s)
        history = self.snap.usage_history
        history[m] = history[m] * decay + u * self._tau * (1.0 - decay)
        if u:
            self.member_nu_s[m] += u * dt

    def _fold_model(self, model: ModelId) -> None:
        dt = self._last - self._model_at[model]
        if dt <= 0:
            return
        self._model_at[model] = self._last
        self.busy_device_s[model] += self.snap.busy_by_model[model] * dt

    def _fold_all(self) -> None:
        for m in self._member_at:
            self._fold_member(m)
        for f in self._model_at:
            self._fold_model(f)
        # (the running sums again from their terms: no drift over millions of changes)
        self._js = sum(self._jx.values())
        self._js2 = sum(x * x for x in self._jx.values())

    def _changing(self, m: MemberId, model: ModelId | None = None) -> None:
        """Before member ``m``'s usage or queue (and ``model``'s busy devices) change."""
        self._fold_member(m)
        if model is not None:
            self._fold_model(model)
        x = self._jx.pop(m, None)
        if x is not None:
            self._jn -= 1
            self._js -= x
            self._js2 -= x * x

    def _changed(self, m: MemberId) -> None:
        e = self._entitled.get(m)
        if e is None:
            return
        u = self.snap.used_nu[m]
        if u > 0 or len(self._queues[m]):
            x = self._jx[m] = u / e
            self._jn += 1
            self._js += x
            self._js2 += x * x

    def _update_guarantees(self, t: float) -> None:
        """Which of each member's waiting jobs are owed now: walking its queue in order, those
        whose NU on their cheapest model (at their sites, for a job held to them), added to
        what it uses and to the owed jobs before them, stay within its entitlement. A job owed
        for longer than the grace period is a violation for its member, from then until it
        starts or stops being owed (the time is counted once per member, however many of its
        jobs wait). Looked at after every pass, so each job's clock starts at the pass it
        became owed in."""
        self._accrue_violations(t)
        snap = self.snap
        cheapest = snap.pool.cheapest_nu
        # (whether a job could fit at its sites depends on its sites and shape only: jobs
        # alike, most of a member's, are looked at once)
        at_sites: dict[tuple[object, ...], bool] = {}
        for m, e in snap.entitlement_nu.items():
            before = self._owed.pop(m, None)
            if e <= 0 or not snap.pending_count(m):
                self._oldest_owed.pop(m, None)
                continue
            room = e - snap.used_nu[m] + 1e-9
            owed: dict[JobId, float] = {}
            for q in snap.member_queue(m):
                if (sites := q.allowed_sites) is not None:
                    s = q.spec
                    alike = (sites, s.models, s.gang, s.cpu, s.memory_gb)
                    fits = at_sites.get(alike)
                    if fits is None:
                        fits = at_sites[alike] = self._could_fit_at_sites(q)
                    if not fits:
                        continue  # (its sites are full of work that may not move for it)
                room -= cheapest(q.spec, q.allowed_sites)
                if room < 0:
                    break
                owed[q.id] = before.get(q.id, t) if before else t
            if owed:
                self._owed[m] = owed
                self._oldest_owed[m] = min(owed.values())
            else:
                self._oldest_owed.pop(m, None)

    def _could_fit_at_sites(self, q: QueuedJob) -> bool:
        """Whether ``q``, held to its sites, would fit there if every job not held there
        were gone (devices only): a node with enough such devices, or for a gang enough
        whole nodes. A job whose sites are full of work held there (its member's own, or
        that of the readers its member let in) is owed nothing by the pool; other members'
        non-preemptible jobs there count as the pool's doing (it placed them)."""
        sites = q.allowed_sites
        assert sites is not None
        snap = self.snap
        pool = snap.pool
        gang = q.spec.gang
        running = snap.running
        for f in pool.present(q.spec, sites):
            whole = 0
            for i in pool.nodes_at(f, sites):
                node = pool.nodes[i]
                if not snap.free.schedulable[i]:
                    continue
                fixed = 0
                for jid, n in self._fixed_on.get(node.id, {}).items():
                    held = running[jid].job.allowed_sites
                    if held is not None and held <= sites:
                        fixed += n
                if gang.nodes == 1:
                    if node.devices - fixed >= gang.per_node:
                        return True
                elif fixed == 0 and node.devices == gang.per_node:
                    whole += 1
                    if whole >= gang.nodes:
                        return True
        return False

    def _fix(self, jid: JobId, on: bool) -> None:
        """Keep ``_fixed_on`` as job ``jid`` starts (``on``) or stops."""
        r = self.snap.running[jid]
        if r.job.allowed_sites is None:
            return
        for node, devices in r.placement.assignments:
            if on:
                self._fixed_on.setdefault(node, {})[jid] = len(devices)
            else:
                self._fixed_on[node].pop(jid, None)

    def _accrue_violations(self, t: float) -> None:
        """Violation time from the last look at guarantees up to ``t`` (what was owed then is
        owed until now: owed jobs change only in passes)."""
        grace = self.params.grace_s
        last = self._owed_checked
        for m, since in self._oldest_owed.items():
            start = max(last, since + grace)
            if t > start:
                self.violation_s[m] += t - start
        self._owed_checked = t

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
        self._fold_all()  # (the policy reads the usage history)
        t0 = time.perf_counter()
        result = schedule(snap, self.policy)
        self.sched_s += time.perf_counter() - t0
        self.passes += 1
        switched: dict[JobId, QueuedJob] = {}
        if self.params.free_switching:  # stopped now, so that the admissions may follow
            admitted = {d.job for d in result.decisions if isinstance(d, Admit)}
            for d in result.decisions:
                if isinstance(d, Preempt):
                    # (one that starts again elsewhere now need not go through the queue)
                    q = self._stop(d.job, t, t, requeue=d.job not in admitted)
                    if q is not None:
                        switched[d.job] = q
            # a reclaim's job takes the devices its victims just freed, at this instant
            if result.reserved and self._again[0] != t:
                self._again = (t, 0)
            if result.reserved and self._again[1] < 4:
                self._again = (t, self._again[1] + 1)
                self._want_pass(t)
        for d in result.decisions:
            if isinstance(d, Admit):
                was = switched.pop(d.job, None)
                member = (snap.pending[d.job] if was is None else was).member
                self._changing(member, d.placement.model)
                snap.start(d.job, d.placement, t, was)
                self._fix(d.job, True)
                self._changed(member)
                end, token = self.exec.start(d.job, d.placement, t)
                self._tokens[d.job] = token
                self._ends[d.job] = end
                self.q.push(end, Kind.COMPLETE, (d.job, token))
            elif isinstance(d, Preempt) and not self.params.free_switching:
                snap.mark_stopping(d.job, t + d.grace_s)
                self.q.push(t + d.grace_s, Kind.STOPPED, (d.job, self._tokens[d.job], t))
        snap.reservations = {j: p for j, p in result.reservations.items() if j in snap.pending}
        self._update_guarantees(t)
        self._sample(t)
        stuck = not result.decisions and not snap.running and not len(self.q)
        if self._round_s and self.params.round_arrivals:
            # Gavel's round ends when its last job's share of it does (or the job ends)
            if snap.running:
                last = max(map(self._ends.__getitem__, snap.running))
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

    def _next_arrival(self, after: float) -> None:
        """A stream's next job joins the queue of events."""
        assert self._stream is not None
        job = next(self._stream, None)
        if job is None:
            return
        if job.arrival < after:
            raise ValueError(f"job {job.spec.id}: arrives at {job.arrival}, before {after}")
        if job.spec.id in self.jobs:
            raise ValueError(f"job {job.spec.id}: its id is already in the simulation")
        self.jobs[job.spec.id] = job
        self.exec.add(job)
        self.q.push(job.arrival, Kind.ARRIVAL, job)

    def _submit(self, job: SimJob) -> None:
        self._changing(job.spec.member)
        self.snap.submit(job.spec, job.arrival, self.alliance.sites_for(job.spec))
        self._changed(job.spec.member)
        self.snap.throughput[job.spec.id] = {m: s / job.spec.count for m, s in job.speed.items()}

    def _stop(
        self, jid: JobId, now: float, signaled_at: float, requeue: bool = True
    ) -> QueuedJob | None:
        """A running job stops (keeping what its executor keeps) and waits again; or, not
        ``requeue``, is switched out to start again in this instant (returned)."""
        self.exec.stop(jid, now, signaled_at)
        self._attain(jid, now)
        r = self.snap.running[jid]
        self._changing(r.member, r.placement.model)
        self._fix(jid, False)
        out = None
        if requeue:
            self.snap.requeue(jid)
        else:
            out = self.snap.switch_out(jid)
        self._changed(r.member)
        self._tokens.pop(jid)
        self._ends.pop(jid, None)
        # Its completion event is stale now. Stale events would pile up in the heap (a job
        # switched every round leaves one per run), each making every pop dearer: once they
        # could be half of it, they go.
        self._stale += 1
        if self._stale > self.stale_min and 2 * self._stale > len(self.q):
            self._stale = 0
            self.q.discard(self._stale_event)
        return out

    def _stale_event(self, kind: Kind, payload: Any) -> bool:
        """A completion of a run that is no longer the job's current one."""
        return kind is Kind.COMPLETE and self._tokens.get(payload[0]) != payload[1]

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
        with spaced_collections():
            return self._run(progress)

    def _run(self, progress: Callable[[float], None] | None) -> SimResult:
        wall0 = time.perf_counter()
        if self._stream is None:
            for sj in sorted(self.jobs.values(), key=lambda j: (j.arrival, j.spec.id)):
                self.q.push(sj.arrival, Kind.ARRIVAL, sj)
        else:
            self._next_arrival(0.0)
        for f in self.faults:
            self.q.push(f.at, Kind.NODE_DOWN, f)
        total = len(self.jobs)
        finished = 0
        while len(self.q):
            now, kind, _, payload = self.q.pop()
            self._advance(now)
            if kind is Kind.ARRIVAL:
                job: SimJob = payload
                if self._stream is not None:
                    self._next_arrival(now)
                if self._round_s and self.params.round_arrivals:
                    self._held.append(job)
                else:
                    self._submit(job)
                self._want_pass(now)
            elif kind is Kind.COMPLETE:
                jid, token = payload
                # (a stream forgets a finished job: an earlier run's completion may follow it)
                if jid in self.jobs and self.exec.complete(jid, token, now):
                    self._attain(jid, now)
                    r = self.snap.running[jid]
                    self._changing(r.member, r.placement.model)
                    self._fix(jid, False)
                    self.snap.finish(jid)
                    self._changed(r.member)
                    self._tokens.pop(jid)
                    self._ends.pop(jid, None)
                    finished += 1
                    if self.tally is not None:  # a stream's job is done with
                        self.tally.add(self.exec.records.pop(jid))
                        del self.jobs[jid]
                        self.snap.throughput.pop(jid, None)
                    elif progress:
                        progress(finished / total)
                    self._want_pass(now)
            elif kind is Kind.STOPPED:
                jid, token, signaled_at = payload
                if self._tokens.get(jid) == token and jid in self.snap.running:
                    self._stop(jid, now, signaled_at)
                    self._want_pass(now)
            elif kind is Kind.NODE_DOWN:
                self._node_down(payload, now)
            elif kind is Kind.NODE_UP:
                self.snap.set_schedulable(payload, True)
                self._want_pass(now)
            elif kind is Kind.PASS:
                self._pass(now)
        # Jobs still waiting when nothing else can happen never start: say why, once.
        self._fold_all()
        self._accrue_violations(self._last)
        self._owed.clear()
        self._oldest_owed.clear()
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
            busy_nu_s=sum(self.member_nu_s.values()),
            member_nu_s=self.member_nu_s,
            violation_s=self.violation_s,
            jain_weighted=self._jain_num / self._jain_den if self._jain_den else 1.0,
            passes=self.passes,
            sched_s=self.sched_s,
            wall_s=time.perf_counter() - wall0,
            end_time=self._last,
            unfinished=unfinished,
            tally=self.tally,
        )
