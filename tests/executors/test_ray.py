"""The Ray executor against a real two-node Ray cluster on this machine, driven by the
controller: jobs land on the Ray node the scheduler chose, see their devices, are preempted
with SIGTERM, checkpoint, and resume."""

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from suanli.executors.ray import RayExecutor, node_resource
from suanli.executors.ray_cluster import LocalRayCluster, RayNodeSpec
from suanli.model.ids import JobId, NodeId
from suanli.model.job import Phase
from suanli.sched.policy import get_policy
from suanli.service import jobs
from suanli.service.controller import Controller
from suanli.service.pool import create_alliance
from suanli.spec.alliance_file import loads_alliance
from suanli.store.database import Database

from ..builders import admin
from ..stepping import run_until as _run_until
from .conftest import RAY_INDEX, labels

pytestmark = pytest.mark.slow  # real servers, clusters or browsers: pytest -m "not slow" skips them

ALLIANCE = """
alliance: ray-two
members:
  - {id: hx, kind: enterprise}
  - {id: zy, kind: startup, tier: commons}
  - {id: pc, kind: institute}
  - {id: as, kind: university}
sites:
  - {id: hx-site, member: hx, region: r1}
  - {id: pc-site, member: pc, region: r1}
  - {id: as-site, member: as, region: r1}
datasets:
  - {id: pc-corpus, owner: pc, residency: {sites: [pc-site]}}
nodes:
  - {id: hx-1, site: hx-site, model: H800-80GB, devices: 8, cpu: 8, memory_gb: 64}
  - {id: pc-1, site: pc-site, model: MLU370-X8, devices: 8, cpu: 8, memory_gb: 64}
  - {id: as-1, site: as-site, model: Ascend910B, devices: 4, cpu: 8, memory_gb: 64}
  - {id: as-2, site: as-site, model: Ascend910B, devices: 4, cpu: 8, memory_gb: 64}
"""
EXAMPLES = str(Path(__file__).resolve().parents[2] / "examples")


@pytest.fixture
def setup(ray_cluster: LocalRayCluster, tmp_path: Path) -> Iterator[tuple[Database, Controller]]:
    db = Database.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with db.session() as s:
        create_alliance(s, loads_alliance(ALLIANCE), "t", time.time())
    ex = RayExecutor(ray_cluster.address, ray_cluster.token, tmp_path / "ckpt")
    try:
        yield db, Controller(db, ex, get_policy("alliance", grace_s=10))
    finally:
        db.close()
        stop_every_job(ex)


def stop_every_job(ex: RayExecutor) -> None:
    """The cluster outlives a test: what a failed test left running in it must not hold the
    devices the next test needs."""
    client = ex.client
    live = [j.submission_id for j in client.list_jobs() if not j.status.is_terminal()]
    for sid in live:
        if sid is not None:
            client.stop_job(sid)
    deadline = time.time() + 120
    while any(sid and not client.get_job_status(sid).is_terminal() for sid in live):
        assert time.time() < deadline, "a Ray job did not stop"
        time.sleep(0.2)


def submit(db: Database, doc: object) -> None:
    with db.session() as s:
        jobs.submit(s, admin(), doc, time.time())


def run_until(ctl: Controller, db: Database, done, timeout: float = 300):  # type: ignore[no-untyped-def]
    """Step until ``done``; the deadline guards a hang, not a speed (a Ray job's driver takes
    over two minutes to start with two suites on two cores)."""
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


RENDEZVOUS = """
import os, socket, time
rank, n = int(os.environ["NODE_RANK"]), int(os.environ["WORLD_SIZE"])
addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
print(f"rank={rank}/{n} node={os.environ['SUANLI_NODE']} "
      f"npu={os.environ['ASCEND_RT_VISIBLE_DEVICES']}", flush=True)
if rank == 0:
    srv = socket.create_server((addr, port))
    conn, _ = srv.accept()
    print("rank 0 heard", conn.recv(64).decode(), flush=True)
else:
    for _ in range(100):
        try:
            socket.create_connection((addr, port)).sendall(f"hello from {rank}".encode())
            break
        except OSError:
            time.sleep(0.1)
"""


def test_a_gang_runs_once_per_node_in_a_placement_group_and_meets_at_its_master(
    setup: tuple[Database, Controller], shared_dir: Path
) -> None:
    db, ctl = setup
    (shared_dir / "rendezvous.py").write_text(RENDEZVOUS)
    submit(
        db,
        {
            "id": "gang",
            "member": "as",
            "accelerators": "Ascend910B:8",
            "gang": "2x4",
            "entrypoint": "python rendezvous.py",
            "runtime_env": {"working_dir": str(shared_dir)},
        },
    )
    rows = run_until(ctl, db, lambda r: Phase(r["gang"].phase).terminal)
    logs = ctl.executor.logs(JobId("gang"), 1).decode()
    assert rows["gang"].phase == "SUCCEEDED", logs
    # every line of every node exactly once, prefixed with its member, down to the last
    assert logs.count("(rank 0 on as-1) rank=0/2 node=as-1 npu=0,1,2,3") == 1, logs
    assert logs.count("(rank 1 on as-2) rank=1/2 node=as-2 npu=0,1,2,3") == 1, logs
    assert logs.count("(rank 0 on as-1) rank 0 heard hello from 1") == 1, logs


def test_a_stopped_gang_stops_on_every_node(setup: tuple[Database, Controller]) -> None:
    db, ctl = setup
    submit(
        db,
        {
            "id": "long-gang",
            "member": "as",
            "accelerators": "Ascend910B:8",
            "gang": "2x4",
            "entrypoint": "trap 'echo rank $NODE_RANK saved; exit 0' TERM; "
            "echo rank $NODE_RANK up; while true; do sleep 0.1; done",
        },
    )

    def both_up(_: object) -> bool:
        logs = ctl.executor.logs(JobId("long-gang"), 1)
        return b"rank 0 up" in logs and b"rank 1 up" in logs

    run_until(ctl, db, both_up)
    with db.session() as s:
        jobs.cancel(s, admin(), "long-gang", time.time())
    rows = run_until(ctl, db, lambda r: Phase(r["long-gang"].phase).terminal)
    assert rows["long-gang"].phase == "CANCELLED"
    logs = ctl.executor.logs(JobId("long-gang"), 1).decode()
    assert logs.count("rank 0 saved") == 1 and logs.count("rank 1 saved") == 1, logs
    # the driver passed the SIGTERM on and waited for both (not killed by Ray's own handler)
    assert "node rank 0 exited 0" in logs and "node rank 1 exited 0" in logs, logs


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
    # running in Ray's eyes is not yet running in the job's: wait until its trap is set (a
    # SIGTERM before that ends it without a checkpoint, and it would start over on the MLU)
    run_until(
        ctl,
        db,
        lambda r: (
            all(x.phase == "RUNNING" for x in r.values())
            and b"started on cuda" in ctl.executor.logs(JobId("mover"), 1)
        ),
    )
    with db.session() as s:
        assert jobs.get(s, admin(), "mover").placement["model"] == "H800-80GB"  # type: ignore[index]
    with db.session() as s:
        report = drain_many(s, admin(), "NVIDIA", None, 10.0, time.time())
    assert report.nodes == ["hx-1"]
    assert [(m.job, m.to) for m in report.moving] == [("mover", ["MLU370-X8"])]
    assert report.staying[0].job == "stuck"
    assert "no other acceptable model" in report.staying[0].reason
    rows = run_until(ctl, db, lambda r: r["mover"].phase == "SUCCEEDED")
    assert rows["mover"].attempt == 2 and rows["stuck"].phase == "RUNNING"
    assert b"resumed at 5 on mlu=0,1,2,3" in ctl.executor.logs(JobId("mover"), 2)
    with db.session() as s:
        jobs.cancel(s, admin(), "stuck", time.time())
    run_until(ctl, db, lambda r: r["stuck"].phase == "CANCELLED")


def test_cancelling_a_job_ray_holds_pending_leaves_it_behind_and_stops_it_if_it_starts(
    setup: tuple[Database, Controller], ray_cluster: LocalRayCluster
) -> None:
    """Ray cannot stop a job that has not started. A job suanli placed on pc-1 waits in Ray
    behind another Ray user's job holding pc-1's devices; cancelled, it ends CANCELLED at once;
    when the devices free up and Ray starts it after all, it is stopped at once."""
    from ray.job_submission import JobStatus

    db, ctl = setup
    ex = ctl.executor
    assert isinstance(ex, RayExecutor)
    blocker = ex.client.submit_job(
        entrypoint="sleep 600",
        entrypoint_num_cpus=0,
        entrypoint_resources={"MLU": 8, node_resource("pc-1"): 8},
    )
    try:
        deadline = time.time() + 300  # (a hang guard: busy machines start drivers slowly)
        while ex.client.get_job_status(blocker) is not JobStatus.RUNNING:
            assert time.time() < deadline
            time.sleep(0.2)
        submit(
            db,
            {
                "id": "held",
                "member": "pc",
                "accelerators": "MLU370:2",
                "entrypoint": "echo started; sleep 60",
            },
        )
        rows = run_until(ctl, db, lambda r: r["held"].phase == "ADMITTED")
        time.sleep(1.0)
        ctl.step()
        assert ex.client.get_job_status("suanli-held-1") is JobStatus.PENDING
        with db.session() as s:
            jobs.cancel(s, admin(), "held", time.time())
        rows = run_until(ctl, db, lambda r: r["held"].phase == "CANCELLED", timeout=10)
        assert rows["held"].finished_at is not None
    finally:
        ex.client.stop_job(blocker)
    # the devices free up; Ray starts the held job after all, and it is stopped straight away
    deadline = time.time() + 60
    while ex.client.get_job_status("suanli-held-1") in (JobStatus.PENDING, JobStatus.RUNNING):
        assert time.time() < deadline, "the job Ray started late was not stopped"
        ctl.step()
        time.sleep(0.2)
    assert ex.client.get_job_status("suanli-held-1") is JobStatus.STOPPED


COUNTER = (
    'C="$SUANLI_CHECKPOINT_DIR/step"; i=$(cat "$C" 2>/dev/null || echo 0); '
    'echo "attempt $SUANLI_ATTEMPT on $SUANLI_NODE from step $i"; '
    'while [ "$i" -lt 100000 ]; do i=$((i+1)); echo $i > "$C.tmp"; mv "$C.tmp" "$C"; '
    "sleep 0.05; done"
)


def test_a_dead_ray_node_sends_its_job_elsewhere_from_its_last_checkpoint(
    setup: tuple[Database, Controller], ray_cluster: LocalRayCluster
) -> None:
    """The Ray node under a job dies (SIGKILL to all its processes): the job is requeued, the
    node is marked down and nothing more is placed on it, the job resumes on the other node
    from its last checkpoint; the node comes back up when its Ray node rejoins."""
    from suanli.store.tables import AuditRow, NodeRow

    db, ctl = setup
    submit(
        db, {"id": "counter", "member": "as", "accelerators": "Ascend910B:4", "entrypoint": COUNTER}
    )
    rows = run_until(ctl, db, lambda r: r["counter"].phase == "RUNNING")
    node = rows["counter"].placement["assignments"][0][0]  # type: ignore[index]
    other = "as-2" if node == "as-1" else "as-1"
    run_until(ctl, db, lambda r: b"from step 0" in ctl.executor.logs(JobId("counter"), 1))
    time.sleep(1.0)  # a few checkpoints
    killed = ray_cluster.kill_node(RAY_INDEX[node])
    try:
        # the whole node died, the processes Ray moved out of its session too
        assert len(killed) > 3
        deadline = time.time() + 5
        while set(killed) & set(ray_cluster.processes()):
            assert time.time() < deadline, "a process of the killed node lives on"
            time.sleep(0.1)
        rows = run_until(
            ctl,
            db,
            lambda r: r["counter"].attempt >= 2 and r["counter"].phase == "RUNNING",
            timeout=180,
        )
        assert rows["counter"].placement["assignments"][0][0] == other  # type: ignore[index]
        with db.session() as s:
            dead = s.get(NodeRow, node)
            assert dead is not None and dead.health == "down"
            assert "DEAD" in (dead.health_reason or "")
        # (if Ray reported the job lost before the node dead, attempt 2 went to the dead node,
        # waited there unstarted until the node was known down, and attempt 3 moved)
        attempt = rows["counter"].attempt
        log = lambda: ctl.executor.logs(JobId("counter"), attempt)  # noqa: E731
        run_until(ctl, db, lambda r: f"attempt {attempt}".encode() in log())
        resumed = next(x for x in log().decode().splitlines() if x.startswith("attempt"))
        assert f"on {other} from step" in resumed and not resumed.endswith("from step 0")
    finally:
        ray_cluster.restart_node(RAY_INDEX[node])
    run_until(ctl, db, lambda r: True)
    with db.session() as s:
        back = s.get(NodeRow, node)
        assert back is not None and back.health == "up"
        actions = [
            a.action for a in s.scalars(select(AuditRow).where(AuditRow.target == f"node/{node}"))
        ]
        assert actions[-2:] == ["node.down", "node.up"]
        jobs.cancel(s, admin(), "counter", time.time())
    run_until(ctl, db, lambda r: r["counter"].phase == "CANCELLED")


def test_two_sites_and_an_unreachable_site_given_up_after_its_timeout_then_fenced(
    tmp_path: Path,
) -> None:
    """Two members' sites are two Ray clusters (different ports and tokens); each run goes to
    the cluster of the site the scheduler chose. The network to one site fails while the site
    runs on: after the timeout its node is down and its job is placed at the other site; when
    the site answers again, the run it kept is stopped (fenced), so the job runs in one place
    only, and the node is up."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    from suanli.executors.sites import PerSiteExecutor
    from suanli.model.ids import SiteId
    from suanli.store.tables import AuditRow, NodeRow

    from ..proxy import Proxy

    a = LocalRayCluster(
        [RayNodeSpec({"GPU": 8, node_resource("hx-1"): 8}, labels("hx-1", "H800-80GB", "hx"))]
    )
    b = LocalRayCluster(
        [RayNodeSpec({"MLU": 8, node_resource("pc-1"): 8}, labels("pc-1", "MLU370-X8", "pc"))]
    )
    with a, b:
        assert a.token != b.token and a.address != b.address
        link = Proxy(a.dashboard_port)
        sites = {SiteId("hx-site"): RayExecutor(link.address, a.token, tmp_path / "ckpt-a")}
        sites[SiteId("pc-site")] = RayExecutor(b.address, b.token, tmp_path / "ckpt-b")
        ex = PerSiteExecutor(
            sites,
            {NodeId("hx-1"): SiteId("hx-site"), NodeId("pc-1"): SiteId("pc-site")},
            timeout_s=3.0,
        )
        db = Database.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
        with db.session() as s:
            create_alliance(s, loads_alliance(ALLIANCE), "t", time.time())
        ctl = Controller(db, ex, get_policy("alliance", grace_s=5))
        script = (
            'echo "attempt $SUANLI_ATTEMPT on $SUANLI_NODE"; '
            "trap 'echo \"attempt $SUANLI_ATTEMPT stopped\"; exit 0' TERM; "
            'if [ "$SUANLI_ATTEMPT" = 1 ]; then n=100000; else n=30; fi; i=0; '
            'while [ "$i" -lt "$n" ]; do sleep 0.1; i=$((i+1)); done; echo finished'
        )
        submit(
            db,
            {
                "id": "mover",
                "member": "hx",
                "entrypoint": script,
                "accelerators": {"any_of": ["H800-80GB", "MLU370-X8"], "count": 4},
            },
        )
        run_until(ctl, db, lambda r: b"attempt 1 on hx-1" in ex.logs(JobId("mover"), 1))
        link.cut()
        rows = run_until(ctl, db, lambda r: r["mover"].attempt == 2, timeout=60)
        assert rows["mover"].placement["assignments"][0][0] == "pc-1"  # type: ignore[index]
        with db.session() as s:
            node = s.get(NodeRow, "hx-1")
            assert node is not None and node.health == "down"
            assert "has not answered" in (node.health_reason or "")
        direct_a = JobSubmissionClient(a.address, headers={"Authorization": f"Bearer {a.token}"})
        assert direct_a.get_job_status("suanli-mover-1") is JobStatus.RUNNING  # still there
        run_until(ctl, db, lambda r: b"attempt 2 on pc-1" in ex.logs(JobId("mover"), 2))
        link.restore()
        rows = run_until(
            ctl,
            db,
            lambda r: (
                r["mover"].phase == "SUCCEEDED"
                and direct_a.get_job_status("suanli-mover-1") is JobStatus.STOPPED
            ),
            timeout=90,
        )
        assert rows["mover"].attempt == 2
        assert b"attempt 1 stopped" in direct_a.get_job_logs("suanli-mover-1").encode()
        assert b"finished" in ex.logs(JobId("mover"), 2)
        assert {j.submission_id for j in direct_a.list_jobs()} == {"suanli-mover-1"}
        assert {j.submission_id for j in sites[SiteId("pc-site")].client.list_jobs()} == {
            "suanli-mover-2"
        }
        with db.session() as s:
            node = s.get(NodeRow, "hx-1")
            assert node is not None and node.health == "up"
            audit = [(x.action, x.target) for x in s.scalars(select(AuditRow))]
        assert ("run.fenced", "job/mover") in audit
        assert ("node.down", "node/hx-1") in audit and ("node.up", "node/hx-1") in audit
        assert sum(1 for act, tgt in audit if tgt == "job/mover" and act == "job.succeeded") == 1
        link.close()
        db.close()
        # a job still running when the clusters stop: its driver, in a session of its own
        direct_b = sites[SiteId("pc-site")].client
        direct_b.submit_job(entrypoint="sleep 300", submission_id="left-running")
        deadline = time.time() + 60
        while direct_b.get_job_status("left-running") is not JobStatus.RUNNING:
            assert time.time() < deadline, "the job did not start"
            time.sleep(0.2)
        assert len(b.processes()) > 5
    # nothing of either cluster outlives it
    assert a.processes() == [] and b.processes() == []


def need_torch() -> None:
    """The PyTorch examples need torch (CI installs the CPU build, and asks for it)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        if os.environ.get("SUANLI_REQUIRE_TORCH") == "1":
            pytest.fail("torch is required here (SUANLI_REQUIRE_TORCH=1)")
        pytest.skip(
            "torch is not installed: python3 -m pip --python .venv/bin/python install torch==2.13.0"
        )


def test_the_torch_example_checkpoints_on_preemption_and_resumes_where_it_stopped(
    setup: tuple[Database, Controller],
) -> None:
    need_torch()
    db, ctl = setup
    train = {
        "id": "train",
        "member": "zy",
        "accelerators": "H800:8",
        "entrypoint": "python train_torch.py --steps 20000 --checkpoint-every 30",
        "runtime_env": {"working_dir": EXAMPLES},
    }
    submit(db, train)
    run_until(ctl, db, lambda r: b"step 500 " in ctl.executor.logs(JobId("train"), 1))
    submit(db, {"id": "owner2", "member": "hx", "accelerators": "H800:8", "entrypoint": "true"})
    rows = run_until(ctl, db, lambda r: Phase(r["train"].phase).terminal, timeout=300)
    first = ctl.executor.logs(JobId("train"), 1).decode()
    second = ctl.executor.logs(JobId("train"), 2).decode()
    assert rows["train"].phase == "SUCCEEDED" and rows["owner2"].phase == "SUCCEEDED", second
    saved = int(first.split("SIGTERM: checkpointed step ")[1].split()[0])
    assert f"resumed from step {saved} " in second
    assert "done: step 20000" in second


def test_the_gang_example_all_reduces_across_two_nodes(
    setup: tuple[Database, Controller],
) -> None:
    need_torch()
    db, ctl = setup
    submit(
        db,
        {
            "id": "allreduce",
            "member": "as",
            "accelerators": "Ascend910B:8",
            "gang": "2x4",
            "entrypoint": "python gang_allreduce.py",
            "runtime_env": {"working_dir": EXAMPLES},
        },
    )
    rows = run_until(ctl, db, lambda r: Phase(r["allreduce"].phase).terminal, timeout=180)
    logs = ctl.executor.logs(JobId("allreduce"), 1).decode()
    assert rows["allreduce"].phase == "SUCCEEDED", logs
    assert "rank 0/2 on as-1: sum of ranks+1 = 3" in logs
    assert "rank 1/2 on as-2: sum of ranks+1 = 3" in logs


def test_the_dataset_example_runs_only_where_its_dataset_resides(
    setup: tuple[Database, Controller], tmp_path: Path
) -> None:
    db, ctl = setup
    shards = tmp_path / "data" / "pc" / "pc-corpus"  # DATA_ROOT/OWNER/DATASET
    shards.mkdir(parents=True)
    (shards / "0.txt").write_text("a\nb\n")
    (shards / "1.txt").write_text("c\n")
    submit(
        db,
        {
            "id": "reader",
            "member": "pc",
            # the H800 would do as well, but the data may only be processed at pc-site
            "accelerators": {"any_of": ["H800-80GB", "MLU370-X8"], "count": 1},
            "datasets": ["pc-corpus"],
            "entrypoint": "python read_dataset.py",
            "runtime_env": {"working_dir": EXAMPLES},
        },
    )
    rows = run_until(ctl, db, lambda r: Phase(r["reader"].phase).terminal)
    logs = ctl.executor.logs(JobId("reader"), 1).decode()
    assert rows["reader"].phase == "SUCCEEDED", logs
    assert "dataset pc-corpus at pc-1: 2 shards, 3 lines" in logs


@pytest.mark.parametrize("when", ["head starting", "worker joining"])
def test_a_called_off_start_stops_what_it_started_and_says_so(when: str) -> None:
    """A server told to stop while its Ray cluster starts: the start gives up at its next poll,
    raises ``Cancelled``, and no process of the cluster is left."""
    from suanli.executors.ray_cluster import Cancelled

    cluster = LocalRayCluster([RayNodeSpec({"GPU": 1}), RayNodeSpec({"GPU": 1})])
    # (the head's process exists; or the worker's, which only happens once the head is up)
    started = 0 if when == "head starting" else 1
    with pytest.raises(Cancelled):
        cluster.start(cancelled=lambda: started in cluster.procs)
    assert cluster.procs == {}
    assert cluster.processes() == [], "the called-off start left processes behind"
    assert not cluster.temp_dir.exists(), "nor its directory"


def test_a_stopped_cluster_leaves_no_directory_but_a_failed_start_keeps_its_logs() -> None:
    with LocalRayCluster([RayNodeSpec({"GPU": 1})]) as cluster:
        assert (cluster.temp_dir / "node-0.log").exists()
    assert not cluster.temp_dir.exists()
    failing = LocalRayCluster([RayNodeSpec({"GPU": 1})])
    with pytest.raises(RuntimeError, match="did not come up"):
        failing.start(timeout_s=0.0)
    try:
        assert (failing.temp_dir / "node-0.log").exists()
    finally:
        shutil.rmtree(failing.temp_dir, ignore_errors=True)
