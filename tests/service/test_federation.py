"""The service's rules for federated runs, on a real database (SQLite and PostgreSQL): how a
federated job is stored (its run and one part per participant, each its participant's), when
the run starts (once its minimum of parts is placed), what each run is handed (its own dataset
and key only), how its rounds are read, and how its parts end with it. The runs are scripted
here (an executor that records starts and reports what the test says); the real Flower
processes are in ``test_federated_runs.py``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from suanli.errors import NotFoundError, ValidationError
from suanli.executors.base import RunPhase, RunRequest, RunState
from suanli.model.ids import JobId, NodeId
from suanli.sched.policy import get_policy
from suanli.service import jobs
from suanli.service.auth import Principal, Role
from suanli.service.controller import Controller
from suanli.service.federation import CONTROL_NODE
from suanli.service.pool import create_alliance
from suanli.service.vault import Vault
from suanli.spec.alliance_file import load_alliance
from suanli.store.database import Database
from suanli.store.tables import JobRow

from ..builders import admin
from ..conftest import EXAMPLES


class Scripted:
    """An executor whose runs do what the test says: started runs are RUNNING until the test
    ends them; a stop ends a run with 143."""

    def __init__(self) -> None:
        self.started: dict[tuple[JobId, int], RunRequest] = {}
        self.states: dict[tuple[JobId, int], RunState] = {}
        self.output: dict[tuple[JobId, int], bytes] = {}

    def start(self, run: RunRequest) -> None:
        if run.key not in self.started:
            self.started[run.key] = run
            self.states[run.key] = RunState(
                run.job, run.attempt, RunPhase.RUNNING, None, time.time()
            )

    def exit(self, job: str, attempt: int, code: int) -> None:
        key = (JobId(job), attempt)
        self.states[key] = RunState(
            key[0], attempt, RunPhase.EXITED, code, time.time(), time.time()
        )

    def stop(self, job: JobId, attempt: int, grace_s: float) -> None:
        if self.states[(job, attempt)].phase is RunPhase.RUNNING:
            self.exit(job, attempt, 143)

    def observe(self) -> dict[tuple[JobId, int], RunState]:
        return dict(self.states)

    def logs(self, job: JobId, attempt: int, offset: int = 0, limit: int | None = None) -> bytes:
        data = self.output.get((job, attempt), b"")[offset:]
        return data if limit is None else data[:limit]

    def log_size(self, job: JobId, attempt: int) -> int:
        return len(self.output.get((job, attempt), b""))

    def forget(self, job: JobId, attempt: int) -> None:
        pass

    def node_health(self) -> dict[NodeId, str | None]:
        return {}


RUN = {
    "kind": "federated",
    "id": "fed",
    "member": "pengcheng-lab",
    "app": "charlm",
    "rounds": 3,
    "min_participants": 2,
    "participants": [
        {"member": "qinghe-univ", "dataset": "tang300", "accelerators": "RTX4090:1"},
        {"member": "pengcheng-lab", "dataset": "song100", "accelerators": "Ascend910B:1"},
        {"member": "zhiyuan-ai", "dataset": "chinese", "accelerators": "MLU370-X8:1"},
    ],
    "runtime_env": {"working_dir": "/srv/work"},
}
PARTS = ["fed.1", "fed.2", "fed.3"]


@pytest.fixture
def flower(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for Flower's environment (nothing of it runs here)."""
    env = tmp_path / "flower"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "flwr").touch()
    monkeypatch.setenv("SUANLI_FLOWER_ENV", str(env))
    return env


def setup(db: Database, tmp_path: Path) -> tuple[Controller, Scripted, Vault]:
    with db.session() as s:
        create_alliance(s, load_alliance(EXAMPLES / "alliance.yaml"), "admin", time.time())
    ex = Scripted()
    (tmp_path / "vault").mkdir(mode=0o700)
    vault = Vault.open(tmp_path / "vault")
    return Controller(db, ex, get_policy("alliance"), vault=vault), ex, vault


def rows(db: Database) -> dict[str, JobRow]:
    with db.session() as s:
        return {r.id: r for r in s.scalars(select(JobRow))}


def test_a_run_is_stored_as_its_participants_parts_each_with_its_own_key(
    db: Database, tmp_path: Path, flower: Path
) -> None:
    _, _, vault = setup(db, tmp_path)
    with db.session() as s, pytest.raises(ValidationError) as err:
        jobs.submit(s, admin(), RUN, time.time())  # no vault: its keys could not be sealed
    assert [p.field for p in err.value.problems] == ["kind"]
    with db.session() as s:
        (view,) = jobs.submit(s, admin(), RUN, time.time(), vault)
    assert view.kind == "federated" and view.id == "fed"
    got = rows(db)
    assert [(got[p].kind, got[p].run, got[p].member) for p in PARTS] == [
        ("part", "fed", "qinghe-univ"),
        ("part", "fed", "pengcheng-lab"),
        ("part", "fed", "zhiyuan-ai"),
    ]
    keys = [vault.open_sealed(got[p].secrets or "")["SUANLI_FLOWER_KEY"] for p in PARTS]
    assert len(set(keys)) == 3 and all("OPENSSH PRIVATE KEY" in k for k in keys)
    link = vault.open_sealed(got["fed"].secrets or "")
    assert "SUANLI_FLOWER_KEY" not in link and "PRIVATE KEY" in link["SUANLI_FLOWER_LINK_KEY"]
    assert set(got["fed"].spec["nodes"]) == set(PARTS)  # (their public keys)
    # a participant's user sees the run and its rounds; another member's does not
    outsider = Principal("x", Role.MEMBER_USER, "xinghuo")
    insider = Principal("q", Role.MEMBER_USER, "qinghe-univ")
    with db.session() as s:
        with pytest.raises(NotFoundError):
            jobs.get(s, outsider, "fed")
        assert jobs.get(s, insider, "fed").progress == {
            "rounds": [],
            "model": None,
            "attempt": None,
        }


def test_the_run_starts_with_its_minimum_reads_its_rounds_and_ends_its_parts(
    db: Database, tmp_path: Path, flower: Path
) -> None:
    ctl, ex, vault = setup(db, tmp_path)
    with db.session() as s:
        jobs.submit(s, admin(), RUN, time.time(), vault)
    ctl.step()  # the parts are placed (the group's rule: together)
    got = rows(db)
    assert all(got[p].phase in ("ADMITTED", "RUNNING") for p in PARTS)
    assert got["fed"].phase == "PENDING"
    ctl.step()  # the run follows its placed parts
    assert rows(db)["fed"].phase in ("ADMITTED", "RUNNING")
    link = ex.started[(JobId("fed"), 1)]
    assert link.devices == ((CONTROL_NODE, ()),) and link.network == "host"
    assert link.member == "pengcheng-lab" and dict(link.datasets) == {}
    assert link.working_dir == "/srv/work" and "SUANLI_FLOWER_LINK_KEY" in link.env
    assert json.loads(link.env["SUANLI_FLOWER_RUN_CONFIG"])["num-server-rounds"] == 3
    for part, ds in zip(PARTS, ["tang300", "song100", "chinese"], strict=True):
        req = ex.started[(JobId(part), 1)]
        assert set(req.datasets) == {ds} and req.network == "host"
        assert req.env["SUANLI_FLOWER_DATASET"] == ds
        assert req.env["SUANLI_FLOWER_LINK"] == link.env["SUANLI_FLOWER_ADDRESS"]
        assert req.env["SUANLI_FLOWER_PYTHON"] == str(flower / "bin" / "python")
        assert "SUANLI_FLOWER_LINK_KEY" not in req.env

    ex.output[(JobId("fed"), 1)] = (
        b'noise\nsuanli-round {"round": 1, "train": {"train_loss": 2.5, "participants": 3}}\n'
        b'suanli-round {"round": 1, "evaluate": {"eval_loss": 2.4}}\nsuanli-round {"rou'
    )
    ctl.step()
    rounds = rows(db)["fed"].progress["rounds"]  # type: ignore[index]
    assert rounds == [
        {
            "round": 1,
            "train": {"train_loss": 2.5, "participants": 3},
            "evaluate": {"eval_loss": 2.4},
        }
    ]
    ex.output[(JobId("fed"), 1)] += (
        b'nd": 2, "train": {"train_loss": 2.0}}\n'
        b'suanli-model {"file": "output/model.npz", "sha256": "ab", "bytes": 9}\n'
    )
    ex.exit("fed", 1, 0)
    for _ in range(3):
        ctl.step()
    got = rows(db)
    assert got["fed"].phase == "SUCCEEDED"
    assert [r["round"] for r in got["fed"].progress["rounds"]] == [1, 2]  # type: ignore[index]
    assert got["fed"].progress["model"]["sha256"] == "ab"  # type: ignore[index]
    assert [got[p].phase for p in PARTS] == ["SUCCEEDED"] * 3
    assert all("its federated run fed ended SUCCEEDED" in got[p].reason for p in PARTS)


def test_a_run_left_with_fewer_parts_than_its_minimum_is_cancelled(
    db: Database, tmp_path: Path, flower: Path
) -> None:
    ctl, _, vault = setup(db, tmp_path)
    with db.session() as s:
        jobs.submit(s, admin(), RUN, time.time(), vault)
    for _ in range(2):
        ctl.step()
    with db.session() as s:  # two participants withdraw their parts
        jobs.cancel(s, Principal("q", Role.MEMBER_ADMIN, "qinghe-univ"), "fed.1", time.time())
        jobs.cancel(s, Principal("z", Role.MEMBER_ADMIN, "zhiyuan-ai"), "fed.3", time.time())
    for _ in range(4):
        ctl.step()
    got = rows(db)
    assert got["fed.1"].phase == got["fed.3"].phase == "CANCELLED"
    assert got["fed"].phase == "CANCELLED" and "fewer than its minimum of 2" in got["fed"].reason
    assert got["fed.2"].phase == "CANCELLED"  # (ended with its run)
