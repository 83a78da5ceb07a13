"""Runs in their sandbox on the local executor, with real bubblewrap processes: who they run
as, what they see, what they may write, and that nothing they start outlives them."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest

from suanli.executors.base import RunPhase, RunRequest, RunState
from suanli.executors.local import LocalProcessExecutor
from suanli.executors.sandbox import SandboxConfig, SandboxMode, account_name
from suanli.model.ids import JobId, ModelId, NodeId

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="member accounts need root")


def run(ex: LocalProcessExecutor, job: str, entrypoint: str, **kw: object) -> RunState:
    req = RunRequest(
        JobId(job),
        1,
        entrypoint,
        ModelId("H800-80GB"),
        "cuda",
        ((NodeId("n1"), (0,)),),
        member="lab",
    )
    ex.start(dataclasses.replace(req, **kw))  # type: ignore[arg-type]
    deadline = time.time() + 30
    while time.time() < deadline:
        st = ex.observe().get((JobId(job), 1))
        if st is not None and st.phase is RunPhase.EXITED:
            return st
        time.sleep(0.05)
    raise AssertionError(f"{job} did not finish")


def test_a_run_is_its_members_user_with_no_privilege(tmp_path: Path) -> None:
    ex = LocalProcessExecutor(tmp_path / "state")
    st = run(
        ex,
        "who",
        "id -un; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; id -G; env | sort",
    )
    out = ex.logs(JobId("who"), 1).decode()
    assert st.exit_code == 0, out
    lines = out.splitlines()
    assert lines[0] == account_name("lab") == "suanli-lab"
    assert "CapEff:\t0000000000000000" in lines and "CapBnd:\t0000000000000000" in lines
    assert "NoNewPrivs:\t1" in lines
    env = dict(x.split("=", 1) for x in lines if "=" in x and not x.startswith("Cap"))
    assert env["SUANLI_CHECKPOINT_DIR"] == "/checkpoint" and env["HOME"] == "/tmp"
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["SUANLI_JOB_ID"] == "who"
    assert not {k for k in os.environ if k not in env and k.startswith(("SUANLI", "RAY"))} & set(
        env
    )
    assert set(env) <= {
        "PATH", "LANG", "USER", "LOGNAME", "SHELL", "PYTHONUNBUFFERED", "HOME", "TMPDIR", "PWD",
        "SHLVL", "_", "SUANLI_CHECKPOINT_DIR", "SUANLI_WORK_DIR", "SUANLI_DATA_DIR",
        "SUANLI_JOB_ID", "SUANLI_ATTEMPT", "SUANLI_NUM_NODES", "SUANLI_NODE", "SUANLI_NODE_RANK",
        "SUANLI_MASTER_ADDR", "SUANLI_MASTER_PORT", "NODE_RANK", "RANK", "NNODES", "WORLD_SIZE",
        "MASTER_ADDR", "MASTER_PORT", "CUDA_VISIBLE_DEVICES", "SUANLI_FLOWER_DRIVER",
    }, sorted(env)  # fmt: skip
    # its checkpoint directory is its member's, and no one else's
    ckpt = ex.checkpoint_dir(JobId("who"))
    assert ckpt.stat().st_mode & 0o777 == 0o700 and ckpt.stat().st_uid != 0


def test_a_run_sees_its_datasets_read_only_and_nothing_else(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "lab" / "corpus").mkdir(parents=True)
    (data / "lab" / "corpus" / "a.txt").write_text("hello\n")
    (data / "other" / "private").mkdir(parents=True)
    (data / "other" / "private" / "b.txt").write_text("not yours\n")
    ex = LocalProcessExecutor(tmp_path / "state", data_root=data)
    st = run(
        ex,
        "reader",
        'cat "$SUANLI_DATA_DIR/corpus/a.txt"; echo "DATA: $(ls "$SUANLI_DATA_DIR")"; '
        'touch "$SUANLI_DATA_DIR/corpus/x" 2>/dev/null && echo WROTE; '
        'echo "ROOT: $(ls / | tr "\\n" " ")"; '
        "cat " + str(data / "other/private/b.txt") + " 2>/dev/null || echo no-other; "
        f"test -e {tmp_path} || echo no-host-paths",
        datasets={"corpus": "lab/corpus", "escape": "../../etc"},
    )
    out = ex.logs(JobId("reader"), 1).decode()
    assert st.exit_code == 0, out
    assert "hello" in out and "WROTE" not in out and "no-other" in out
    assert "DATA: corpus\n" in out  # a location outside the data root is never mounted
    top = set(out.split("ROOT: ", 1)[1].split("\n", 1)[0].split())
    assert {"job", "checkpoint", "data", "tmp", "usr", "etc"} <= top
    assert not top & {"home", "srv", "var", "mnt"}  # (/root, /work: Python's read-only)
    assert "no-host-paths" in out


def test_a_working_directory_is_read_as_the_member(tmp_path: Path, shared_dir: Path) -> None:
    (shared_dir / "train.py").write_text("print('from the working dir')\n")
    (shared_dir / "root-only").write_text("x")
    (shared_dir / "root-only").chmod(0o600)
    ex = LocalProcessExecutor(tmp_path / "state")
    ok = run(ex, "wd", "python train.py; touch out.txt", working_dir=str(shared_dir))
    assert ok.exit_code == 126  # the copy stopped at a file the member may not read
    assert "Permission denied" in ex.logs(JobId("wd"), 1).decode()
    (shared_dir / "root-only").unlink()
    ok = run(ex, "wd2", "python train.py; touch out.txt", working_dir=str(shared_dir))
    assert ok.exit_code == 0 and b"from the working dir" in ex.logs(JobId("wd2"), 1)
    assert (ex.runs / "wd2" / "1" / "work" / "out.txt").exists()
    assert not (shared_dir / "out.txt").exists()  # a copy: the original is untouched
    # the state directory, or a directory holding it, is refused whatever the permissions
    for where in (ex.root, ex.root.parent, ex.root / "runs"):
        refused = run(ex, f"bad-{len(str(where))}", "true", working_dir=str(where))
        assert refused.exit_code == 126
        log = ex.logs(JobId(f"bad-{len(str(where))}"), 1).decode()
        assert "state directory" in log


def test_background_processes_die_with_the_run(tmp_path: Path) -> None:
    ex = LocalProcessExecutor(tmp_path / "state")
    mark = "suanli-test-orphan-" + os.urandom(4).hex()
    st = run(ex, "bg", f"(exec -a {mark} sleep 300) & (setsid sleep 300 &) ; echo left")
    assert st.exit_code == 0
    time.sleep(0.5)
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                assert mark.encode() not in (d / "cmdline").read_bytes()
            except OSError:
                continue


def test_a_stop_gives_every_process_the_grace_period(tmp_path: Path) -> None:
    """The entrypoint's shell exits at SIGTERM; the trainer it started keeps checkpointing for
    its grace period: the run is not cut short when its first process exits."""
    ex = LocalProcessExecutor(tmp_path / "state")
    trainer = (
        'sh -c \'trap "sleep 1; echo saved > $SUANLI_CHECKPOINT_DIR/c; exit 0" TERM; '
        "while :; do sleep 0.05; done' & echo up; wait"
    )
    req = RunRequest(
        JobId("slow"), 1, trainer, ModelId("H800-80GB"), "cuda", ((NodeId("n1"), (0,)),),
        member="lab",
    )  # fmt: skip
    ex.start(req)
    deadline = time.time() + 20
    while b"up" not in ex.logs(JobId("slow"), 1) and time.time() < deadline:
        time.sleep(0.05)
    ex.stop(JobId("slow"), 1, grace_s=10)
    while ex.observe()[JobId("slow"), 1].phase is not RunPhase.EXITED:
        assert time.time() < deadline + 20
        time.sleep(0.05)
    assert (ex.checkpoint_dir(JobId("slow")) / "c").read_text() == "saved\n"


def test_without_a_sandbox_runs_keep_the_environment_rules(tmp_path: Path) -> None:
    ex = LocalProcessExecutor(tmp_path / "state", SandboxConfig(SandboxMode.NONE))
    os.environ["SUANLI_TEST_CANARY"] = "server-only"
    try:
        st = run(ex, "plain", 'echo "canary=$SUANLI_TEST_CANARY ckpt=$SUANLI_CHECKPOINT_DIR"')
    finally:
        del os.environ["SUANLI_TEST_CANARY"]
    out = ex.logs(JobId("plain"), 1).decode()
    assert st.exit_code == 0 and "canary= " in out
    assert f"ckpt={ex.checkpoint_dir(JobId('plain'))}" in out


def test_no_directory_of_the_run_hides_the_python_it_runs_with(tmp_path: Path) -> None:
    """A Python environment under /tmp (a checkout there) is mounted after the run's own /tmp:
    mounted before, the run's /tmp covered it and no job could start."""
    from suanli.executors.sandbox import Layout, bwrap_argv

    venv = tmp_path / "venv"
    venv.mkdir()
    layout = Layout(tmp_path / "w", tmp_path / "c", tmp_path / "t")
    argv = bwrap_argv(SandboxConfig(runtime=(str(venv),)), layout, None, ["true"])
    mounts = [argv[i + 2] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind")]
    assert mounts.index(str(venv)) > mounts.index("/tmp")
