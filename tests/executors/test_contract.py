"""The executor contract, checked once against every executor: the local-process executor,
the per-site router in front of local sites, Ray and Slurm. What the controller relies on:

- a run is keyed by (job, attempt), and starting a key twice runs it once;
- ``observe`` reports every run it knows, running then exited with its exit code;
- a run gets its devices through its stack's variable, and its own checkpoint directory;
- ``logs`` returns the output from an offset;
- ``stop`` sends SIGTERM: a job that checkpoints and exits 0 in its grace period ends so;
- ``forget`` drops a finished run from ``observe`` (its logs stay).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from suanli.catalog.accelerator import load_catalog
from suanli.executors.base import Executor, RunPhase, RunRequest, RunState
from suanli.executors.local import LocalProcessExecutor
from suanli.executors.ray import RayExecutor
from suanli.executors.ray_cluster import LocalRayCluster
from suanli.executors.sites import PerSiteExecutor
from suanli.executors.slurm import SlurmExecutor
from suanli.model.ids import JobId, ModelId, NodeId, SiteId
from suanli.model.site import SlurmSite

from ..slurm import LocalSlurm

#: a node every executor below can run on (the Ray cluster's H800 node)
NODE = NodeId("hx-1")


@pytest.fixture(
    params=[
        "local",
        "sites",
        pytest.param("ray", marks=pytest.mark.slow),
        pytest.param("slurm", marks=pytest.mark.slow),
    ]
)
def executor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Executor]:
    if request.param == "local":
        yield LocalProcessExecutor(tmp_path / "state")
    elif request.param == "sites":
        sites: dict[SiteId, Executor] = {
            SiteId("a"): LocalProcessExecutor(tmp_path / "a"),
            SiteId("b"): LocalProcessExecutor(tmp_path / "b"),
        }
        yield PerSiteExecutor(sites, {NODE: SiteId("a"), NodeId("other"): SiteId("b")})
    elif request.param == "ray":
        cluster: LocalRayCluster = request.getfixturevalue("ray_cluster")
        yield RayExecutor(cluster.address, cluster.token, tmp_path / "state" / "checkpoints")
    else:
        slurm: LocalSlurm = request.getfixturevalue("slurm")
        # (the test node's generic resources stand in for the H800s: a site's own gres names)
        site = SlurmSite(gres={ModelId("H800-80GB"): "npu:ascend910b"}, names={NODE: slurm.node})
        models = {NODE: ModelId("H800-80GB")}
        runs, ckpt = tmp_path / "runs", tmp_path / "checkpoints"
        yield SlurmExecutor(site, load_catalog(), models, runs, ckpt, env=slurm.env)


def run(job: str, entrypoint: str, attempt: int = 1) -> RunRequest:
    return RunRequest(
        JobId(job),
        attempt,
        entrypoint,
        ModelId("H800-80GB"),
        "cuda",
        ((NODE, (2, 3)),),
        {"EXTRA": "yes"},
        member="hx",
    )


def wait(ex: Executor, job: str, attempt: int = 1, timeout: float = 120.0) -> RunState:
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = ex.observe().get((JobId(job), attempt))
        if st is not None and st.phase is RunPhase.EXITED:
            return st
        time.sleep(0.1)
    raise AssertionError(f"{job} did not end: {ex.observe().get((JobId(job), attempt))}")


def output(ex: Executor, job: str, attempt: int = 1, offset: int = 0) -> str:
    return ex.logs(JobId(job), attempt, offset).decode()


def test_a_run_sees_its_devices_and_variables_and_reports_its_exit(executor: Executor) -> None:
    executor.start(
        run(
            "exit3",
            'echo "dev=$CUDA_VISIBLE_DEVICES extra=$EXTRA job=$SUANLI_JOB_ID"; '
            'echo saved > "$SUANLI_CHECKPOINT_DIR/c" && echo checkpoint-ok; exit 3',
        )
    )
    st = wait(executor, "exit3")
    log = output(executor, "exit3")
    assert st.exit_code == 3, log
    assert "dev=2,3 extra=yes job=exit3" in log and "checkpoint-ok" in log
    start = log.index("dev=")
    assert output(executor, "exit3", offset=start + 4).startswith("2,3")


def test_starting_a_key_twice_runs_it_once(executor: Executor) -> None:
    for _ in range(3):
        executor.start(run("once", "echo ran-once"))
    wait(executor, "once")
    assert output(executor, "once").count("ran-once") == 1
    assert sum(1 for k in executor.observe() if k == (JobId("once"), 1)) == 1
    executor.start(run("once", "echo ran-again", attempt=2))
    assert wait(executor, "once", 2).exit_code == 0
    assert "ran-again" in output(executor, "once", 2)


def test_stop_sends_sigterm_and_the_job_checkpoints_in_its_grace_period(
    executor: Executor,
) -> None:
    executor.start(
        run("polite", "trap 'echo checkpointed; exit 0' TERM; echo up; while :; do sleep 0.1; done")
    )
    deadline = time.time() + 120
    while "up" not in output(executor, "polite").split():
        assert time.time() < deadline, "it never started"
        time.sleep(0.1)
    executor.stop(JobId("polite"), 1, 10.0)
    executor.stop(JobId("polite"), 1, 10.0)  # idempotent
    wait(executor, "polite")
    assert "checkpointed" in output(executor, "polite")


def test_a_forgotten_run_is_no_longer_observed_but_its_logs_stay(executor: Executor) -> None:
    executor.start(run("gone", "echo bye"))
    wait(executor, "gone")
    executor.forget(JobId("gone"), 1)
    assert (JobId("gone"), 1) not in executor.observe()
    assert "bye" in output(executor, "gone")
