"""``schedule(snapshot, policy)``: one pure, deterministic scheduling pass."""

from __future__ import annotations

from dataclasses import dataclass, field

from suanli.model.ids import JobId, MemberId
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
    """Run one pass of ``policy`` over ``snapshot``. Reads the snapshot, never changes it."""
    ctx = PassContext(snapshot)
    policy.run(ctx)
    return PassResult(
        tuple(ctx.decisions), ctx.reasons, ctx.member_blocked, ctx.end_reason, ctx.examined
    )
