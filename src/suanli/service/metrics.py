"""Prometheus metrics of the service (``GET /metrics``).

- ``suanli_queue_length{member}``: pending jobs per member, read from the database when
  scraped;
- ``suanli_jobs{phase}``: jobs per phase, likewise;
- ``suanli_admissions_total``, ``suanli_preemptions_total``, ``suanli_requeues_total``,
  ``suanli_fenced_runs_total``: counters the controller increments;
- ``suanli_pass_seconds``: a histogram of the scheduling pass's time;
- ``suanli_devices_busy{model}``, ``suanli_devices_total{model}``, ``suanli_utilization{model}``
  (busy / total devices of the model in the pool) after each pass;
- ``suanli_nodes{health,state}``: nodes by health and state, read when scraped.

Each :class:`Metrics` has its own registry, so several services in one process (tests) do not
mix their figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from suanli.model.job import Phase
from suanli.sched.snapshot import Snapshot
from suanli.store.tables import JobRow, NodeRow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _DatabaseCollector(Collector):
    def __init__(self, session: Callable[[], AbstractContextManager[Session]]) -> None:
        self.session = session

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queue = GaugeMetricFamily("suanli_queue_length", "Pending jobs", labels=["member"])
        phases = GaugeMetricFamily("suanli_jobs", "Jobs by phase", labels=["phase"])
        nodes = GaugeMetricFamily("suanli_nodes", "Nodes", labels=["health", "state"])
        with self.session() as s:
            pending = s.execute(
                select(JobRow.member, func.count())
                .where(JobRow.phase == Phase.PENDING.value)
                .group_by(JobRow.member)
            )
            for member, n in sorted(pending):
                queue.add_metric([member], n)
            counts = dict(
                s.execute(select(JobRow.phase, func.count()).group_by(JobRow.phase)).all()
            )
            for phase in Phase:
                phases.add_metric([phase.value], counts.get(phase.value, 0))
            by = s.execute(
                select(NodeRow.health, NodeRow.state, func.count()).group_by(
                    NodeRow.health, NodeRow.state
                )
            )
            for health, state, n in sorted(by):
                nodes.add_metric([health, state], n)
        yield queue
        yield phases
        yield nodes


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.admissions = Counter("suanli_admissions", "Jobs admitted", registry=r)
        self.preemptions = Counter("suanli_preemptions", "Stops asked (preemption)", registry=r)
        self.requeues = Counter("suanli_requeues", "Runs ended back in the queue", registry=r)
        self.fenced = Counter("suanli_fenced_runs", "Stale runs stopped", registry=r)
        self.pass_seconds = Histogram(
            "suanli_pass_seconds",
            "Scheduling pass time",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
            registry=r,
        )
        self.busy = Gauge("suanli_devices_busy", "Devices in use", ["model"], registry=r)
        self.total = Gauge("suanli_devices_total", "Devices schedulable", ["model"], registry=r)
        self.utilization = Gauge(
            "suanli_utilization", "Busy over schedulable devices", ["model"], registry=r
        )

    def watch_database(self, session: Callable[[], AbstractContextManager[Session]]) -> None:
        self.registry.register(_DatabaseCollector(session))

    def step(
        self, admitted: int, preempted: int, requeued: int, fenced: int, pass_s: float
    ) -> None:
        self.admissions.inc(admitted)
        self.preemptions.inc(preempted)
        self.requeues.inc(requeued)
        self.fenced.inc(fenced)
        self.pass_seconds.observe(pass_s)

    def pool(self, snap: Snapshot) -> None:
        for model, busy in snap.busy_by_model.items():
            t = snap.pool.devices_by_model.get(model, 0)
            self.busy.labels(model).set(busy)
            self.total.labels(model).set(t)
            self.utilization.labels(model).set(busy / t if t else 0.0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
