"""A deterministic discrete-event engine: a heap of (time, priority, sequence, event).

The sequence number makes ties replay identically: events at the same time and priority run
in the order they were scheduled.
"""

from __future__ import annotations

import gc
import heapq
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import Any


class Kind(IntEnum):
    """Event kinds; at one instant they run in this order."""

    COMPLETE = 0  # a run finished its work
    STOPPED = 1  # a preempted run's grace period ended
    NODE_DOWN = 2  # a node failed or was removed
    NODE_UP = 3  # a failed node came back
    ARRIVAL = 4  # a job was submitted
    PASS = 5  # a scheduling pass


#: an event: (time, kind, sequence, payload). A plain tuple, compared in C, where events
#: would be compared by a generated ``__lt__``; the sequence is unique, so the payload is
#: never compared. (Tens of millions pass through a long simulation: a tuple costs nothing
#: to make or to hand out, an object per event did.)
Event = tuple[float, Kind, int, Any]


class EventQueue:
    """A heap of :data:`Event` tuples."""

    def __init__(self) -> None:
        self._heap: list[Event] = []
        self._seq = 0
        self.now = 0.0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, time: float, kind: Kind, payload: Any = None) -> None:
        if time < self.now:
            raise ValueError(f"event at {time} is in the past (now {self.now})")
        self._seq += 1
        heapq.heappush(self._heap, (time, kind, self._seq, payload))

    def pop(self) -> Event:
        ev = heapq.heappop(self._heap)
        self.now = ev[0]
        return ev

    def discard(self, stale: Callable[[Kind, Any], bool]) -> int:
        """Drop the events for which ``stale(kind, payload)`` holds; returns how many. The
        others still pop in the same order (their keys order them, not their place)."""
        before = len(self._heap)
        self._heap = [e for e in self._heap if not stale(e[1], e[3])]
        heapq.heapify(self._heap)
        return before - len(self._heap)


#: the collector's thresholds while a simulation runs (CPython's defaults: 700, 10, 10)
SPACED_THRESHOLDS = (100_000, 20, 100)


@contextmanager
def spaced_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often, for the length of a simulation.

    A simulation makes and drops millions of small objects (a placement, a run record and a
    decision for every start and stop) that form no cycles: reference counting frees them,
    yet at CPython's default thresholds the collector still walks the young objects every 700
    allocations and, every few hundred thousand, all of them, hundreds of megabytes of run
    records included. msr seed 0 under ``gavel`` and Gavel's physics: 13.9 s in the
    collector at the defaults, 2.5 s at these thresholds, the same 3,700 objects collected
    in cycles. The collector still runs; the thresholds before are put back after."""
    before = gc.get_threshold()
    gc.set_threshold(*SPACED_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
