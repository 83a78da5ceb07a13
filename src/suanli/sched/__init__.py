"""The pure scheduling core: ``schedule(snapshot, policy) -> PassResult``.

No I/O, no clock reads, no randomness. The simulator and the service call the same code.
"""

from suanli.sched.decision import Admit, Decision, Preempt
from suanli.sched.pool import Pool
from suanli.sched.schedule import PassResult, schedule
from suanli.sched.snapshot import QueuedJob, RunningJob, Snapshot

__all__ = [
    "Admit",
    "Decision",
    "PassResult",
    "Pool",
    "Preempt",
    "QueuedJob",
    "RunningJob",
    "Snapshot",
    "schedule",
]
