"""The kubectl-like commands against a live server, through click's runner."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from suanli.api.app import create_app
from suanli.cli.main import cli
from suanli.executors.local import LocalProcessExecutor
from suanli.sched.policy import get_policy
from suanli.server import ServerConfig, prepare
from suanli.service.context import Service
from suanli.service.controller import Controller
from suanli.spec.alliance_file import load_alliance

from ..conftest import EXAMPLES
from ..live import serving


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Controller]]:
    monkeypatch.setenv("SUANLI_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.delenv("SUANLI_URL", raising=False)
    monkeypatch.delenv("SUANLI_TOKEN", raising=False)
    cfg = ServerConfig(tmp_path / "state")
    db, token = prepare(cfg, load_alliance(EXAMPLES / "alliance.yaml"))
    assert (
        token is not None and (tmp_path / "state" / "admin-token").stat().st_mode & 0o777 == 0o600
    )
    executor = LocalProcessExecutor(cfg.state_dir)
    policy = get_policy("alliance")
    with serving(create_app(Service(db, policy, executor))) as url:
        code = CliRunner().invoke(cli, ["login", "--url", url, "--token", token])
        assert code.exit_code == 0 and "as admin (alliance-admin)" in code.stdout
        yield url, Controller(db, executor, policy)
    db.close()


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_submit_watch_and_read_a_job(server: tuple[str, Controller], tmp_path: Path) -> None:
    _, ctl = server
    f = tmp_path / "job.yaml"
    f.write_text(
        "id: hello\nmember: zhiyuan-ai\naccelerators: MLU370:2\n"
        "entrypoint: echo hello from $MLU_VISIBLE_DEVICES\n"
    )
    code, out, _ = run("submit", str(f))
    assert code == 0 and "hello" in out and "PENDING" in out
    code, out, _ = run("queue")
    assert "hello" in out and "would start at the next pass" in out
    deadline = time.time() + 30
    while time.time() < deadline:
        ctl.step()
        code, out, _ = run("job", "hello", "--json")
        if json.loads(out)["phase"] == "SUCCEEDED":
            break
        time.sleep(0.05)
    code, out, _ = run("job", "hello")
    assert "SUCCEEDED" in out and "MLU370-X8 on zy-mlu370" in out
    code, out, _ = run("logs", "hello", "-f")
    assert out == "hello from 0,1\n"
    code, out, _ = run("jobs", "--phase", "succeeded")
    assert "hello" in out
    code, out, _ = run("pool", "--json")
    assert any(n["model"] == "Ascend910C" for n in json.loads(out))
    code, out, _ = run("members")
    assert "huaxia-cloud" in out and "ENTITLED NU" in out
    code, out, _ = run("shares")
    assert "H800-80GB" in out


def test_tables_say_when_they_cut_and_drains_can_be_undone(
    server: tuple[str, Controller], tmp_path: Path
) -> None:
    f = tmp_path / "jobs.yaml"
    f.write_text(
        "jobs:\n"
        "- {id: big, name: a rather long name for a job that is big, member: xinghuo, "
        "accelerators: 'H800:8'}\n"
        "- {id: small, member: xinghuo, accelerators: 'H800:1'}\n"
    )
    assert run("submit", str(f))[0] == 0
    code, out, _ = run("jobs")
    header = out.splitlines()[0].split()
    assert header[:3] == ["ID", "NAME", "MEMBER"] and "a rather long name for …" in out
    code, out, _ = run("jobs", "--wide")
    assert "a rather long name for a job that is big" in out
    code, _, err = run("jobs", "--phase", "finished")
    assert code == 2 and "pending" in err and "succeeded" in err  # the valid values
    code, out, err = run("logs", "small")
    assert code == 0 and out == "" and "small has no output yet (PENDING" in err
    code, out, _ = run("job", "small")
    assert "exit code:    -" in out
    assert run("pool", "drain", "--model", "H800")[0] == 0
    code, out, _ = run("pool", "undrain", "--all")
    assert code == 0 and "undrained 4 node(s)" in out
    code, out, _ = run("pool", "--json")
    assert all(n["state"] != "draining" for n in json.loads(out))
    assert run("pool", "undrain")[0] == 2  # nothing named


def test_errors_exit_with_their_codes(server: tuple[str, Controller], tmp_path: Path) -> None:
    code, _, err = run("job", "nope")
    assert code == 3 and "404" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("member: zhiyuan-ai\naccelerators: MLU370:999\n")
    code, _, err = run("submit", str(bad))
    assert code == 2 and "accelerators: impossible count" in err
    code, _, err = run("cancel", "nope", "--token", "wrong")
    assert code == 4 and "401" in err
    code, _, err = run("jobs", "--url", "http://127.0.0.1:1")
    assert code == 1 and "cannot reach" in err


def test_the_readme_example_jobs_are_valid_for_the_example_alliance() -> None:
    from suanli.spec.job_file import load_jobs

    specs = load_jobs(EXAMPLES / "service-jobs.yaml", load_alliance(EXAMPLES / "alliance.yaml"))
    assert len(specs) == 6 and all(s.entrypoint for s in specs)


def _first_lines(state: Path) -> str:
    """What ``suanli server`` prints as it starts (it is stopped once it has said it)."""
    import subprocess
    import sys

    from ..live import free_port

    cmd = [sys.executable, "-m", "suanli", "server", "--state-dir", str(state)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(free_port())], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out = []
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            out.append(raw.decode())
            if "admin token" in out[-1] and "login" not in out[-1]:
                if "shown once" in out[-1]:
                    out.append(proc.stdout.readline().decode())
                break
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    return "".join(out)


def test_the_admin_token_is_printed_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = _first_lines(state)
    token = (state / "admin-token").read_text().strip()
    assert f"shown once; also in {state / 'admin-token'}" in first and token in first
    second = _first_lines(state)
    assert token not in second and f"admin token: in {state / 'admin-token'}" in second
