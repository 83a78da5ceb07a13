"""``schedule(snapshot, policy)``: one pure, deterministic scheduling pass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from suanli.model.ids import JobId, MemberId
from suanli.model.job import JobSpec, Placement
from suanli.sched.context import PassContext, describe
from suanli.sched.decision import Admit, Decision, Preempt
from suanli.sched.policy import Policy
from suanli.sched.snapshot import Snapshot


@dataclass(frozen=True)
class PassResult:
    """Decisions of one pass and why each pending job waits.

    ``reasons`` holds the jobs the pass examined. Jobs it did not reach (a queue of a million
    is not walked when the pool is full) get a reason from :meth:`reason`, derived from why
    their member's queue stopped being served, in O(log n) per job.
    """

    decisions: tuple[Decision, ...]
    reasons: dict[JobId, str]
    member_blocked: dict[MemberId, str] = field(default_factory=dict)
    end_reason: str = ""
    examined: int = 0
    #: pending jobs a preemption in this pass made room for: they start once it ends
    reserved: frozenset[JobId] = frozenset()
    #: where each of them will run: the owner keeps it in the next pass's snapshot
    #: (``Snapshot.reservations``), which holds it for them
    reservations: Mapping[JobId, Placement] = field(default_factory=dict)

    @property
    def admits(self) -> list[Admit]:
        return [d for d in self.decisions if isinstance(d, Admit)]

    @property
    def preempts(self) -> list[Preempt]:
        return [d for d in self.decisions if isinstance(d, Preempt)]

    def reason(self, snapshot: Snapshot, job: JobId) -> str:
        """Why ``job`` (pending in ``snapshot``) waits after this pass."""
        if job in self.reasons:
            return self.reasons[job]
        q = snapshot.pending[job]
        blocked = self.member_blocked.get(q.member)
        pos = snapshot.queue_position(job)
        if blocked:
            return f"behind {pos} earlier job(s) of {q.member}, whose queue waits: {blocked}"
        if self.end_reason:
            return f"not reached this pass ({describe(q)}): {self.end_reason}"
        return f"not reached this pass ({describe(q)}), position {pos} in {q.member}'s queue"


def schedule(snapshot: Snapshot, policy: Policy) -> PassResult:
    """Run one pass of ``policy`` over ``snapshot``. Reads the snapshot, never changes it.

    Groups (a federated run's parts) start together: when the pass would start some of a
    group's jobs but fewer than its minimum would then hold devices, the group's pending jobs
    are held and the pass is run again without them, so that neither their admissions nor the
    preemptions made for them happen, and their devices go to others. Each repetition holds at
    least one more group, so there are at most as many as groups waiting."""
    held: dict[JobId, str] = {}
    while True:
        ctx = PassContext(snapshot, held)
        policy.run(ctx)
        # (a pass's caches die with it: what a policy kept there may refer to the context,
        # and such a cycle would keep every pass's working state until the collector runs)
        ctx.cache.clear()
        short = _short_groups(snapshot, ctx)
        if not short:
            break
        held.update(short)
    return PassResult(
        tuple(ctx.decisions),
        {**ctx.reasons, **held} if held else ctx.reasons,
        ctx.member_blocked,
        ctx.end_reason,
        ctx.examined,
        frozenset(ctx.reserved),
        dict(ctx.reservations),
    )


def _short_groups(snap: Snapshot, ctx: PassContext) -> dict[JobId, str]:
    """The pending jobs of every group that this pass would start below its minimum, and
    why they wait."""
    out: dict[JobId, str] = {}
    starting = ctx.admitted | ctx.reserved

    def spec(j: JobId) -> JobSpec:  # (a job moved in this pass is admitted while it runs)
        q = snap.pending.get(j)
        return q.spec if q is not None else snap.running[j].spec

    for gid in sorted({g.id for j in starting if (g := spec(j).group)}):
        parts = snap.groups[gid]
        group = spec(next(j for j in sorted(parts) if j in starting)).group
        assert group is not None
        live = sum(
            1 for j in parts if j in starting or (j in snap.running and j not in ctx.stopping)
        )
        if live >= group.min_size:
            continue
        why = (
            f"group {gid}: only {live} of its {group.size} jobs could hold devices now, and it "
            f"starts with at least {group.min_size} at once"
        )
        out.update((j, why) for j in parts if j in snap.pending)
    return out
