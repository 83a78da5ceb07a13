"""A job as the simulator sees it: a spec, when it arrives, how much work, how fast where."""

from __future__ import annotations

from dataclasses import dataclass, field

from suanli.model.ids import ModelId
from suanli.model.job import JobSpec


@dataclass(slots=True)
class SimJob:
    """``work`` is in the trace's unit (training steps for Gavel's traces, seconds on the
    reference model for duration-based traces); ``speed[model]`` is work per second for the
    whole job on that model. The scheduler gets ``speed / devices`` as its throughput matrix."""

    spec: JobSpec
    arrival: float
    work: float
    speed: dict[ModelId, float]
    #: free-form facts from the trace (job type, notes on how the speed was derived)
    info: dict[str, str] = field(default_factory=dict)
