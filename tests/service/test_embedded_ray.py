"""``suanli server --executor ray`` on this machine: it starts its own Ray cluster (one Ray
node per suanli node of the embedded example alliance, token authentication on), runs the
example jobs on the nodes the scheduler chose, and stops every process it started."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import EXAMPLES
from ..live import free_port

pytestmark = pytest.mark.slow  # real servers, clusters or browsers: pytest -m "not slow" skips them


def _server(tmp_path: Path) -> list[str]:
    """``suanli server`` on an embedded Ray cluster of the embedded example alliance."""
    alliance = str(EXAMPLES / "embedded-alliance.yaml")
    cmd = [sys.executable, "-m", "suanli", "server", "--executor", "ray", "--alliance", alliance]
    return [*cmd, "--state-dir", str(tmp_path / "state"), "--port", str(free_port())]


def test_embedded_ray_runs_the_example_jobs_and_cleans_up(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [*_server(tmp_path), "--submit", str(EXAMPLES / "embedded-jobs.yaml"), "--until-done"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = server.communicate(timeout=600)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, err[-3000:]
    assert out.count("SUCCEEDED") >= 4, out
    assert "training on CUDA_VISIBLE_DEVICES=0,1,2,3 at hx-h800" in out
    assert "ASCEND_RT_VISIBLE_DEVICES=0,1,2,3 at pc-910b" in out
    assert "serving on MLU_VISIBLE_DEVICES=0,1 at zy-mlu370" in out
    assert marked(server.pid) == set(), "the embedded Ray cluster left processes behind"


def marked(server_pid: int | None = None) -> set[str]:
    """The processes of the embedded Ray clusters on this machine (their mark), or only of the
    one the server ``server_pid`` started (another test session may run its own meanwhile)."""
    mark = b"SUANLI_RAY_CLUSTER=" if server_pid is None else f"-pid{server_pid}-".encode()
    found = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                env = (d / "environ").read_bytes()
            except OSError:
                continue
            if b"SUANLI_RAY_CLUSTER=" in env and mark in env:
                found.add(d.name)
    return found


@pytest.mark.parametrize("after_s", [1.5, 6.0, 20.0])
def test_sigterm_at_any_moment_stops_the_server_and_its_cluster(
    tmp_path: Path, after_s: float
) -> None:
    """Before, while and after its Ray cluster starts: the server exits within seconds and
    leaves no process of its cluster behind."""
    server = subprocess.Popen(
        _server(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(after_s)  # (the moment is the test's input, not a wait for something)
        assert server.poll() is None
        server.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        server.wait(timeout=60)
        took = time.monotonic() - t0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    left = marked(server.pid)
    deadline = time.monotonic() + 5
    while left and time.monotonic() < deadline:  # (a process dying as we looked)
        time.sleep(0.2)
        left = marked(server.pid)
    assert left == set(), f"left running: {sorted(left)}"
    assert took < 20, f"took {took:.1f} s to stop"
