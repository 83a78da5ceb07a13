"""The Slurm executor against a real two-node Slurm cluster on this machine: runs pinned to
their node with their generic resources, their devices and their log; gangs over both nodes;
idempotent starts;
SIGTERM then a kill after the grace period; jobs the member runs itself seen as busy
capacity and never touched; a node set down; slurmctld restarted under running jobs."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from suanli.catalog.accelerator import load_catalog
from suanli.executors.base import RunPhase, RunRequest, RunState
from suanli.executors.ray_cluster import LocalRayCluster
from suanli.executors.slurm import SlurmExecutor, default_gres, job_name
from suanli.model.ids import JobId, ModelId, NodeId
from suanli.model.site import SlurmSite

from ..slurm import LocalSlurm

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "suanli" / "examples"

pytestmark = pytest.mark.slow  # real servers, clusters or browsers: pytest -m "not slow" skips them

NPU = ModelId("Ascend910B")
MLU = ModelId("MLU370-X8")
NODE = NodeId("as-1")
NODE2 = NodeId("as-2")


@pytest.fixture
def ex(slurm: LocalSlurm, tmp_path: Path) -> Iterator[SlurmExecutor]:
    site = SlurmSite(partition="pool", names={NODE: slurm.nodes[0], NODE2: slurm.nodes[1]})
    models = {NODE: NPU, NODE2: NPU}
    executor = SlurmExecutor(
        site, load_catalog(), models, tmp_path / "runs", tmp_path / "ckpt", env=slurm.env
    )
    yield executor
    # whatever a test left in the cluster goes, so that the next one finds it empty
    slurm.run("scancel", "--full", "--signal=KILL", f"--partition={site.partition}", check=False)
    slurm.run("scancel", f"--partition={site.partition}", check=False)
    wait(lambda: not slurm.run("squeue", "--noheader", "--states=PENDING,RUNNING,COMPLETING"))


def wait(ok: Callable[[], object], timeout: float = 120) -> None:
    """Until ``ok()`` (the deadline guards a hang, not a speed)."""
    deadline = time.time() + timeout
    while not ok():
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


def run(job: str, entrypoint: str, devices: tuple[int, ...] = (0, 1, 2, 3)) -> RunRequest:
    return RunRequest(JobId(job), 1, entrypoint, NPU, "npu", ((NODE, devices),))


def state(ex: SlurmExecutor, job: str) -> RunState | None:
    return ex.observe().get((JobId(job), 1))


def phase_is(ex: SlurmExecutor, job: str, *phases: RunPhase) -> Callable[[], bool]:
    def ok() -> bool:
        st = state(ex, job)
        return st is not None and st.phase in phases

    return ok


def test_default_generic_resource_names() -> None:
    cat = load_catalog()
    assert default_gres(cat.get(NPU)) == "npu:ascend910b"
    assert default_gres(cat.get(MLU)) == "mlu:mlu370"
    assert default_gres(cat.get(ModelId("H800-80GB"))) == "gpu:h800"
    assert default_gres(cat.get(ModelId("DCU-K100-AI"))) == "dcu:dcuk100"


def test_a_run_lands_on_its_node_with_its_devices_and_its_log(
    ex: SlurmExecutor, slurm: LocalSlurm
) -> None:
    ex.start(
        run(
            "j1",
            'echo "npu=$ASCEND_RT_VISIBLE_DEVICES node=$SUANLI_NODE on $SLURMD_NODENAME"; '
            'test -d "$SUANLI_CHECKPOINT_DIR" && echo ckpt ok; exit 3',
        )
    )
    ex.start(run("j1", "echo a second start must not run"))  # idempotent
    wait(phase_is(ex, "j1", RunPhase.EXITED))
    st = state(ex, "j1")
    assert st is not None and st.exit_code == 3
    log = ex.logs(JobId("j1"), 1).decode()
    assert "npu=0,1,2,3 node=as-1 on sl-1" in log and "ckpt ok" in log, log
    assert ex.log_size(JobId("j1"), 1) == len(log.encode())
    assert "second start" not in log
    names = slurm.run("squeue", "--noheader", "--states=all", "--format=%j").split()
    assert names.count(job_name(JobId("j1"), 1)) == 1
    ex.forget(JobId("j1"), 1)
    assert (JobId("j1"), 1) not in ex.observe()
    assert "ckpt ok" in ex.logs(JobId("j1"), 1).decode()  # (logs stay)


def test_stop_sends_sigterm_and_the_job_checkpoints(ex: SlurmExecutor) -> None:
    ex.start(
        run(
            "j2",
            "trap 'echo 7 > \"$SUANLI_CHECKPOINT_DIR/step\"; echo saved; exit 0' TERM; "
            "echo up; while true; do sleep 0.1; done",
        )
    )
    wait(lambda: b"up" in ex.logs(JobId("j2"), 1))
    ex.stop(JobId("j2"), 1, 30.0)
    wait(phase_is(ex, "j2", RunPhase.EXITED))
    st = state(ex, "j2")
    log = ex.logs(JobId("j2"), 1).decode()
    assert st is not None and st.exit_code == 0, (st, log)
    assert (ex.checkpoint_root / "j2" / "step").read_text().strip() == "7"
    assert b"saved" in ex.logs(JobId("j2"), 1)


def gang(job: str, entrypoint: str) -> RunRequest:
    """A run over both nodes, four NPUs on each."""
    return RunRequest(
        JobId(job), 1, entrypoint, NPU, "npu", ((NODE, (0, 1, 2, 3)), (NODE2, (4, 5, 6, 7)))
    )


def test_a_gang_runs_once_on_each_of_its_nodes_with_its_rank_and_devices(
    ex: SlurmExecutor, slurm: LocalSlurm
) -> None:
    ex.start(
        gang(
            "g1",
            'echo "rank=$RANK/$WORLD_SIZE master=$MASTER_ADDR:$MASTER_PORT node=$SUANLI_NODE '
            'npu=$ASCEND_RT_VISIBLE_DEVICES on $SLURMD_NODENAME"',
        )
    )
    wait(phase_is(ex, "g1", RunPhase.EXITED))
    st = state(ex, "g1")
    log = ex.logs(JobId("g1"), 1).decode()
    assert st is not None and st.exit_code == 0, log
    lines = sorted(line for line in log.splitlines() if line.startswith("rank="))
    assert lines == [
        "rank=0/2 master=sl-1:29500 node=as-1 npu=0,1,2,3 on sl-1",
        "rank=1/2 master=sl-1:29500 node=as-2 npu=4,5,6,7 on sl-2",
    ], log


def test_a_gang_stopped_checkpoints_on_every_node_and_a_failed_rank_ends_it(
    ex: SlurmExecutor,
) -> None:
    ex.start(
        gang(
            "g2",
            "trap 'echo $RANK > \"$SUANLI_CHECKPOINT_DIR/rank-$RANK\"; exit 0' TERM; "
            "echo up $RANK; while true; do sleep 0.1; done",
        )
    )
    wait(lambda: {b"up 0", b"up 1"} <= set(ex.logs(JobId("g2"), 1).splitlines()))
    ex.stop(JobId("g2"), 1, 30.0)
    wait(phase_is(ex, "g2", RunPhase.EXITED))
    st = state(ex, "g2")
    assert st is not None and st.exit_code == 0, ex.logs(JobId("g2"), 1)
    assert sorted(p.name for p in (ex.checkpoint_root / "g2").iterdir()) == ["rank-0", "rank-1"]
    # one rank failing ends the whole gang (no rank left waiting for the others)
    ex.start(gang("g3", 'if [ "$RANK" = 1 ]; then exit 9; fi; sleep 600'))
    wait(phase_is(ex, "g3", RunPhase.EXITED))
    st = state(ex, "g3")
    assert st is not None and st.exit_code != 0


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace_period(ex: SlurmExecutor) -> None:
    ex.start(run("j3", "trap 'echo ignored' TERM; echo up; while true; do sleep 0.1; done"))
    wait(lambda: b"up" in ex.logs(JobId("j3"), 1))
    t0 = time.time()
    ex.stop(JobId("j3"), 1, 2.0)
    wait(lambda: b"ignored" in ex.logs(JobId("j3"), 1))
    assert state(ex, "j3").phase is RunPhase.RUNNING  # type: ignore[union-attr]
    wait(phase_is(ex, "j3", RunPhase.EXITED, RunPhase.LOST))
    assert time.time() - t0 >= 2.0


def test_a_waiting_job_is_cancelled_at_once(ex: SlurmExecutor, slurm: LocalSlurm) -> None:
    outside = slurm.run(
        "sbatch", "--parsable", "-w", slurm.node, "--gres=npu:ascend910b:8", "--wrap", "sleep 600"
    ).strip()
    wait(lambda: "RUNNING" in slurm.run("squeue", "--noheader", "--job", outside, "--format=%T"))
    ex.start(run("j4", "echo never"))
    wait(phase_is(ex, "j4", RunPhase.PENDING))
    ex.stop(JobId("j4"), 1, 30.0)
    wait(phase_is(ex, "j4", RunPhase.EXITED))
    assert b"never" not in ex.logs(JobId("j4"), 1)


def test_the_members_own_jobs_are_busy_capacity_and_never_touched(
    ex: SlurmExecutor, slurm: LocalSlurm
) -> None:
    outside = slurm.run(
        "sbatch", "--parsable", "-w", slurm.node, "--gres=npu:ascend910b:6", "--wrap", "sleep 600"
    ).strip()
    wait(lambda: ex.busy_outside() == {NODE: 6})
    ex.start(run("j5", "echo up; sleep 600", (0, 1)))
    wait(lambda: b"up" in ex.logs(JobId("j5"), 1))
    assert ex.busy_outside() == {NODE: 6}  # the pool's own run is not counted
    ex.stop(JobId("j5"), 1, 5.0)
    wait(phase_is(ex, "j5", RunPhase.EXITED, RunPhase.LOST))
    # the member's job runs on, untouched by the pool
    assert "RUNNING" in slurm.run("squeue", "--noheader", "--job", outside, "--format=%T")


def test_a_node_set_down_is_closed_and_its_run_lost(ex: SlurmExecutor, slurm: LocalSlurm) -> None:
    assert ex.node_health() == {NODE: None, NODE2: None}
    ex.start(run("j6", "echo up; sleep 600"))
    wait(lambda: b"up" in ex.logs(JobId("j6"), 1))
    down = ("scontrol", "update", f"nodename={slurm.node}", "state=down", "reason=disk")
    slurm.run(*down)

    def seen_down() -> bool:
        # (ReturnToService=2: a slurmd that registers again brings the node back, and on a
        # busy machine it may do so before the executor looks: then it is set down again)
        health = ex.node_health()[NODE]
        if health is None:
            slurm.run(*down)
            return False
        return "DOWN" in health and "disk" in health

    try:
        wait(seen_down)
        # Slurm ends the job (no requeue by Slurm): the pool finds it lost, to requeue it
        wait(phase_is(ex, "j6", RunPhase.LOST))
    finally:
        # (Slurm may have returned it to service already: then there is nothing to resume)
        slurm.run("scontrol", "update", f"nodename={slurm.node}", "state=resume", check=False)
        wait(slurm.up)
    assert ex.node_health() == {NODE: None, NODE2: None}


def test_slurmctld_restarted_under_a_running_job_loses_nothing(
    ex: SlurmExecutor, slurm: LocalSlurm, tmp_path: Path
) -> None:
    ex.start(run("j7", "echo up; sleep 8; echo done"))
    wait(lambda: b"up" in ex.logs(JobId("j7"), 1))
    slurm.restart_controller()
    # a restarted service (a new executor on the same files) knows the run and its end
    again = SlurmExecutor(
        ex.site, ex.catalog, ex.models, ex.run_root, ex.checkpoint_root, slurm.env
    )
    wait(phase_is(again, "j7", RunPhase.EXITED))
    st = state(again, "j7")
    assert st is not None and st.exit_code == 0
    assert ex.logs(JobId("j7"), 1).decode().count("done") == 1
    again.start(run("j7", "echo must not run again"))
    assert b"must not" not in again.logs(JobId("j7"), 1)


ENGINES = """
alliance: engines
members:
  - {id: hx, kind: enterprise}
  - {id: sl, kind: university}
  - {id: lo, kind: institute}
sites:
  - {id: hx-site, member: hx, region: r1}
  - {id: sl-site, member: sl, region: r2, slurm: {partition: pool, names: {sl-mlu: SLURM_NODE}}}
  - {id: lo-site, member: lo}
nodes:
  - {id: hx-1, site: hx-site, model: H800-80GB, devices: 8, cpu: 8, memory_gb: 64}
  - {id: sl-mlu, site: sl-site, model: MLU370-X8, devices: 4, cpu: 8, memory_gb: 64}
  - {id: lo-1, site: lo-site, model: Ascend910B, devices: 4, cpu: 8, memory_gb: 64}
"""


def test_one_alliance_across_ray_slurm_and_local_processes_and_a_drain_between_engines(
    slurm: LocalSlurm, ray_cluster: LocalRayCluster, tmp_path: Path
) -> None:
    """A job borrowing the Slurm site's MLUs (the H800s of the Ray site are busy) is moved by
    a drain of Cambricon's chips to the H800s once they are free: SIGTERM through Slurm, its
    checkpoint, and its next attempt on Ray resumes from it. A third site runs its job as
    local processes, all under one controller."""
    from sqlalchemy import select

    from suanli.executors.local import LocalProcessExecutor
    from suanli.executors.ray import RayExecutor
    from suanli.executors.sites import PerSiteExecutor
    from suanli.model.ids import SiteId
    from suanli.sched.policy import get_policy
    from suanli.service import jobs
    from suanli.service.controller import Controller
    from suanli.service.pool import create_alliance, drain_many
    from suanli.spec.alliance_file import loads_alliance
    from suanli.store.database import Database
    from suanli.store.tables import JobRow

    from ..builders import admin
    from ..stepping import run_until

    alliance = loads_alliance(ENGINES.replace("SLURM_NODE", slurm.node))
    db = Database.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with db.session() as s:
        create_alliance(s, alliance, "t", time.time())
    ckpt = tmp_path / "ckpt"
    sl_site = alliance.sites[SiteId("sl-site")].slurm
    assert sl_site is not None
    executors = {
        SiteId("hx-site"): RayExecutor(ray_cluster.address, ray_cluster.token, ckpt),
        SiteId("sl-site"): SlurmExecutor(
            sl_site, alliance.catalog, {NodeId("sl-mlu"): MLU}, tmp_path / "runs", ckpt, slurm.env
        ),
        SiteId("lo-site"): LocalProcessExecutor(tmp_path / "local"),
    }
    site_of = {n.id: n.site for n in alliance.nodes.values()}
    ex = PerSiteExecutor(executors, site_of)
    # (job ids of their own: the Ray cluster is shared with test_ray.py, which keeps its jobs)
    # (no upgrade of its own: the move is the drain's)
    ctl = Controller(db, ex, get_policy("alliance", grace_s=10, upgrade_factor=1e9))
    mover = (
        'C="$SUANLI_CHECKPOINT_DIR/step"; '
        'if [ -f "$C" ]; then echo "resumed at $(cat "$C") on cuda=$CUDA_VISIBLE_DEVICES"; '
        "exit 0; fi; "
        "trap 'echo 5 > \"$C\"; exit 0' TERM; echo started on mlu=$MLU_VISIBLE_DEVICES; "
        "while true; do sleep 0.1; done"
    )
    stuck = "trap 'exit 0' TERM; echo holding; while true; do sleep 0.1; done"
    try:
        with db.session() as s:
            jobs.submit(
                s,
                admin(),
                {"id": "hog", "member": "hx", "accelerators": "H800:8", "entrypoint": stuck},
                time.time(),
            )
        run_until(
            ctl,
            db,
            lambda r: b"holding" in ex.logs(JobId("hog"), 1) or r["hog"].phase == "FAILED",
            300,
        )
        assert b"holding" in ex.logs(JobId("hog"), 1), ex.logs(JobId("hog"), 1)
        with db.session() as s:
            jobs.submit(
                s,
                admin(),
                {
                    "jobs": [
                        {
                            "id": "traveller",
                            "member": "hx",
                            "entrypoint": mover,
                            "accelerators": {"any_of": ["H800-80GB", "MLU370-X8"], "count": 4},
                        },
                        {
                            "id": "here",
                            "member": "lo",
                            "accelerators": "Ascend910B:2",
                            "entrypoint": "echo npu=$ASCEND_RT_VISIBLE_DEVICES",
                        },
                    ]
                },
                time.time(),
            )
        started = b"started on mlu=0,1,2,3"
        run_until(ctl, db, lambda r: started in ex.logs(JobId("traveller"), 1), 300)
        with db.session() as s:
            assert jobs.get(s, admin(), "traveller").placement["model"] == "MLU370-X8"  # type: ignore[index]
            jobs.cancel(s, admin(), "hog", time.time())
        run_until(ctl, db, lambda r: r["hog"].phase == "CANCELLED", 300)
        with db.session() as s:
            report = drain_many(s, admin(), "Cambricon", None, 10.0, time.time())
        assert report.nodes == ["sl-mlu"]
        assert [(m.job, m.to) for m in report.moving] == [("traveller", ["H800-80GB"])]
        rows = run_until(
            ctl,
            db,
            lambda r: r["traveller"].phase == "SUCCEEDED" and r["here"].phase == "SUCCEEDED",
            300,
        )
        assert rows["traveller"].attempt == 2
        assert b"resumed at 5 on cuda=" in ex.logs(JobId("traveller"), 2)
        assert b"npu=0,1" in ex.logs(JobId("here"), 1)
        with db.session() as s:
            assert s.scalars(select(JobRow.phase)).all().count("SUCCEEDED") == 2
    finally:
        db.close()
        for key in ex.observe():
            ex.stop(*key, 0.0)


def test_the_scheduler_leaves_the_devices_of_the_members_own_jobs_alone(
    slurm: LocalSlurm, tmp_path: Path
) -> None:
    """A member's own Slurm job holds 6 of the node's 8 NPUs: the pool admits a job of 2,
    and one of 4 waits (for the scheduler, not in Slurm's queue) until the member's job ends."""
    from suanli.executors.sites import PerSiteExecutor
    from suanli.model.ids import SiteId
    from suanli.sched.policy import get_policy
    from suanli.service import jobs
    from suanli.service.controller import Controller
    from suanli.service.pool import create_alliance
    from suanli.spec.alliance_file import loads_alliance
    from suanli.store.database import Database

    from ..builders import admin
    from ..stepping import run_until

    doc = f"""
alliance: own
members: [{{id: sl, kind: university}}]
sites: [{{id: sl-site, member: sl, slurm: {{partition: pool, names: {{npu-1: {slurm.node}}}}}}}]
nodes: [{{id: npu-1, site: sl-site, model: Ascend910B, devices: 8, cpu: 8, memory_gb: 64}}]
"""
    alliance = loads_alliance(doc)
    site = alliance.sites[SiteId("sl-site")].slurm
    assert site is not None
    db = Database.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with db.session() as s:
        create_alliance(s, alliance, "t", time.time())
    sl = SlurmExecutor(
        site, alliance.catalog, {NodeId("npu-1"): NPU}, tmp_path / "runs", tmp_path / "c", slurm.env
    )
    ex = PerSiteExecutor({SiteId("sl-site"): sl}, {NodeId("npu-1"): SiteId("sl-site")})
    ctl = Controller(db, ex, get_policy("alliance", grace_s=10))
    own = slurm.run(
        "sbatch", "--parsable", "-w", slurm.node, "--gres=npu:ascend910b:6", "--wrap", "sleep 600"
    )
    try:
        wait(lambda: ex.busy_outside() == {NodeId("npu-1"): 6})
        with db.session() as s:
            for jid, n in (("two", 2), ("four", 4)):
                spec = {"id": jid, "member": "sl", "accelerators": f"Ascend910B:{n}"}
                jobs.submit(s, admin(), {**spec, "entrypoint": "echo ran"}, time.time())
        rows = run_until(ctl, db, lambda r: r["two"].phase == "SUCCEEDED", 300)
        assert rows["four"].phase == "PENDING" and "no free" in rows["four"].reason
        assert sl.observe().get((JobId("four"), 1)) is None  # nothing sent to Slurm
        slurm.run("scancel", own.strip())
        rows = run_until(ctl, db, lambda r: r["four"].phase == "SUCCEEDED", 300)
    finally:
        slurm.run("scancel", own.strip(), check=False)
        db.close()


def test_a_start_after_a_crash_before_the_id_was_written_adopts_the_submitted_job(
    ex: SlurmExecutor, slurm: LocalSlurm
) -> None:
    """The service died between ``sbatch`` and writing the job's id: the next start finds the
    job by its name and its comment (this run's directory) and submits nothing."""
    ex.start(run("j8", "echo once; sleep 600"))
    (ex.run_root / "j8-1" / "jobid").unlink()
    ex.start(run("j8", "echo twice"))
    wait(lambda: b"once" in ex.logs(JobId("j8"), 1))
    names = slurm.run("squeue", "--noheader", "--states=all", "--format=%j").split()
    assert names.count(job_name(JobId("j8"), 1)) == 1
    assert state(ex, "j8").phase is RunPhase.RUNNING  # type: ignore[union-attr]


def test_the_server_killed_while_its_slurm_jobs_run_ends_every_job_exactly_once(
    slurm: LocalSlurm, tmp_path: Path
) -> None:
    """The example Slurm alliance served by a real ``suanli server``, killed with SIGKILL at
    random points while its jobs (single nodes and gangs over both Slurm nodes) are admitted,
    submitted to Slurm and run, and started again each time: every job succeeds once; Slurm
    ran one batch job per job, and each node of a gang ran its command once."""
    import random
    import signal

    from suanli.sdk.client import Client

    from ..live import free_port, spawn_server, stop, wait_up

    rng = random.Random(18)
    state = tmp_path / "state"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "SLURM_CONF": slurm.env["SLURM_CONF"]}
    alliance = str(EXAMPLES / "slurm-alliance.yaml")
    log = tmp_path / "server.log"

    def start() -> subprocess.Popen[bytes]:
        server = spawn_server(state, port, 0.2, None, "--alliance", alliance, log=log, env=env)
        wait_up(url, server)
        return server

    jobs = [
        {
            "id": f"s{i:02d}",
            "member": "qinghe-univ",
            "accelerators": "Ascend910B:16" if i % 4 == 0 else "Ascend910B:4",
            **({"gang": "2x8"} if i % 4 == 0 else {}),
            "entrypoint": 'echo "ran ${RANK:-alone}" >> "$SUANLI_CHECKPOINT_DIR/ran"; '
            f"sleep {rng.uniform(0.5, 3):.1f}",
        }
        for i in range(12)
    ]
    server = start()
    try:
        token = (state / "admin-token").read_text().strip()
        with Client(url, token) as c:
            c.submit({"jobs": jobs})
        kills = 0
        deadline = time.time() + 600
        phases: dict[str, str] = {}
        while time.time() < deadline:
            time.sleep(rng.uniform(0.5, 2.0))
            if kills < 4:
                server.send_signal(signal.SIGKILL)
                server.wait()
                kills += 1
                server = start()
            try:
                with Client(url, token, timeout=10) as c:
                    phases = {j["id"]: j["phase"] for j in c.iter_jobs()}
            except ConnectionError:
                continue
            if kills >= 4 and all(
                p in ("SUCCEEDED", "FAILED", "CANCELLED") for p in phases.values()
            ):
                break
        assert set(phases.values()) == {"SUCCEEDED"}, (phases, log.read_text()[-3000:])
        with Client(url, token) as c:
            final = list(c.iter_jobs())
            audit = c.audit(after=0, limit=1000)
        ends = sorted(a["target"] for a in audit if a["action"] == "job.succeeded")
        assert ends == sorted(f"job/{j['id']}" for j in jobs)  # one terminal record each
        # Slurm ran one batch job per job: its last attempt's. (An attempt may be requeued
        # before it ran, when Slurm says its node does not respond on a loaded machine: its
        # batch job, if submitted, was cancelled while it waited.)
        names = slurm.run("squeue", "--noheader", "--states=all", "--format=%j %T").splitlines()
        ran_in_slurm = [n.split()[0] for n in names if n.split()[1] != "CANCELLED"]
        last = {j["id"]: j["attempt"] for j in final}
        for j in jobs:
            mine = [n for n in ran_in_slurm if n.startswith(f"suanli-{j['id']}-")]
            assert mine == [job_name(JobId(j["id"]), last[j["id"]])], (names, audit)
            ran = (state / "checkpoints" / j["id"] / "ran").read_text().split("\n")
            want = ["ran 0", "ran 1"] if "gang" in j else ["ran alone"]
            assert sorted(x for x in ran if x) == want, (j["id"], ran)
    finally:
        stop(server)
        slurm.run("scancel", "--partition=pool", check=False)
