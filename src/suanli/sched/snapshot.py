"""The scheduler's input: the pool, what runs, what waits, shares, usage history and the time.

A Snapshot is kept up to date incrementally by its owner (the simulator or the service) with
:meth:`Snapshot.submit`, :meth:`Snapshot.start`, :meth:`Snapshot.finish`, ... so that a pass
never rescans the queue. ``schedule()`` reads it and never changes it.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass, field
from typing import Any

from suanli.model.alliance import Alliance
from suanli.model.ids import JobId, MemberId, ModelId, NodeId, SiteId
from suanli.model.job import JobSpec, Placement
from suanli.model.member import Member
from suanli.model.share import Share
from suanli.sched.placement import FreeState
from suanli.sched.pool import Pool

#: a job's acceptable models and the sites it is held to (None: any)
Kind = tuple[frozenset[ModelId], frozenset[SiteId] | None]


@dataclass(slots=True)
class QueuedJob:
    """A pending job. ``seq`` breaks ties between equal submit times (submission order).
    ``allowed_sites`` is where its datasets may be processed (None: anywhere).
    ``attained_s`` is device-time already received per model (Gavel's rounds use it)."""

    spec: JobSpec
    submitted_at: float
    seq: int
    allowed_sites: frozenset[SiteId] | None = None
    attained_s: dict[ModelId, float] = field(default_factory=dict)
    #: the spec's id and member, read on every step of a pass (plain fields: no lookups)
    id: JobId = field(init=False)
    member: MemberId = field(init=False)
    #: where it may run: its acceptable models and its sites (jobs alike in this wait alike)
    kind: Kind = field(init=False)

    def __post_init__(self) -> None:
        self.id = self.spec.id
        self.member = self.spec.member
        self.kind = (self.spec.models, self.allowed_sites)


@dataclass(slots=True)
class RunningJob:
    """A job holding devices. ``stopping``: a preemption was issued and it is in its grace
    period; its devices are still taken, until ``stop_at`` at the latest (infinite: not
    known)."""

    job: QueuedJob
    placement: Placement
    started_at: float
    stopping: bool = False
    stop_at: float = math.inf
    #: the job's id, spec and member (plain fields: a pass reads them for every running job)
    id: JobId = field(init=False)
    spec: JobSpec = field(init=False)
    member: MemberId = field(init=False)
    #: what a policy worked out about this run, kept as long as the run lasts (each policy
    #: keys its own entries by its name)
    memo: dict[str, Any] = field(init=False, default_factory=dict)
    #: the NU its placement holds (counted once, when it starts)
    nu: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.id = self.job.id
        self.spec = self.job.spec
        self.member = self.job.member


class _SortedQueue:
    """A sorted queue with lazy deletion: add in O(log n + shift), discard in O(1),
    iterate in order skipping discarded entries, position in O(log n).

    An entry is live while it is the very key its job was last added with (a requeued job's
    old entry is dead, though equal keys may compare equal). ``_head`` is the index of the
    first entry that may be live: the dead prefix before it is skipped once, not at every
    pass (a FIFO queue's head is where admissions happen). Dead entries are dropped once
    they outnumber the live ones (and are more than a few), so that walking past them costs
    at most as much as walking the live ones, amortized O(1) per discard."""

    __slots__ = ("_dead", "_head", "_keys", "_live")

    def __init__(self) -> None:
        self._keys: list[tuple[float, float, int, JobId]] = []
        self._live: dict[JobId, tuple[float, float, int, JobId]] = {}
        self._dead = 0
        self._head = 0

    def __len__(self) -> int:
        return len(self._live)

    def add(self, key: tuple[float, float, int, JobId]) -> None:
        if key[3] in self._live:
            raise ValueError(f"job {key[3]} is already queued")
        key = (key[0], key[1], key[2], key[3])  # (a new object: never one a dead entry is)
        if self._keys and key >= self._keys[-1]:
            self._keys.append(key)
        else:
            pos = bisect.bisect_right(self._keys, key)
            self._keys.insert(pos, key)
            self._head = min(self._head, pos)
        self._live[key[3]] = key

    def discard(self, job: JobId) -> None:
        if self._live.pop(job, None) is not None:
            self._dead += 1
            if self._dead > 64 and self._dead > len(self._live):
                live = self._live
                self._keys = [k for k in self._keys if live.get(k[3]) is k]
                self._dead = 0
                self._head = 0

    def __iter__(self) -> Iterator[JobId]:
        keys, live = self._keys, self._live
        i = self._head
        n = len(keys)
        while i < n and live.get(keys[i][3]) is not keys[i]:
            i += 1
        self._head = i
        for k in itertools.islice(keys, i, None):
            if live.get(j := k[3]) is k:
                yield j

    def position(self, key: tuple[float, float, int, JobId]) -> int:
        """Approximate 0-based position (counts discarded entries not yet compacted)."""
        return bisect.bisect_left(self._keys, key)


class Snapshot:
    """Everything a pass may look at. Mutated only by its owner, between passes."""

    def __init__(
        self,
        pool: Pool,
        members: Mapping[MemberId, Member],
        shares: Mapping[tuple[MemberId, ModelId], Share],
        entitlement_nu: Mapping[MemberId, float],
        now: float = 0.0,
        throughput: Mapping[JobId, Mapping[ModelId, float]] | None = None,
    ) -> None:
        self.pool = pool
        self.members = dict(members)
        self.shares = dict(shares)
        self.entitlement_nu = {m: entitlement_nu.get(m, 0.0) for m in self.members}
        self.now = now
        #: measured speed per job and model (work per second per device); None: use NU.
        self.throughput: dict[JobId, Mapping[ModelId, float]] = dict(throughput or {})
        #: decayed past usage per member, in NU-seconds (the ledger or the simulator feeds it)
        self.usage_history: dict[MemberId, float] = dict.fromkeys(self.members, 0.0)
        self.free = FreeState(pool)
        self.pending: dict[JobId, QueuedJob] = {}
        self.running: dict[JobId, RunningJob] = {}
        #: running jobs in their grace period (a preemption was issued)
        self.stopping: set[JobId] = set()
        #: pending jobs that reclaimed devices in the last pass, and where they will run: the
        #: devices (free ones, and those of the jobs stopping for them) are held from every
        #: other job until the next pass has looked at the reserving job again
        self.reservations: dict[JobId, Placement] = {}
        #: a preempted job stops at once with all its work and its devices may be taken in
        #: the same pass (Gavel's physics, simulated only: no real executor frees devices so)
        self.instant_switch = False
        #: running jobs per (member, model), for reclaim without a scan of every running job
        self.running_by: dict[tuple[MemberId, ModelId], dict[JobId, RunningJob]] = {}
        #: running jobs per (model, site) they hold devices at (a gang spanning sites is at
        #: each), so that a job held to its sites finds what runs there without a scan
        self.running_at: dict[tuple[ModelId, SiteId], dict[JobId, RunningJob]] = {}
        #: bumped whenever the running jobs of a (member, model) change (for callers' caches)
        self.running_by_version: dict[tuple[MemberId, ModelId], int] = {}
        #: running jobs per (model, the models they accept, member), so that a policy moving
        #: jobs to other models looks only at those that accept a model it has room on, and
        #: of the members it would let move
        self.running_by_accepts: dict[
            tuple[ModelId, frozenset[ModelId], MemberId], dict[JobId, RunningJob]
        ] = {}
        self.used_devices: dict[tuple[MemberId, ModelId], int] = {}
        self.used_nu: dict[MemberId, float] = dict.fromkeys(self.members, 0.0)
        #: the NU each member's non-preemptible running jobs hold (no one can take it back)
        self.fixed_nu: dict[MemberId, float] = dict.fromkeys(self.members, 0.0)
        #: each member's pending non-preemptible jobs
        self.pending_fixed: dict[MemberId, int] = dict.fromkeys(self.members, 0)
        #: each member's queue split by kind (acceptable models and sites), in the same order
        self._by_kind: dict[MemberId, dict[Kind, _SortedQueue]] = {m: {} for m in self.members}
        #: the devices pending jobs held to no site ask for, per set of acceptable models,
        #: all members together (not those of jobs no node could ever host: they wait for
        #: nothing a placement could leave them)
        self.pending_devices: dict[frozenset[ModelId], int] = {}
        #: the devices pending jobs held to sites ask for, per (sites, acceptable models)
        self.pending_held: dict[tuple[frozenset[SiteId], frozenset[ModelId]], int] = {}
        #: devices in use per model, all members together
        self.busy_by_model: dict[ModelId, int] = dict.fromkeys(pool.models, 0)
        self._by_member: dict[MemberId, _SortedQueue] = {m: _SortedQueue() for m in self.members}
        self._fifo = _SortedQueue()
        #: the jobs of each group (pending or running), by the group's id
        self.groups: dict[JobId, set[JobId]] = {}
        self._seq = 0
        #: bumped by every change to the queue or to usage (for callers' caches)
        self.changes = 0

    @classmethod
    def from_alliance(cls, alliance: Alliance, now: float = 0.0) -> Snapshot:
        return cls(
            Pool.from_alliance(alliance),
            alliance.members,
            alliance.shares(),
            alliance.entitlement_nu(),
            now,
        )

    # -- keys ------------------------------------------------------------------------------
    @staticmethod
    def member_key(q: QueuedJob) -> tuple[float, float, int, JobId]:
        """A member's queue order: priority first; at one priority its non-preemptible jobs
        (which may run only within its guarantee: that is theirs before its preemptible jobs
        borrow), then submit time."""
        s = q.spec
        return (-2.0 * s.priority + (1.0 if s.preemptible else 0.0), q.submitted_at, q.seq, s.id)

    @staticmethod
    def fifo_key(q: QueuedJob) -> tuple[float, float, int, JobId]:
        return (q.submitted_at, 0.0, q.seq, q.spec.id)

    # -- changes by the owner --------------------------------------------------------------
    def submit(
        self,
        spec: JobSpec,
        submitted_at: float | None = None,
        allowed_sites: frozenset[SiteId] | None = None,
    ) -> QueuedJob:
        if spec.member not in self.members:
            raise KeyError(f"unknown member {spec.member!r}")
        if spec.id in self.pending or spec.id in self.running:
            raise ValueError(f"job {spec.id} is already known")
        self._seq += 1
        q = QueuedJob(
            spec, self.now if submitted_at is None else submitted_at, self._seq, allowed_sites
        )
        self._enqueue(q)
        if spec.group is not None:
            self.groups.setdefault(spec.group.id, set()).add(spec.id)
        return q

    def _forget(self, spec: JobSpec) -> None:
        if spec.group is not None:
            parts = self.groups.get(spec.group.id, set())
            parts.discard(spec.id)
            if not parts:
                self.groups.pop(spec.group.id, None)

    def _enqueue(self, q: QueuedJob) -> None:
        self.changes += 1
        self.pending[q.id] = q
        self._by_member[q.member].add(self.member_key(q))
        if not q.spec.preemptible:
            self.pending_fixed[q.member] += 1
        kinds = self._by_kind[q.member]
        of_kind = kinds.get(q.kind)
        if of_kind is None:
            of_kind = kinds[q.kind] = _SortedQueue()
        of_kind.add(self.member_key(q))
        if q.allowed_sites is None:
            if self.pool.present(q.spec):
                want = self.pending_devices
                want[q.spec.models] = want.get(q.spec.models, 0) + q.spec.count
        else:
            held = self.pending_held
            kind = (q.allowed_sites, q.spec.models)
            held[kind] = held.get(kind, 0) + q.spec.count
        self._fifo.add(self.fifo_key(q))

    def _dequeue(self, job: JobId) -> QueuedJob:
        self.changes += 1
        q = self.pending.pop(job)
        self._by_member[q.member].discard(job)
        if not q.spec.preemptible:
            self.pending_fixed[q.member] -= 1
        kinds = self._by_kind[q.member]
        of_kind = kinds[q.kind]
        of_kind.discard(job)
        if not of_kind:
            del kinds[q.kind]
        if q.allowed_sites is None:
            if self.pool.present(q.spec):
                want = self.pending_devices
                if want[q.spec.models] == q.spec.count:
                    del want[q.spec.models]
                else:
                    want[q.spec.models] -= q.spec.count
        else:
            held = self.pending_held
            kind = (q.allowed_sites, q.spec.models)
            if held[kind] == q.spec.count:
                del held[kind]
            else:
                held[kind] -= q.spec.count
        self._fifo.discard(job)
        return q

    def cancel(self, job: JobId) -> None:
        """Remove a pending job."""
        self.reservations.pop(job, None)
        self._forget(self._dequeue(job).spec)

    def start(
        self,
        job: JobId,
        placement: Placement,
        at: float | None = None,
        switched: QueuedJob | None = None,
    ) -> RunningJob:
        """A pending job starts; or ``switched``, the job :meth:`switch_out` stopped in this
        instant, starts again (it never went back to the queue)."""
        if switched is None:
            q = self.pending[job]
            self.free.take(placement, q.spec.cpu, q.spec.memory_gb, not q.spec.preemptible)
            self._dequeue(job)
            self.reservations.pop(job, None)
        else:
            q = switched
            self.free.take(placement, q.spec.cpu, q.spec.memory_gb, not q.spec.preemptible)
        r = RunningJob(q, placement, self.now if at is None else at)
        r.nu = self.nu_of(placement)
        self.running[job] = r
        self._account(r, +1)
        return r

    def mark_stopping(self, job: JobId, until: float | None = None) -> None:
        """A preemption of ``job`` was issued; it stops by ``until`` (None: not known)."""
        r = self.running[job]
        r.stopping = True
        if until is not None:
            r.stop_at = until
        self.stopping.add(job)

    def _release(self, job: JobId) -> RunningJob:
        r = self.running.pop(job)
        self.stopping.discard(job)
        self.free.give(r.placement, r.spec.cpu, r.spec.memory_gb, not r.spec.preemptible)
        self._account(r, -1)
        return r

    def finish(self, job: JobId) -> RunningJob:
        """A running job ended (success, failure or cancel): free its devices."""
        r = self._release(job)
        self._forget(r.spec)
        return r

    def requeue(self, job: JobId) -> QueuedJob:
        """A preempted (or failed-over) job stopped: free its devices and queue it again with
        its original submit time, so it keeps its place."""
        r = self._release(job)
        self._enqueue(r.job)
        return r.job

    def switch_out(self, job: JobId) -> QueuedJob:
        """A running job stops to start again elsewhere in the same instant (a simulated round
        where switching costs nothing): its devices are freed, and until :meth:`start` is
        given it back as ``switched`` it is neither running nor queued (saving the queues
        a round trip each switch). Whoever calls this must start it again before anyone
        reads the snapshot."""
        return self._release(job).job

    def hold(self, node: NodeId, devices: int) -> None:
        """``devices`` of ``node``'s free devices are busy with work outside the pool (a
        member's own Slurm jobs): no placement gets them. (Which ones does not matter: such
        a site counts its devices without naming them.)"""
        free = self.free
        i = self.pool.index[node]
        pool_node = self.pool.nodes[i]
        idle = [d for d in range(pool_node.devices) if free.free[i] >> d & 1]
        taken = tuple(idle[: max(0, devices)])
        if taken:
            free.take(Placement(pool_node.model, ((node, taken),)), 0.0, 0.0)

    def set_schedulable(self, node: NodeId, on: bool) -> None:
        self.free.set_schedulable(node, on)

    def _account(self, r: RunningJob, sign: int) -> None:
        self.changes += 1
        key = (r.member, r.placement.model)
        self.busy_by_model[key[1]] += sign * r.placement.devices
        self.used_devices[key] = self.used_devices.get(key, 0) + sign * r.placement.devices
        a = r.placement.assignments
        site_of = self.pool.site_of
        at = (
            ((key[1], site_of[a[0][0]]),)
            if len(a) == 1
            else dict.fromkeys((key[1], site_of[n]) for n, _ in a)
        )
        accepts = (key[1], r.spec.models, key[0])
        self.running_by_version[key] = self.running_by_version.get(key, 0) + 1
        if sign > 0:
            self.running_by.setdefault(key, {})[r.id] = r
            self.running_by_accepts.setdefault(accepts, {})[r.id] = r
            for k in at:
                self.running_at.setdefault(k, {})[r.id] = r
        else:
            del self.running_by[key][r.id]
            on = self.running_by_accepts[accepts]
            del on[r.id]
            if not on:  # (a member's kind of job may not come again: the scan walks these)
                del self.running_by_accepts[accepts]
            for k in at:
                del self.running_at[k][r.id]
        self.used_nu[r.member] += sign * r.nu
        if not r.spec.preemptible:
            self.fixed_nu[r.member] += sign * r.nu

    # -- reads -----------------------------------------------------------------------------
    def running_of(
        self, members: Iterable[MemberId], models: Iterable[ModelId]
    ) -> Iterator[RunningJob]:
        """Running jobs of these members on these models."""
        models = list(models)
        for m in members:
            for f in models:
                yield from self.running_by.get((m, f), {}).values()

    def nu_of(self, placement: Placement) -> float:
        pool = self.pool
        u = pool.uniform_nu.get(placement.model)
        if u is not None:
            return u * placement.devices
        nodes = pool.nodes
        idx = pool.index
        a = placement.assignments
        if len(a) == 1:  # (most placements: one node)
            return nodes[idx[a[0][0]]].nu_per_device * placement.devices
        return sum(nodes[idx[n]].nu_per_device * len(d) for n, d in a)

    def member_queue(self, member: MemberId) -> Iterator[QueuedJob]:
        """The member's pending jobs in :meth:`member_key` order."""
        for j in self._by_member[member]:
            yield self.pending[j]

    def kind_queues(self, member: MemberId) -> dict[Kind, Iterator[QueuedJob]]:
        """The member's pending jobs per kind, each in the member's queue order."""
        pending = self.pending
        return {kind: (pending[j] for j in queue) for kind, queue in self._by_kind[member].items()}

    def pending_kinds(self, member: MemberId) -> dict[Kind, int]:
        """How many pending jobs of each kind the member has."""
        return {kind: len(queue) for kind, queue in self._by_kind[member].items()}

    def fifo_queue(self) -> Iterator[QueuedJob]:
        """All pending jobs by submit time."""
        for j in self._fifo:
            yield self.pending[j]

    def queue_position(self, job: JobId) -> int:
        q = self.pending[job]
        return self._by_member[q.member].position(self.member_key(q))

    def pending_count(self, member: MemberId) -> int:
        return len(self._by_member[member])

    def member_queues(self) -> Mapping[MemberId, Sized]:
        """Each member's queue, live (its length is its pending count)."""
        return self._by_member
