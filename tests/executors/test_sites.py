"""The per-site executor's view of a site that stops answering: unknown for the timeout, then
given up (nodes down and runs lost together), and back when it answers again.

The site here is a small in-memory executor behind a link that can be cut: what is under test is
the router's bookkeeping against its clock (the two-site test in ``test_ray`` cuts the network to
a real Ray cluster)."""

import itertools

import pytest

from suanli.executors.base import RunPhase, RunRequest, RunState
from suanli.executors.sites import PerSiteExecutor
from suanli.model.ids import JobId, ModelId, NodeId, SiteId


class Link:
    """A site whose runs keep running, behind a network link: every call fails while it is cut."""

    def __init__(self) -> None:
        self.cut = False
        self.runs: dict[tuple[JobId, int], RunState] = {}

    def _call(self) -> None:
        if self.cut:
            raise ConnectionError("connection refused")

    def start(self, run: RunRequest) -> None:
        self._call()
        self.runs.setdefault(run.key, RunState(run.job, run.attempt, RunPhase.RUNNING))

    def stop(self, job: JobId, attempt: int, grace_s: float) -> None:
        self._call()
        self.runs[job, attempt] = RunState(job, attempt, RunPhase.EXITED, 0)

    def observe(self) -> dict[tuple[JobId, int], RunState]:
        self._call()
        return dict(self.runs)

    def logs(self, job: JobId, attempt: int, offset: int = 0) -> bytes:
        self._call()
        return b""

    def forget(self, job: JobId, attempt: int) -> None:
        self._call()
        self.runs.pop((job, attempt), None)

    def node_health(self) -> dict[NodeId, str | None]:
        self._call()
        return {NodeId("n1"): None}


@pytest.mark.parametrize("tick", [0.25, 0.5, 1.0, 1.5])
def test_a_silent_site_is_given_up_nodes_and_runs_at_once(tick: float) -> None:
    """However the clock moves between the controller's health check and its observation, a run
    is never reported lost while its node is still reported up (it would be placed there again)."""
    counter = itertools.count()
    site = Link()
    ex = PerSiteExecutor(
        {SiteId("s"): site},
        {NodeId("n1"): SiteId("s")},
        timeout_s=3.0,
        clock=lambda: next(counter) * tick,  # every look at the clock finds it later
    )
    key = (JobId("j"), 1)
    ex.start(
        RunRequest(JobId("j"), 1, "sleep 30", ModelId("H800-80GB"), "cuda", ((NodeId("n1"), (0,)),))
    )
    assert ex.observe()[key].phase is RunPhase.RUNNING
    site.cut = True
    phases = []
    for _ in range(40):
        health = ex.node_health()  # the controller's order: health, then observe
        phase = ex.observe()[key].phase
        phases.append(phase)
        if phase is RunPhase.LOST:
            assert health[NodeId("n1")] is not None, "lost while its node looked up"
        else:
            assert phase is RunPhase.UNKNOWN
            assert NodeId("n1") not in health or health[NodeId("n1")] is None
    assert phases[0] is RunPhase.UNKNOWN and phases[-1] is RunPhase.LOST
    down = ex.node_health()[NodeId("n1")]
    assert down is not None and "site s has not answered" in down
    site.cut = False
    assert ex.observe()[key].phase is RunPhase.RUNNING  # it kept the run
    assert ex.node_health() == {NodeId("n1"): None}
