"""The per-site executor's view of a site that stops answering: unknown for the timeout, then
given up (nodes down and runs lost together), and back when it answers again."""

import itertools
import socket
import threading
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


def test_a_ray_site_that_takes_requests_and_never_answers_is_silent_not_a_hang(
    tmp_path: Path,
) -> None:
    """A member's Ray cluster behind a network that swallows requests (the connection is made,
    no answer ever comes): the controller's calls give up after the request timeout and the
    site is silent, while the other site answers; nothing waits forever."""
    from suanli.executors.ray import RayExecutor

    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)  # (never accepted: the kernel completes the handshakes, nobody reads)
        address = f"http://127.0.0.1:{hole.getsockname()[1]}"
        ray_site = RayExecutor(address, "t", tmp_path / "ckpt", timeout_s=(1.0, 1.0))
        ex = PerSiteExecutor(
            {SiteId("far"): ray_site, SiteId("near"): Link(tmp_path / "near")},
            {NodeId("f1"): SiteId("far"), NodeId("n1"): SiteId("near")},
            timeout_s=60.0,
        )
        answered: list[object] = []
        asking = threading.Thread(
            target=lambda: answered.extend([ex.node_health(), ex.observe()]), daemon=True
        )
        asking.start()
        asking.join(timeout=60)
        assert not asking.is_alive(), "the controller's call to a silent site never returned"
    health, runs = answered
    assert health == {NodeId("n1"): None} and runs == {}
    assert "Timeout" in ex._silent[SiteId("far")][1]


def test_a_ray_site_down_when_the_server_starts_is_only_silent(tmp_path: Path) -> None:
    """A member's cluster that is down does not stop the executor being made (the server
    starting): its site is silent until it answers."""
    from suanli.executors.ray import RayExecutor

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # (closed again: nothing listens there)
    ray_site = RayExecutor(f"http://127.0.0.1:{port}", None, tmp_path / "ckpt")
    with pytest.raises(ConnectionError):
        ray_site.observe()
