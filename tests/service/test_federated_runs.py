"""Federated jobs run by the service for real: submitted through the API, placed by the
scheduler, each participant's SuperNode started by the local executor in a sandbox as that
participant's OS user with its own dataset only, the SuperLink beside the control plane,
Flower's own processes from ``envs/flower``, the shipped demo app and corpora. One part is moved
off a drained node mid-run (preempted, requeued, placed again) and rejoins; the run ends, its
parts with it, every round and the model are in the run's status, each participant's part is
in the ledger under its own member, and nothing is left running."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from suanli.api.app import create_app
from suanli.cli.main import cli
from suanli.executors.flower import MARK
from suanli.executors.local import LocalProcessExecutor
from suanli.executors.processes import marked, stop_all
from suanli.hub.stores import Stores
from suanli.sched.policy import get_policy
from suanli.sdk.client import Client
from suanli.server import ServerConfig, prepare
from suanli.service.auth import open_session
from suanli.service.context import Service
from suanli.service.controller import Controller
from suanli.service.vault import Vault
from suanli.spec.alliance_file import load_alliance
from suanli.store.database import Database
from suanli.store.tables import JobRow, LedgerRow

from ..conftest import EXAMPLES
from ..live import serving

ROOT = Path(__file__).resolve().parents[2]
CORPORA = ROOT / "examples" / "federated" / "data"
#: where the example alliance's datasets lie under the data root (OWNER/PATH)
LOCATIONS = {
    "tang300": "qinghe-univ/poetry/tang300",
    "song100": "pengcheng-lab/poetry/song100",
    "chinese": "zhiyuan-ai/corpora/chinese",
}

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("flower_required")]


class Pool:
    def __init__(self, url: str, token: str, ctl: Controller, db: Database) -> None:
        self.client = Client(url, token)
        self.client_url, self.token = url, token
        self.ctl = ctl
        self.db = db

    def until(self, ok: Callable[[], bool], what: str, timeout_s: float = 600) -> None:
        """Step the controller until ``ok`` holds."""
        deadline = time.monotonic() + timeout_s
        while not ok():
            assert time.monotonic() < deadline, f"{what}: not in {timeout_s:.0f} s: {self.state()}"
            self.ctl.step()
            time.sleep(0.3)

    def state(self) -> str:
        """Every job's phase and reason, for a failure's message."""
        jobs = self.client.jobs()["items"]
        return "; ".join(f"{j['id']} {j['phase']} ({j['reason']})" for j in jobs)

    def job(self, job_id: str) -> dict[str, Any]:
        return self.client.job(job_id)


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Pool]:
    data = tmp_path / "data"
    for name, where in LOCATIONS.items():
        (data / where).mkdir(parents=True)
        shutil.copy(CORPORA / f"{name}.txt", data / where / f"{name}.txt")
    data.chmod(0o755)
    for d in data.rglob("*"):
        d.chmod(0o755 if d.is_dir() else 0o644)
    cfg = ServerConfig(tmp_path / "state", data_root=data)
    db, token = prepare(cfg, load_alliance(EXAMPLES / "alliance.yaml"))
    assert token is not None
    executor = LocalProcessExecutor(cfg.state_dir, cfg.sandbox_config(), data_root=data)
    vault = Vault.open(cfg.state_dir)
    policy = get_policy("alliance")
    ctl = Controller(db, executor, policy, vault=vault)
    hub = Stores(tmp_path / "hub")
    try:
        with serving(create_app(Service(db, policy, executor, vault=vault, hub=hub))) as url:
            ctl.hub_url = url  # (the run publishes its model there)
            pool = Pool(url, token, ctl, db)
            try:
                yield pool
            finally:
                pool.client.close()
    finally:
        with db.session() as s:
            for row in s.scalars(select(JobRow).where(JobRow.attempt > 0)):
                executor.stop(row.id, row.attempt, 0.0)  # type: ignore[arg-type]
        db.close()
        stop_all([], f"{MARK}=fed-poetry".encode(), 5.0)


def submit(
    pool: Pool, work: Path, run_id: str, rounds: int, publish: str | None = None
) -> dict[str, Any]:
    """The demo app on the three corpora, from a working directory runs can read."""
    shutil.copytree(ROOT / "examples" / "federated" / "charlm", work / "charlm")
    for d in work.rglob("*"):
        d.chmod(0o755 if d.is_dir() else 0o644)
    (run,) = pool.client.submit(
        {
            "kind": "federated",
            "id": run_id,
            "member": "pengcheng-lab",
            "app": "charlm",
            "rounds": rounds,
            "min_participants": 2,
            "participants": [
                {"member": "qinghe-univ", "dataset": "tang300", "accelerators": "RTX4090:1"},
                {"member": "pengcheng-lab", "dataset": "song100", "accelerators": "Ascend910B:1"},
                {
                    "member": "zhiyuan-ai",
                    "dataset": "chinese",
                    "accelerators": {"count": 1, "any_of": ["MLU370-X8", "C550"]},
                },
            ],
            "run_config": {"local-steps": 20, "batch-size": 32, "round-timeout": 90.0},
            "runtime_env": {"working_dir": str(work)},
            **({"publish": publish} if publish else {}),
        }
    )
    return run


def test_a_federated_job_runs_on_its_participants_nodes_and_survives_a_move(
    pool: Pool, tmp_path: Path, shared_dir: Path
) -> None:
    pool.client.hub_create("pengcheng-lab/charlm-fed")
    run = submit(pool, shared_dir, "fed-poetry", 4, publish="pengcheng-lab/charlm-fed")
    assert run["kind"] == "federated" and run["phase"] == "PENDING"
    parts = [f"fed-poetry.{k}" for k in (1, 2, 3)]
    assert [pool.job(p)["member"] for p in parts] == ["qinghe-univ", "pengcheng-lab", "zhiyuan-ai"]
    assert all(pool.job(p)["run"] == "fed-poetry" for p in parts)

    # placed: each part on its own member's nodes where its dataset is resident
    pool.until(lambda: pool.job("fed-poetry")["phase"] == "RUNNING", "the run started", 300)
    where = {p: pool.job(p)["placement"]["assignments"][0][0] for p in parts}
    assert where["fed-poetry.1"].startswith("qh-4090")
    assert where["fed-poetry.2"].startswith("pc-910b")
    # zhiyuan-ai's part accepts its MLU370s and its C550s (the faster by NU goes first)
    assert where["fed-poetry.3"].startswith(("zy-mlu370", "zy-c550"))
    on_mlu = where["fed-poetry.3"].startswith("zy-mlu370")
    drained, elsewhere = ("MLU370-X8", "zy-c550") if on_mlu else ("C550", "zy-mlu370")
    # each SuperNode was handed its own dataset only
    state = tmp_path / "state" / "runs"
    for p, ds in zip(parts, LOCATIONS, strict=True):
        request = json.loads((state / p / "1" / "request.json").read_text())
        assert set(request["datasets"]) == {ds}, request["datasets"]
        assert request["member"] == pool.job(p)["member"]
        assert request["sandbox"]["network"] == "host"
    link = json.loads((state / "fed-poetry" / "1" / "request.json").read_text())
    assert link["datasets"] == {} and link["member"] == "pengcheng-lab"

    # a round done, then the part's model drained: zhiyuan-ai's part is preempted, moved to
    # its other model's node (the same site, where its corpus may be read) and its SuperNode
    # rejoins
    pool.until(lambda: len(_rounds(pool)) >= 1, "a first round", 600)
    moves = pool.client.drain_pool(model=drained)
    assert [m["job"] for m in moves["moving"]] == ["fed-poetry.3"], moves
    pool.until(lambda: pool.job("fed-poetry.3")["attempt"] == 2, "the part placed again", 300)
    moved = pool.job("fed-poetry.3")
    assert moved["preemptions"] == 1
    assert moved["placement"]["assignments"][0][0].startswith(elsewhere)
    assert pool.job("fed-poetry")["phase"] == "RUNNING"  # (the run went on meanwhile)

    pool.until(lambda: pool.job("fed-poetry")["phase"] == "SUCCEEDED", "the run ended", 900)
    pool.until(
        lambda: all(pool.job(p)["phase"] == "SUCCEEDED" for p in parts), "its parts ended", 120
    )
    done = pool.job("fed-poetry")
    rounds = done["progress"]["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3, 4]
    assert all(2 <= r["train"]["participants"] <= 3 for r in rounds)
    assert all("eval_loss" in r["evaluate"] for r in rounds)
    model = done["progress"]["model"]
    assert len(model["sha256"]) == 64 and model["bytes"] > 0
    output = tmp_path / "state" / "checkpoints" / "fed-poetry" / "output"
    lineage = json.loads((output / "lineage.json").read_text())
    assert lineage["model"]["sha256"] == model["sha256"]
    assert [p["dataset"] for p in lineage["participants"]] == list(LOCATIONS)

    # published to the hub with the run's token: the revision's lineage names the run, what
    # its participants read and ran on
    assert model["published"]["repo"] == "pengcheng-lab/charlm-fed", done["progress"]
    made = pool.client.hub_lineage("pengcheng-lab/charlm-fed")
    assert made["sha"] == model["published"]["commit"]
    assert made["commits"][0]["job"] == "fed-poetry"
    (run_made,) = made["jobs"]
    assert run_made["job"] == "fed-poetry" and run_made["datasets"] == list(LOCATIONS)
    assert len(run_made["nodes"]) >= 3 and run_made["devices"] >= 3
    url = f"{pool.client_url}/pengcheng-lab/charlm-fed/resolve/main/model.npz"
    got = httpx.get(url, headers={"Authorization": f"Bearer {pool.token}"}).content
    assert hashlib.sha256(got).hexdigest() == model["sha256"]

    # each participant's part is charged to its own member, the run to no one
    with pool.db.session() as s:
        charged = {
            (r.job, r.member)
            for r in s.scalars(select(LedgerRow).where(LedgerRow.kind == "usage"))
            if r.job is not None
        }
    assert {("fed-poetry.1", "qinghe-univ"), ("fed-poetry.2", "pengcheng-lab")} <= charged
    assert ("fed-poetry.3", "zhiyuan-ai") in charged
    assert not any(job == "fed-poetry" for job, _ in charged)
    period = time.strftime("%Y-%m", time.gmtime())
    for member in ("qinghe-univ", "pengcheng-lab", "zhiyuan-ai"):
        runs = pool.client.statement(member, period, "real")["federated_runs"]
        assert set(runs) == {"fed-poetry"} and runs["fed-poetry"] > 0, (member, runs)
    assert not marked(f"{MARK}=fed-poetry".encode())

    # what `suanli job` shows of it
    shown = CliRunner().invoke(
        cli, ["job", "fed-poetry", "--url", pool.client_url, "--token", pool.token]
    )
    assert shown.exit_code == 0, shown.output
    assert "4 of 4 done" in shown.stdout and model["sha256"] in shown.stdout
    assert "fed-poetry.3  zhiyuan-ai     chinese" in shown.stdout
    assert "EVAL LOSS" in shown.stdout

    # the dashboard's page of the run: its parts and its loss per round, plotted
    with pool.db.session() as s:
        web = open_session(s, pool.token, time.time())
    with httpx.Client(base_url=pool.client_url, cookies={"suanli_session": web.id}) as c:
        page = c.get("/ui/jobs/fed-poetry").text
        part = c.get("/ui/jobs/fed-poetry.3").text
    assert 'aria-label="Loss per round"' in page and "<polyline" in page
    assert page.count("/ui/jobs/fed-poetry.") >= 3 and model["sha256"] in page
    assert "Part of" in part and "/ui/jobs/fed-poetry" in part


def test_a_dead_superlink_fails_the_run_with_the_reason_and_leaves_nothing(
    pool: Pool, shared_dir: Path
) -> None:
    submit(pool, shared_dir, "fed-poetry", 50)
    pool.until(lambda: len(_rounds(pool)) >= 1, "a first round", 600)
    mark = f"{MARK}=fed-poetry".encode()
    (link,) = [p for p in marked(mark) if b"flower-superlink" in _cmdline(p)]
    os.kill(link, signal.SIGKILL)
    pool.until(lambda: pool.job("fed-poetry")["phase"] == "FAILED", "the run failed", 300)
    assert "the SuperLink exited" in pool.job("fed-poetry")["reason"]
    parts = [f"fed-poetry.{k}" for k in (1, 2, 3)]
    pool.until(lambda: all(pool.job(p)["phase"] == "FAILED" for p in parts), "parts ended", 120)
    assert all("ended FAILED" in pool.job(p)["reason"] for p in parts)
    deadline = time.monotonic() + 30
    while marked(mark) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not marked(mark)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _rounds(pool: Pool) -> list[dict[str, Any]]:
    progress = pool.job("fed-poetry").get("progress") or {}
    return list(progress.get("rounds") or [])
