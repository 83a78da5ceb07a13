"""The simulated executor: runs jobs on a virtual clock, checkpoints, loses work on preemption.

A run of job j on model f progresses at ``speed[f]`` work per second. A preempted run gets a
signal (SIGTERM) at time s and stops at the end of its grace period. It keeps the larger of
- its progress at the signal, if jobs checkpoint when signaled (``checkpoint_on_signal``), and
- its last periodic checkpoint: floor(e / c)·c·speed after e seconds with interval c;
and loses the rest, which is counted. A job with neither loses its whole run. A run that
reaches its work completes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from suanli.model.ids import JobId, ModelId, NodeId
from suanli.model.job import Placement
from suanli.sim.workload import SimJob


@dataclass(slots=True)
class Run:
    start: float
    model: ModelId
    devices: int
    speed: float
    done_before: float
    token: int
    end: float | None = None
    kept: float = 0.0
    lost: float = 0.0
    #: where it ran (node -> device indexes), for the simulation's ledger book
    assignments: tuple[tuple[NodeId, tuple[int, ...]], ...] = ()


@dataclass(slots=True)
class JobRecord:
    """Everything that happened to one job."""

    job: SimJob
    runs: list[Run] = field(default_factory=list)
    done: float = 0.0
    finished_at: float | None = None
    preemptions: int = 0

    @property
    def first_start(self) -> float | None:
        return self.runs[0].start if self.runs else None

    @property
    def lost_device_s(self) -> float:
        return sum(r.devices * r.lost / r.speed for r in self.runs)


class SimulatedExecutor:
    def __init__(
        self,
        jobs: dict[JobId, SimJob],
        default_checkpoint_s: float | None,
        checkpoint_on_signal: bool = True,
    ) -> None:
        self.records = {j: JobRecord(job) for j, job in jobs.items()}
        self.default_checkpoint_s = default_checkpoint_s
        self.checkpoint_on_signal = checkpoint_on_signal
        self._token = 0

    def add(self, job: SimJob) -> None:
        self.records[job.spec.id] = JobRecord(job)

    def checkpoint_s(self, rec: JobRecord) -> float | None:
        return rec.job.spec.checkpoint_interval_s or self.default_checkpoint_s

    def start(self, job: JobId, placement: Placement, now: float) -> tuple[float, int]:
        """Start a run; returns its completion time and its token."""
        rec = self.records[job]
        self._token += 1
        speed = rec.job.speed[placement.model]
        run = Run(
            now,
            placement.model,
            placement.devices,
            speed,
            rec.done,
            self._token,
            assignments=placement.assignments,
        )
        rec.runs.append(run)
        return now + (rec.job.work - rec.done) / speed, self._token

    def current(self, job: JobId) -> Run:
        return self.records[job].runs[-1]

    def complete(self, job: JobId, token: int, now: float) -> bool:
        """The run with ``token`` reached its work. False if that run is no longer current."""
        rec = self.records[job]
        run = rec.runs[-1]
        if run.token != token or run.end is not None:
            return False
        run.end = now
        run.kept = rec.job.work - rec.done
        rec.done = rec.job.work
        rec.finished_at = now
        return True

    def stop(self, job: JobId, now: float, signaled_at: float) -> None:
        """A preempted run, signaled at ``signaled_at``, ends now: keep its best checkpoint,
        lose the rest."""
        rec = self.records[job]
        run = rec.runs[-1]
        elapsed = now - run.start
        progress = min(elapsed * run.speed, rec.job.work - rec.done)
        c = self.checkpoint_s(rec)
        kept = 0.0 if not c else min(progress, math.floor(elapsed / c) * c * run.speed)
        if self.checkpoint_on_signal:
            kept = max(kept, min(progress, (signaled_at - run.start) * run.speed))
        run.end, run.kept, run.lost = now, kept, progress - kept
        rec.done += kept
        rec.preemptions += 1
