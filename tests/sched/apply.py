"""Apply a pass's decisions to a snapshot the way an executor would, for tests."""

from suanli.sched.decision import Admit, Preempt
from suanli.sched.schedule import PassResult
from suanli.sched.snapshot import Snapshot


def apply(snap: Snapshot, result: PassResult, victims_stop: bool = True) -> None:
    """Start admitted jobs; preempted jobs stop (grace over) and are requeued. The pass's
    reservations are kept for the next pass, as the simulator and the controller keep them."""
    for d in result.decisions:
        if isinstance(d, Admit):
            snap.start(d.job, d.placement)
        elif isinstance(d, Preempt):
            snap.mark_stopping(d.job, snap.now + d.grace_s)
            if victims_stop:
                snap.requeue(d.job)
    snap.reservations = {j: p for j, p in result.reservations.items() if j in snap.pending}
