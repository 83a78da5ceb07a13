"""Federations on Flower's real deployment engine (SuperLink, SuperNodes, ``flwr run`` from
``envs/flower``), running the shipped demo app on the three shipped corpora: TLS against the
run's own authority only, SuperNodes authenticated by registered keys, round metrics and the
final model written, a SuperNode killed mid-run restarted and rejoining, nothing left running."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from suanli.errors import CannotRunError
from suanli.executors.flower import Federation, Participant, flower_env

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "federated" / "charlm"
DATA = ROOT / "examples" / "federated" / "data"
PARTICIPANTS = [
    Participant("tang-lab", DATA / "tang300.txt"),
    Participant("song-univ", DATA / "song100.txt"),
    Participant("modern-corp", DATA / "chinese.txt"),
]
QUICK = {"num-server-rounds": 2, "local-steps": 20, "batch-size": 32, "round-timeout": 90.0}

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("flower_required")]


def _log(fed: Federation, name: str) -> str:
    path = fed.run_dir / name
    return path.read_text(errors="replace") if path.exists() else ""


def _kill_link_when_training(fed: Federation) -> None:
    """SIGKILL the SuperLink once the run's log shows a second first round."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and _log(fed, "run.log").count("[ROUND 1") < 2:
        time.sleep(0.5)
    if fed.link is not None:
        os.kill(fed.link.pid, signal.SIGKILL)


def test_three_members_train_over_tls_with_authenticated_supernodes(tmp_path: Path) -> None:
    """Then a second run whose SuperLink is killed mid-run ends with the reason."""
    fed = Federation(tmp_path / "run", APP, PARTICIPANTS)
    with fed:
        # the SuperLink speaks TLS only, with a certificate of the run's own authority
        plain = http.client.HTTPConnection(fed.host, fed.link_port, timeout=10)
        with pytest.raises((http.client.HTTPException, OSError)):
            plain.request("GET", "/")
            plain.getresponse()
        address = (fed.host, fed.link_port)
        system = ssl.create_default_context()  # the machine's trust store: not enough
        with (
            socket.create_connection(address, timeout=10) as raw,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            system.wrap_socket(raw, server_hostname=fed.host)
        own = ssl.create_default_context(cafile=fed.run_dir / "pki" / "ca.pem")
        with (
            socket.create_connection(address, timeout=10) as raw,
            own.wrap_socket(raw, server_hostname=fed.host) as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        result = fed.run({**QUICK, "min-participants": 3}, timeout_s=900)
        assert fed.processes(), "the federation's processes are running until it stops"
        # a second run, whose SuperLink is killed mid-run: it ends with the reason
        killer = threading.Thread(target=_kill_link_when_training, args=(fed,), daemon=True)
        killer.start()
        with pytest.raises(RuntimeError, match="the SuperLink exited"):
            fed.run({**QUICK, "num-server-rounds": 50, "min-participants": 3}, timeout_s=900)
        killer.join(timeout=5)
    assert result.exit_code == 0, _log(fed, "run.log")[-3000:]
    assert [r["round"] for r in result.rounds] == [1, 2]
    assert all(r["train"]["participants"] == 3 for r in result.rounds)
    assert all(r["evaluate"]["participants"] == 3 for r in result.rounds)
    losses = [float(r["evaluate"]["eval_loss"]) for r in result.rounds]  # type: ignore[arg-type]
    assert losses[1] < losses[0] < 5.6, losses  # 5.55 nats/byte is a uniform guess
    assert result.model is not None and result.model.stat().st_size > 100_000
    assert result.restarts == {"tang-lab": 0, "song-univ": 0, "modern-corp": 0}
    # each SuperNode was authenticated by the key registered for it: the SuperLink runs with
    # SuperNode authentication on, and every node's key is the run's
    assert "SuperNode authentication is disabled" not in _log(fed, "superlink.log")
    assert fed.processes() == []


def test_a_supernode_killed_mid_run_is_restarted_and_the_run_completes(tmp_path: Path) -> None:
    """Killed as the round begins: before it took its message (its restart takes it) or after
    (the round goes on without it once its wait is over); either way the run completes with
    at least the minimum and the node comes back."""
    fed = Federation(tmp_path / "run", APP, PARTICIPANTS)
    killed: list[int] = []

    def kill_when_training() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and "[ROUND 1" not in _log(fed, "run.log"):
            time.sleep(0.5)
        node = fed.nodes["song-univ"].proc
        if node is not None:
            os.killpg(node.pid, signal.SIGKILL)
            killed.append(node.pid)

    with fed:
        killer = threading.Thread(target=kill_when_training, daemon=True)
        killer.start()
        result = fed.run({**QUICK, "num-server-rounds": 1, "min-participants": 2}, timeout_s=900)
        killer.join(timeout=5)
    assert killed, "the node was killed while the run went on"
    assert result.exit_code == 0, _log(fed, "run.log")[-3000:]
    assert result.restarts["song-univ"] >= 1 and result.restarts["tang-lab"] == 0
    assert [r["round"] for r in result.rounds] == [1]
    assert all(int(r["train"]["participants"]) >= 2 for r in result.rounds)  # type: ignore[call-overload]
    assert fed.processes() == []


def test_secure_aggregation_and_differential_privacy_on_flowers_own_workflows(
    tmp_path: Path,
) -> None:
    """The run-config keys suanli sets from a job's ``secure_aggregation`` and
    ``differential_privacy`` (``FederatedSpec.flower_config``) turn on Flower's SecAgg+
    workflow with clipping on each participant, then central DP, each for one real round."""
    common = {**QUICK, "num-server-rounds": 1, "min-participants": 3}
    dp = {"dp-noise-multiplier": 0.001, "dp-clipping-norm": 10.0}  # noise sd 0.0033
    secure = {
        **common,
        **dp,
        "dp-side": "client",
        "secagg-num-shares": 3,
        "secagg-reconstruction-threshold": 2,
    }
    fed = Federation(tmp_path / "run", APP, PARTICIPANTS)
    with fed:
        first = fed.run(secure, timeout_s=900)
        secured_log = _log(fed, "run.log")
        second = fed.run({**common, **dp, "dp-side": "server"}, timeout_s=900)
        central_log = _log(fed, "run.log")[len(secured_log) :]
    for result, log in ((first, secured_log), (second, central_log)):
        assert result.exit_code == 0, log[-3000:]
        assert [r["round"] for r in result.rounds] == [1]
        (r,) = result.rounds
        assert int(r["train"]["participants"]) == 3  # type: ignore[call-overload]
        assert float(r["evaluate"]["eval_loss"]) < 5.6  # type: ignore[arg-type]
        assert result.model is not None
    assert "Secure aggregation completed" in secured_log
    assert "Secure aggregation" not in central_log
    assert "Noise multiplier: 0.001" in central_log
    assert fed.processes() == []


def test_a_missing_flower_environment_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(CannotRunError, match="uv sync --frozen --project envs/flower"):
        flower_env(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="a member appears twice"):
        Federation(tmp_path, APP, [PARTICIPANTS[0], PARTICIPANTS[0]])
