"""The Ray executor against a real two-node Ray cluster on this machine, driven by the
controller: jobs land on the Ray node the scheduler chose, see their devices, are preempted
with SIGTERM, checkpoint, and resume."""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from suanli.executors.base import RunRequest
from suanli.executors.ray import RayExecutor, node_resource
from suanli.executors.ray_cluster import LocalRayCluster, RayNodeSpec
from suanli.model.ids import JobId, ModelId, NodeId
from suanli.model.job import Phase
from suanli.sched.policy import get_policy
from suanli.service import jobs
from suanli.service.controller import Controller
from suanli.service.pool import create_alliance
from suanli.spec.alliance_file import loads_alliance
from suanli.store.alliance_rows import read_alliance
from suanli.store.database import Database

from ..stepping import run_until as _run_until

ALLIANCE = """
alliance: ray-two
members:
  - {id: hx, kind: enterprise}
  - {id: zy, kind: startup, tier: commons}
  - {id: pc, kind: institute}
sites:
  - {id: hx-site, member: hx, region: r1}
  - {id: pc-site, member: pc, region: r1}
nodes:
  - {id: hx-1, site: hx-site, model: H800-80GB, devices: 8, cpu: 8, memory_gb: 64}
  - {id: pc-1, site: pc-site, model: MLU370-X8, devices: 8, cpu: 8, memory_gb: 64}
"""


def labels(node: str, model: str, member: str) -> dict[str, str]:
    return {"suanli.io/node": node, "suanli.io/model": model, "suanli.io/member": member}


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[LocalRayCluster]:
    cluster = LocalRayCluster(
        [
            RayNodeSpec({"GPU": 8, node_resource("hx-1"): 8}, labels("hx-1", "H800-80GB", "hx")),
            RayNodeSpec({"MLU": 8, node_resource("pc-1"): 8}, labels("pc-1", "MLU370-X8", "pc")),
        ],
        stop_grace_s=10,
    )
    with cluster:
        yield cluster


@pytest.fixture
def setup(ray_cluster: LocalRayCluster, tmp_path: Path) -> Iterator[tuple[Database, Controller]]:
    db = Database.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with db.session() as s:
        create_alliance(s, loads_alliance(ALLIANCE), "t", time.time())
    ex = RayExecutor(ray_cluster.address, ray_cluster.token, tmp_path / "ckpt")
    yield db, Controller(db, ex, get_policy("alliance", grace_s=10))
    db.close()


def submit(db: Database, doc: object) -> None:
    with db.session() as s:
        jobs.submit(s, read_alliance(s)[0], doc, "t", time.time())


def run_until(ctl: Controller, db: Database, done, timeout: float = 120):  # type: ignore[no-untyped-def]
    return _run_until(ctl, db, done, timeout, pause=0.2)


def ray_node_of(cluster: LocalRayCluster, submission: str) -> str:
    """The suanli.io/node label of the Ray node that ran a job's driver."""
    h = {"Authorization": f"Bearer {cluster.token}"}
    info = httpx.get(f"{cluster.address}/api/jobs/{submission}", headers=h).json()
    nodes = httpx.get(f"{cluster.address}/nodes?view=summary", headers=h).json()
    for n in nodes["data"]["summary"]:
        raylet = n.get("raylet", {})
        if raylet.get("nodeId") == info["driver_node_id"]:
            return str(raylet.get("labels", {}).get("suanli.io/node"))
    raise AssertionError("driver node not found")


def test_jobs_land_on_the_chosen_ray_node_with_their_devices(
    setup: tuple[Database, Controller], ray_cluster: LocalRayCluster
) -> None:
    db, ctl = setup
    submit(
        db,
        {
            "jobs": [
                {
                    "id": "on-h800",
                    "member": "hx",
                    "accelerators": "H800:2",
                    "entrypoint": "echo gpu=$CUDA_VISIBLE_DEVICES node=$SUANLI_NODE",
                },
                {
                    "id": "on-mlu",
                    "member": "pc",
                    "accelerators": "MLU370:4",
                    "entrypoint": "echo mlu=$MLU_VISIBLE_DEVICES; exit 3",
                },
            ]
        },
    )
    rows = run_until(ctl, db, lambda r: all(Phase(x.phase).terminal for x in r.values()))
    assert rows["on-h800"].phase == "SUCCEEDED"
    assert rows["on-mlu"].phase == "FAILED" and rows["on-mlu"].exit_code == 3
    assert b"gpu=0,1 node=hx-1" in ctl.executor.logs(JobId("on-h800"), 1)
    assert b"mlu=0,1,2,3" in ctl.executor.logs(JobId("on-mlu"), 1)
    assert ray_node_of(ray_cluster, "suanli-on-h800-1") == "hx-1"
    assert ray_node_of(ray_cluster, "suanli-on-mlu-1") == "pc-1"


def test_start_is_idempotent_and_gangs_are_refused(
    setup: tuple[Database, Controller], tmp_path: Path
) -> None:
    _, ctl = setup
    ex = ctl.executor
    assert isinstance(ex, RayExecutor)
    req = RunRequest(
        JobId("twice"), 1, "echo once", ModelId("H800-80GB"), "cuda", ((NodeId("hx-1"), (7,)),)
    )
    ex.start(req)
    ex.start(req)
    assert sum(1 for k in ex.observe() if k == (JobId("twice"), 1)) == 1
    gang = RunRequest(
        JobId("gang"),
        1,
        "true",
        ModelId("H800-80GB"),
        "cuda",
        ((NodeId("hx-1"), (0,)), (NodeId("pc-1"), (0,))),
    )
    with pytest.raises(ValueError, match="multi-node"):
        ex.start(gang)


def test_reclaim_stops_the_borrower_on_ray_which_resumes_from_its_checkpoint(
    setup: tuple[Database, Controller],
) -> None:
    db, ctl = setup
    borrower = (
        'C="$SUANLI_CHECKPOINT_DIR/step"; '
        'if [ -f "$C" ]; then echo "resumed at $(cat "$C")"; exit 0; fi; '
        "trap 'echo 7 > \"$C\"; exit 0' TERM; echo started; "
        "while true; do sleep 0.1; done"
    )
    submit(db, {"id": "borrow", "member": "zy", "accelerators": "H800:8", "entrypoint": borrower})
    run_until(ctl, db, lambda r: b"started" in ctl.executor.logs(JobId("borrow"), 1))
    submit(db, {"id": "owner", "member": "hx", "accelerators": "H800:8", "entrypoint": "true"})
    rows = run_until(ctl, db, lambda r: all(Phase(x.phase).terminal for x in r.values()))
    assert rows["owner"].phase == "SUCCEEDED"
    assert rows["borrow"].phase == "SUCCEEDED" and rows["borrow"].attempt == 2
    assert b"resumed at 7" in ctl.executor.logs(JobId("borrow"), 2)


def test_drain_by_vendor_moves_jobs_to_other_chips_from_their_checkpoints(
    setup: tuple[Database, Controller],
) -> None:
    from suanli.service.auth import Principal, Role
    from suanli.service.pool import drain_many

    db, ctl = setup
    mover = (
        'C="$SUANLI_CHECKPOINT_DIR/step"; '
        'if [ -f "$C" ]; then echo "resumed at $(cat "$C") on mlu=$MLU_VISIBLE_DEVICES"; '
        "exit 0; fi; "
        "trap 'echo 5 > \"$C\"; exit 0' TERM; echo started on cuda=$CUDA_VISIBLE_DEVICES; "
        "while true; do sleep 0.1; done"
    )
    submit(
        db,
        {
            "jobs": [
                {
                    "id": "mover",
                    "member": "hx",
                    "entrypoint": mover,
                    "accelerators": {"any_of": ["H800-80GB", "MLU370-X8"], "count": 4},
                },
                {
                    "id": "stuck",
                    "member": "hx",
                    "accelerators": "H800:2",
                    "entrypoint": "trap 'exit 0' TERM; while true; do sleep 0.1; done",
                },
            ]
        },
    )
    run_until(ctl, db, lambda r: all(x.phase == "RUNNING" for x in r.values()))
    with db.session() as s:
        assert jobs.get(s, "mover").placement["model"] == "H800-80GB"  # type: ignore[index]
    admin = Principal("admin", Role.ALLIANCE_ADMIN, None)
    with db.session() as s:
        report = drain_many(s, admin, "NVIDIA", None, 10.0, time.time())
    assert report["nodes"] == ["hx-1"]
    assert report["moving"] == [{"job": "mover", "to": ["MLU370-X8"]}]
    assert report["staying"][0]["job"] == "stuck"
    assert "no other acceptable model" in report["staying"][0]["reason"]
    rows = run_until(ctl, db, lambda r: r["mover"].phase == "SUCCEEDED")
    assert rows["mover"].attempt == 2 and rows["stuck"].phase == "RUNNING"
    assert b"resumed at 5 on mlu=0,1,2,3" in ctl.executor.logs(JobId("mover"), 2)
    with db.session() as s:
        jobs.cancel(s, "stuck", "t", time.time())
    run_until(ctl, db, lambda r: r["stuck"].phase == "CANCELLED")


def test_two_sites_with_their_own_ray_clusters(tmp_path: Path) -> None:
    """Each member's site is its own Ray cluster (different ports, different tokens); the pool
    dispatches each job to the cluster of the site the scheduler chose."""
    from suanli.executors.sites import PerSiteExecutor
    from suanli.model.ids import SiteId

    a = LocalRayCluster(
        [RayNodeSpec({"GPU": 8, node_resource("hx-1"): 8}, labels("hx-1", "H800-80GB", "hx"))]
    )
    b = LocalRayCluster(
        [RayNodeSpec({"MLU": 8, node_resource("pc-1"): 8}, labels("pc-1", "MLU370-X8", "pc"))]
    )
    with a, b:
        assert a.token != b.token and a.address != b.address
        ra = RayExecutor(a.address, a.token, tmp_path / "ckpt")
        rb = RayExecutor(b.address, b.token, tmp_path / "ckpt")
        ex = PerSiteExecutor(
            {SiteId("hx-site"): ra, SiteId("pc-site"): rb},
            {NodeId("hx-1"): SiteId("hx-site"), NodeId("pc-1"): SiteId("pc-site")},
        )
        db = Database.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
        with db.session() as s:
            create_alliance(s, loads_alliance(ALLIANCE), "t", time.time())
        ctl = Controller(db, ex, get_policy("alliance"))
        submit(
            db,
            {
                "jobs": [
                    {
                        "id": "at-a",
                        "member": "hx",
                        "accelerators": "H800:1",
                        "entrypoint": "echo a",
                    },
                    {
                        "id": "at-b",
                        "member": "pc",
                        "accelerators": "MLU370:1",
                        "entrypoint": "echo b",
                    },
                ]
            },
        )
        rows = run_until(ctl, db, lambda r: all(Phase(x.phase).terminal for x in r.values()))
        assert {r.phase for r in rows.values()} == {"SUCCEEDED"}
        assert {j.submission_id for j in ra.client.list_jobs()} == {"suanli-at-a-1"}
        assert {j.submission_id for j in rb.client.list_jobs()} == {"suanli-at-b-1"}
        assert b"b" in ex.logs(JobId("at-b"), 1)
        db.close()
