"""What a scheduling pass returns: admit a job with a placement, or preempt one. Nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from suanli.model.ids import JobId
from suanli.model.job import Placement


@dataclass(frozen=True, slots=True)
class Admit:
    job: JobId
    placement: Placement
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Preempt:
    """Stop ``job`` after ``grace_s`` seconds (time to checkpoint); it then goes back to
    PENDING. Its devices stay taken until the executor reports it stopped."""

    job: JobId
    reason: str
    grace_s: float


Decision = Admit | Preempt
