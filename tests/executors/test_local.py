"""The local-process executor with real child processes."""

import dataclasses
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from suanli.executors.base import RunPhase, RunRequest, RunState
from suanli.executors.local import LocalProcessExecutor
from suanli.executors.runner import proc_start_time, write_atomic
from suanli.model.ids import JobId, ModelId, NodeId


def request(job: str, entrypoint: str, stack: str = "cuda", attempt: int = 1) -> RunRequest:
    return RunRequest(
        JobId(job),
        attempt,
        entrypoint,
        ModelId("H800-80GB"),
        stack,
        ((NodeId("n1"), (2, 3)),),
        {"EXTRA": "yes"},
    )


def wait_for(
    ex: LocalProcessExecutor, job: str, attempt: int = 1, timeout: float = 20.0
) -> RunState:
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = ex.observe().get((JobId(job), attempt))
        if st is not None and st.phase is not RunPhase.RUNNING:
            return st
        time.sleep(0.05)
    raise AssertionError(f"{job} did not finish")


def test_a_job_that_cannot_start_exits_126_with_the_reason_in_its_log(tmp_path: Path) -> None:
    """The supervisor records what kept the command from starting, rather than vanish (the run
    would be reported lost, and requeued forever)."""
    ex = LocalProcessExecutor(tmp_path)
    ex.start(dataclasses.replace(request("nowhere", "echo x"), working_dir=str(tmp_path / "no")))
    st = wait_for(ex, "nowhere")
    assert st.phase is RunPhase.EXITED and st.exit_code == 126
    log = ex.logs(JobId("nowhere"), 1).decode()
    assert "could not start the job" in log and "no such directory" in log


def test_a_run_whose_supervisor_writes_its_pid_while_observed_is_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervisor writes supervisor.json at any moment: a look that finds it missing, the
    file appearing, then a second look, must not make a starting run lost (it was requeued
    while it ran on)."""
    ex = LocalProcessExecutor(tmp_path)
    d = ex.runs / "j" / "1"
    d.mkdir(parents=True)
    (d / "request.json").write_text(json.dumps({"at": time.time()}))
    me = {"pid": os.getpid(), "start": proc_start_time(os.getpid()), "at": time.time()}
    read_text = Path.read_text

    def written_right_after_a_miss(self: Path, *args: Any, **kwargs: Any) -> str:
        try:
            return read_text(self, *args, **kwargs)
        finally:
            if self.name == "supervisor.json" and not self.exists():
                write_atomic(self, me)  # (the supervisor, a live process: this one)

    monkeypatch.setattr(Path, "read_text", written_right_after_a_miss)
    try:
        assert ex.observe()[JobId("j"), 1].phase is RunPhase.RUNNING  # still starting
        assert ex.observe()[JobId("j"), 1].phase is RunPhase.RUNNING  # its supervisor is up
    finally:
        monkeypatch.undo()
        write_atomic(d / "exit.json", {"code": 0, "at": time.time()})  # (nothing to stop)


def test_a_relative_state_dir_still_gives_jobs_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ex = LocalProcessExecutor(Path("state"))
    ex.start(request("rel", 'echo x > "$SUANLI_CHECKPOINT_DIR/c"'))
    assert wait_for(ex, "rel").exit_code == 0
    assert (tmp_path / "state" / "checkpoints" / "rel" / "c").read_text() == "x\n"


def test_stop_sends_sigterm_then_kills_after_the_grace_period(tmp_path: Path) -> None:
    ex = LocalProcessExecutor(tmp_path)
    polite = "trap 'echo checkpointed; exit 0' TERM; echo up; while true; do sleep 0.05; done"
    stubborn = "trap '' TERM; echo up; while true; do sleep 0.05; done"
    ex.start(request("polite", polite))
    ex.start(request("stubborn", stubborn))
    deadline = time.time() + 20
    while time.time() < deadline and not all(
        b"up" in ex.logs(JobId(j), 1) for j in ("polite", "stubborn")
    ):
        time.sleep(0.05)
    ex.stop(JobId("polite"), 1, grace_s=10)
    ex.stop(JobId("stubborn"), 1, grace_s=0.5)
    ex.stop(JobId("stubborn"), 1, grace_s=0.5)  # idempotent
    assert wait_for(ex, "polite").exit_code == 0
    assert b"checkpointed" in ex.logs(JobId("polite"), 1)
    assert wait_for(ex, "stubborn").exit_code == -9


def test_a_run_whose_supervisor_vanished_is_lost(tmp_path: Path) -> None:
    ex = LocalProcessExecutor(tmp_path)
    d = tmp_path / "runs" / "ghost" / "1"
    d.mkdir(parents=True)
    (d / "request.json").write_text('{"at": 0}')
    (d / "supervisor.json").write_text('{"pid": 999999999, "start": "1", "at": 0}')
    assert ex.observe()[(JobId("ghost"), 1)].phase is RunPhase.LOST
    ex.forget(JobId("ghost"), 1)
    assert (JobId("ghost"), 1) not in ex.observe()


def test_a_multi_node_gang_runs_one_child_per_node(tmp_path: Path) -> None:
    ex = LocalProcessExecutor(tmp_path)
    ex.start(
        RunRequest(
            JobId("gang"),
            1,
            'echo "$SUANLI_NODE_RANK/$SUANLI_NUM_NODES $SUANLI_NODE $MLU_VISIBLE_DEVICES"; '
            'exit "$SUANLI_NODE_RANK"',
            ModelId("MLU370-X8"),
            "mlu",
            ((NodeId("a"), (0, 1)), (NodeId("b"), (4, 5))),
        )
    )
    st = wait_for(ex, "gang")
    assert st.exit_code == 1  # the first non-zero exit code
    lines = sorted(ex.logs(JobId("gang"), 1).decode().splitlines())
    assert lines == ["0/2 a 0,1", "1/2 b 4,5"]


ALL_REDUCE = """
import sys

import torch
import torch.distributed as dist

dist.init_process_group("gloo", init_method="env://")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
sys.stdout.write(f"rank {dist.get_rank()}/{dist.get_world_size()} sum {int(t.item())}\\n")
dist.destroy_process_group()
"""


def test_a_gang_meets_for_a_torch_distributed_all_reduce(tmp_path: Path) -> None:
    """The rendezvous variables torch.distributed reads (MASTER_ADDR, MASTER_PORT, RANK,
    WORLD_SIZE) reach each node's copy of a gang on the default executor: two "nodes" on this
    machine all-reduce over gloo."""
    try:
        import torch  # noqa: F401
    except ImportError:
        if os.environ.get("SUANLI_REQUIRE_TORCH") == "1":
            pytest.fail("torch is required here (SUANLI_REQUIRE_TORCH=1)")
        pytest.skip("torch is not installed")
    ex = LocalProcessExecutor(tmp_path)
    ex.start(
        RunRequest(
            JobId("reduce"),
            1,
            f"python3 -c '{ALL_REDUCE}'",
            ModelId("H800-80GB"),
            "cuda",
            ((NodeId("a"), (0,)), (NodeId("b"), (1,))),
        )
    )
    st = wait_for(ex, "reduce", timeout=180)
    log = ex.logs(JobId("reduce"), 1).decode()
    assert st.exit_code == 0, log
    assert sorted(re.findall(r"rank \d/\d sum \d+", log)) == ["rank 0/2 sum 3", "rank 1/2 sum 3"]


def test_runs_go_to_their_sites_executor(tmp_path: Path) -> None:
    from suanli.executors.sites import PerSiteExecutor
    from suanli.model.ids import SiteId

    a, b = LocalProcessExecutor(tmp_path / "a"), LocalProcessExecutor(tmp_path / "b")
    ex = PerSiteExecutor(
        {SiteId("sa"): a, SiteId("sb"): b}, {NodeId("n1"): SiteId("sa"), NodeId("n2"): SiteId("sb")}
    )
    ex.start(request("on-a", "echo a"))
    ex.start(
        RunRequest(
            JobId("on-b"), 1, "echo b", ModelId("H800-80GB"), "cuda", ((NodeId("n2"), (0,)),)
        )
    )
    assert wait_for(a, "on-a").exit_code == 0 and wait_for(b, "on-b").exit_code == 0
    assert set(ex.observe()) == {(JobId("on-a"), 1), (JobId("on-b"), 1)}
    assert (JobId("on-b"), 1) not in a.observe()
    assert ex.logs(JobId("on-b"), 1) == b"b\n"
    fresh = PerSiteExecutor({SiteId("sa"): a, SiteId("sb"): b}, {})
    assert fresh.logs(JobId("on-a"), 1) == b"a\n"  # learned from the sites' observations


def test_a_200_mb_log_keeps_its_cap_and_its_end(tmp_path: Path) -> None:
    """A job that prints 200 MB is neither blocked nor stored whole: the log keeps the first
    ``log_cap`` bytes, says where it was cut and how much was dropped, and ends with the
    output's last bytes (where the error usually is); reads come back in bounded chunks."""
    cap = 1 << 20
    ex = LocalProcessExecutor(tmp_path, log_cap=cap)
    printer = (
        "python3 -c \"import sys; w = sys.stdout.buffer.write; line = b'x' * 1023 + b'\\n'\n"
        "for i in range(200 * 1024): w(line)\nw(b'the last words\\n')\""
    )
    ex.start(request("loud", printer))
    st = wait_for(ex, "loud", timeout=120)
    assert st.phase is RunPhase.EXITED and st.exit_code == 0
    size = ex.log_size(JobId("loud"), 1)
    assert cap < size < cap + 70 * 1024
    head = ex.logs(JobId("loud"), 1, 0, 4096)
    assert len(head) == 4096 and head.startswith(b"x" * 1023 + b"\n")
    end = ex.logs(JobId("loud"), 1, size - 70 * 1024).decode()
    assert f"reached its cap of {cap} bytes" in ex.logs(JobId("loud"), 1, cap, 400).decode()
    dropped = 200 * 1024 * 1024 - cap - 64 * 1024 + len("the last words\n")
    assert f"{dropped} bytes dropped here" in end
    assert end.endswith("x\nthe last words\n")


def test_a_log_under_its_cap_is_kept_as_written(tmp_path: Path) -> None:
    ex = LocalProcessExecutor(tmp_path, log_cap=1 << 20)
    ex.start(request("quiet", "for i in 1 2 3; do echo line $i; done; echo oops >&2"))
    assert wait_for(ex, "quiet").exit_code == 0
    assert ex.logs(JobId("quiet"), 1) == b"line 1\nline 2\nline 3\noops\n"
    assert ex.logs(JobId("quiet"), 1, 7, 7) == b"line 2\n"


@pytest.mark.parametrize("sizes", [[1024], [512, 512, 1], [1025], [100, 2000, 3]])
def test_the_cut_is_noted_however_the_output_arrives(tmp_path: Path, sizes: list[int]) -> None:
    """Chunks that end exactly at the cap, straddle it or start past it: the log holds the
    first ``cap`` bytes, one note, and the end."""
    from suanli.executors.output import CappedOutput

    log = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    out = CappedOutput(log, cap=1024).start()
    data = bytes(i % 251 for i in range(sum(sizes)))
    at = 0
    for n in sizes:
        os.write(out.write_fd, data[at : at + n])
        at += n
    out.finish()
    os.close(log)
    kept = (tmp_path / "log").read_bytes()
    assert kept.startswith(data[:1024])
    over = len(data) - 1024
    assert (kept.count(b"reached its cap") == 1) == (over > 0)
    if over:
        assert kept.endswith(data[-min(over, 64 * 1024) :])
    else:
        assert kept == data
