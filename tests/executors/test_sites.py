"""The per-site executor's view of a site that stops answering: unknown for the timeout, then
given up (nodes down and runs lost together), and back when it answers again."""

import itertools
from pathlib import Path

import pytest

from suanli.executors.base import RunPhase, RunRequest, RunState
from suanli.executors.local import LocalProcessExecutor
from suanli.executors.sites import PerSiteExecutor
from suanli.model.ids import JobId, ModelId, NodeId, SiteId


class Link(LocalProcessExecutor):
    """A site's executor behind a network link that can be cut: every call fails while it is."""

    cut = False

    def observe(self) -> dict[tuple[JobId, int], RunState]:
        if self.cut:
            raise ConnectionError("connection refused")
        return super().observe()

    def node_health(self) -> dict[NodeId, str | None]:
        if self.cut:
            raise ConnectionError("connection refused")
        return {NodeId("n1"): None}


def files(site: LocalProcessExecutor) -> dict[str, str]:
    """What the run's directory holds (to tell why a run was lost)."""
    d = site.runs / "j" / "1"
    return {f.name: f.read_text()[-300:] for f in d.iterdir() if f.name != "request.json"}


@pytest.mark.parametrize("tick", [0.25, 0.5, 1.0, 1.5])
def test_a_silent_site_is_given_up_nodes_and_runs_at_once(tmp_path: Path, tick: float) -> None:
    """However the clock moves between the controller's health check and its observation, a run
    is never reported lost while its node is still reported up (it would be placed there again)."""
    counter = itertools.count()
    site = Link(tmp_path)
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
    try:
        assert ex.observe()[key].phase is RunPhase.RUNNING, files(site)
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
        assert ex.observe()[key].phase is RunPhase.RUNNING, files(site)  # it kept the run
        assert ex.node_health() == {NodeId("n1"): None}
    finally:
        site.stop(JobId("j"), 1, 0.0)
