"""The composition root: the one place that wires the database, the executor, the controller
loop (in a thread) and the REST API into the service process.

On the embedded defaults everything lives in one state directory: ``suanli.db`` (SQLite, WAL),
``runs/`` and ``checkpoints/`` of the local-process executor, and ``admin-token`` (mode 0600,
written once when the first admin is created: only its hash is in the database).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

import uvicorn
from sqlalchemy import func, select

from suanli.api.app import create_app
from suanli.errors import StateDirError
from suanli.executors.base import Executor
from suanli.executors.local import LocalProcessExecutor
from suanli.executors.output import DEFAULT_CAP_BYTES
from suanli.executors.ray_cluster import Cancelled, LocalRayCluster
from suanli.executors.sandbox import SandboxConfig, SandboxMode
from suanli.executors.sandbox import check as check_sandbox
from suanli.hub.stores import Stores
from suanli.model.alliance import Alliance
from suanli.model.ids import SiteId
from suanli.sched.policy import get_policy
from suanli.service.auth import create_user
from suanli.service.context import Health, Service
from suanli.service.controller import Controller
from suanli.service.federation import CONTROL_NODE
from suanli.service.leader import TTL_S, Lease
from suanli.service.metrics import Metrics
from suanli.service.pool import create_alliance
from suanli.service.statedir import (
    FileWatch,
    lock,
    private_files,
    refuse_a_new_database_over_old_runs,
    secure,
)
from suanli.service.vault import Vault
from suanli.store.alliance_rows import has_alliance, read_alliance
from suanli.store.database import Database
from suanli.store.snapshot import ACTIVE
from suanli.store.tables import JobRow, UserRow

#: the site of the control plane's own machine, where federated runs' SuperLinks run
CONTROL_SITE = SiteId("suanli:control-plane")

log = logging.getLogger("suanli.server")


@dataclass
class ServerConfig:
    state_dir: Path
    db_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8470
    policy: str = "alliance"
    interval_s: float = 1.0
    #: ``local`` (child processes) or ``ray`` (each site's Ray cluster; sites that name none
    #: share an embedded Ray cluster on this machine with one Ray node per suanli node)
    executor: str = "local"
    #: how long a site may stay silent before its nodes are down and its jobs move (Ray)
    site_timeout_s: float = 60.0
    #: the simulator's HTML reports the dashboard lists (default: STATE_DIR/reports)
    reports_dir: Path | None = None
    #: how jobs are isolated: ``bwrap`` (a sandbox per run, as the member's OS user when the
    #: server is root) or ``none`` (only where every member trusts every other)
    sandbox: str = "bwrap"
    #: a sandboxed run's network: ``private`` (its own loopback) or ``host``
    job_network: str = "private"
    #: where datasets lie on this machine (DATA_ROOT/OWNER/PATH; default STATE_DIR/data)
    data_root: Path | None = None
    #: how long the controller's lease lasts unrenewed: a dead leader's successor takes over
    #: within this
    lease_s: float = TTL_S
    #: the most bytes of a local run's output its log keeps (then its last 64 KiB)
    log_cap_bytes: int = DEFAULT_CAP_BYTES
    #: where federated runs' SuperLinks listen (their participants' SuperNodes dial it)
    federation_host: str = "127.0.0.1"
    #: the server's URL as runs reach it (their HF_ENDPOINT; default http://HOST:PORT)
    public_url: str | None = None
    #: where the hub keeps its files (default STATE_DIR/hub)
    hub_dir: Path | None = None
    #: the largest file the hub accepts
    hub_max_file: int = 8 << 30
    #: where the hub keeps the files of datasets resident at a site, by site (a mount of
    #: that site's storage; default HUB_DIR/sites/SITE)
    hub_site_dirs: dict[str, Path] = field(default_factory=dict)

    def sandbox_config(self) -> SandboxConfig:
        return SandboxConfig(SandboxMode(self.sandbox), self.job_network)


class ControllerLoop:
    """Runs :meth:`Controller.step` every ``interval_s`` until stopped; a failing step is
    logged and retried at the next tick (the database holds every intention), and the failure
    shows in ``health``. A database file deleted or replaced under the server (``watch``)
    stops the controller for good: nothing it could decide would be kept."""

    def __init__(
        self,
        controller: Controller,
        interval_s: float,
        health: Health | None = None,
        watch: FileWatch | None = None,
    ) -> None:
        self.controller = controller
        self.interval_s = interval_s
        self.health = health or Health()
        self.watch = watch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="controller", daemon=True)
        self.steps = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            problem = self.watch.problem() if self.watch is not None else None
            if problem is not None:
                self.health.fatal = f"{problem}: the controller stopped; restore it and restart"
                log.critical("%s", self.health.fatal)
                return
            try:
                report = self.controller.step()
                self.steps += 1
                self.health.degraded = None
                role = "standby" if report.standby else "controller"
                if role != self.health.role:
                    log.info("this server is now the pool's %s", role)
                    self.health.role = role
            except Exception as exc:
                self.health.degraded = f"the last controller step failed: {exc}"
                log.exception("controller step failed; retrying")
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - t0)))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def prepare(cfg: ServerConfig, alliance: Alliance) -> tuple[Database, str | None]:
    """Open (and migrate) the database; load ``alliance`` and create the first admin if the
    database is new. Returns the database and the new admin token (None if there was one)."""
    with private_files():
        secure(cfg.state_dir)
        if cfg.db_url is None and not (cfg.state_dir / "suanli.db").exists():
            refuse_a_new_database_over_old_runs(cfg.state_dir)  # (before making one)
        url = cfg.db_url or f"sqlite:///{cfg.state_dir / 'suanli.db'}"
        db = Database.open(url)
    token = None
    with db.session() as s:
        if not has_alliance(s):
            try:
                refuse_a_new_database_over_old_runs(cfg.state_dir)
            except StateDirError:
                db.close()
                raise
            create_alliance(s, alliance, "bootstrap", time.time())
        if s.query(UserRow).filter(UserRow.role == "alliance-admin").first() is None:
            token = create_user(s, None, "admin", "alliance-admin", None, time.time())
    if token is not None:
        path = cfg.state_dir / "admin-token"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
    return db, token


def ray_executor(
    cfg: ServerConfig,
    alliance: Alliance,
    grace_s: float,
    cancelled: Callable[[], bool] = lambda: False,
) -> tuple[Executor, LocalRayCluster | None]:
    """A per-site Ray executor: sites that name a Ray address use it (its token from
    ``SUANLI_RAY_TOKEN``); the others share an embedded local Ray cluster whose nodes declare
    the suanli nodes' chips as resources and labels (its start is called off, and
    :class:`Cancelled` raised, once ``cancelled`` answers true)."""
    from suanli.executors.ray import RAY_RESOURCE, RayExecutor, node_resource
    from suanli.executors.ray_cluster import LocalRayCluster, RayNodeSpec
    from suanli.executors.sites import PerSiteExecutor

    ckpt = cfg.state_dir / "checkpoints"
    executors: dict[SiteId, Executor] = {}
    embedded_sites = [s for s in alliance.sites.values() if not s.executor and not s.slurm]
    cluster = None
    if embedded_sites:
        specs = []
        for node in sorted(alliance.nodes.values(), key=lambda n: n.id):
            site = alliance.sites[node.site]
            if site.executor or site.slurm:
                continue
            accel = RAY_RESOURCE.get(alliance.catalog.get(node.model).stack, "GPU")
            specs.append(
                RayNodeSpec(
                    {accel: node.devices, node_resource(node.id): node.devices},
                    {
                        "suanli.io/node": node.id,
                        "suanli.io/model": node.model,
                        "suanli.io/site": site.id,
                        "suanli.io/member": site.member,
                    },
                    num_cpus=1,
                )
            )
        cluster = LocalRayCluster(specs, stop_grace_s=grace_s).start(cancelled=cancelled)
        embedded = RayExecutor(
            cluster.address, cluster.token, ckpt, cfg.sandbox_config(), data_root=cfg.data_root
        )
        for site in embedded_sites:
            executors[site.id] = embedded
    token = os.environ.get("SUANLI_RAY_TOKEN")
    # a member's own cluster: its jobs share its nodes' network (the cluster's machines)
    remote = replace(cfg.sandbox_config(), network="host")
    for site in alliance.sites.values():
        if site.executor:
            executors[site.id] = RayExecutor(
                site.executor, token, ckpt, remote, data_root=cfg.data_root
            )
    executors.update(slurm_executors(cfg, alliance))
    site_of = {n.id: n.site for n in alliance.nodes.values()}
    # federated runs' SuperLinks run beside the control plane, as local processes
    executors[CONTROL_SITE] = LocalProcessExecutor(
        cfg.state_dir, cfg.sandbox_config(), data_root=cfg.data_root, log_cap=cfg.log_cap_bytes
    )
    site_of[CONTROL_NODE] = CONTROL_SITE
    return PerSiteExecutor(executors, site_of, timeout_s=cfg.site_timeout_s), cluster


#: how long the REST API finishes the requests under way once told to stop (a long download
#: is cut; its client retries)
GRACEFUL_S = 10.0


class Stopping:
    """What SIGTERM and SIGINT do to the server, at any moment: starting, serving or stopping.

    The handler never raises into whatever the main thread is running: an exception thrown from
    a signal handler lands at an arbitrary line, inside a library holding a lock or inside one
    of the event loop's tasks, where asyncio takes it for that task's own failure and the
    server runs on (the signal lost). It records the signal and tells the web server, once one
    runs, to stop; each step of the start asks :meth:`__bool__` before it goes on, and the
    embedded Ray cluster's start asks it between its polls."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._web: uvicorn.Server | None = None

    def install(self) -> Stopping:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        self.signal = self.signal or signal.Signals(signum).name
        if self._web is not None:
            self._web.should_exit = True

    def __bool__(self) -> bool:
        return self.signal is not None

    def serve(self, web: uvicorn.Server) -> None:
        """Run ``web`` until a signal (one that came before it starts included)."""
        self._web = web
        if not self:
            web.run()


def serve(cfg: ServerConfig, alliance: Alliance) -> None:
    """Run the service until SIGTERM or SIGINT (at any moment: starting its Ray cluster say),
    then stop everything it started. Everything this process writes is private to it (umask
    0077): the database and its journal, the runs' files."""
    os.umask(0o077)
    stopping = Stopping().install()
    sqlite = cfg.db_url is None or cfg.db_url.startswith("sqlite")
    cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    held = lock(cfg.state_dir) if sqlite else None
    db: Database | None = None
    loop: ControllerLoop | None = None
    lease: Lease | None = None
    cluster: LocalRayCluster | None = None
    try:
        db, _ = prepare(cfg, alliance)
        policy = get_policy(cfg.policy)
        check_sandbox(cfg.sandbox_config())
        if stopping:
            return
        executor, cluster = _executor(cfg, db, policy.grace_s, stopping.__bool__)
        if stopping:
            return
        metrics, vault, health = Metrics(), Vault.open(cfg.state_dir), Health()
        lease = Lease(db, ttl_s=cfg.lease_s)
        url = cfg.public_url or f"http://{cfg.host}:{cfg.port}"
        controller = Controller(
            db, executor, policy, metrics=metrics, vault=vault, lease=lease, hub_url=url
        )
        watch = FileWatch(cfg.state_dir / "suanli.db") if cfg.db_url is None else None
        loop = ControllerLoop(controller, cfg.interval_s, health, watch)
        reports = cfg.reports_dir or cfg.state_dir / "reports"
        store = Stores(cfg.hub_dir or cfg.state_dir / "hub", cfg.hub_site_dirs)
        store.clean_incoming()  # (uploads a stopped server was receiving: never committed)
        app = create_app(
            Service(
                db,
                policy,
                executor,
                metrics=metrics,
                reports_dir=reports,
                vault=vault,
                federation_host=cfg.federation_host,
                hub=store,
                hub_max_file=cfg.hub_max_file,
            )
        )
        app.state.service.health = health
        loop.start()
        web = uvicorn.Config(
            app,
            host=cfg.host,
            port=cfg.port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=int(GRACEFUL_S),
        )
        stopping.serve(uvicorn.Server(web))
    except Cancelled:
        pass
    finally:
        if stopping:
            log.info("stopping (%s)", stopping.signal)
        _shutdown(cfg, db, loop, lease, cluster)
        if held is not None:
            held.release()


def slurm_executors(cfg: ServerConfig, alliance: Alliance) -> dict[SiteId, Executor]:
    """An executor per Slurm site. Its runs' files go to the site's ``run_dir`` (shared with
    its nodes), or the state directory; checkpoints beside them, or with every other site's
    (so that a job moved between sites of this machine resumes)."""
    from suanli.executors.slurm import SlurmExecutor

    out: dict[SiteId, Executor] = {}
    for site in alliance.sites.values():
        if site.slurm is None:
            continue
        shared = Path(site.slurm.run_dir) if site.slurm.run_dir else None
        runs = (shared or cfg.state_dir / "slurm" / site.id) / "runs"
        ckpt = shared / "checkpoints" if shared else cfg.state_dir / "checkpoints"
        models = {n.id: n.model for n in alliance.nodes.values() if n.site == site.id}
        out[site.id] = SlurmExecutor(site.slurm, alliance.catalog, models, runs, ckpt)
    return out


def _executor(
    cfg: ServerConfig, db: Database, grace_s: float, cancelled: Callable[[], bool]
) -> tuple[Executor, LocalRayCluster | None]:
    with db.session() as s:
        current, _ = read_alliance(s)
    if cfg.executor == "ray":
        return ray_executor(cfg, current, grace_s, cancelled)
    local = LocalProcessExecutor(
        cfg.state_dir, cfg.sandbox_config(), data_root=cfg.data_root, log_cap=cfg.log_cap_bytes
    )
    slurm = slurm_executors(cfg, current)
    if not slurm:
        return local, None
    from suanli.executors.sites import PerSiteExecutor

    executors: dict[SiteId, Executor] = dict.fromkeys(current.sites, local)
    executors.update(slurm)
    executors[CONTROL_SITE] = local
    site_of = {n.id: n.site for n in current.nodes.values()}
    site_of[CONTROL_NODE] = CONTROL_SITE
    return PerSiteExecutor(executors, site_of, timeout_s=cfg.site_timeout_s), None


def _shutdown(
    cfg: ServerConfig,
    db: Database | None,
    loop: ControllerLoop | None,
    lease: Lease | None,
    cluster: LocalRayCluster | None,
) -> None:
    """Stop the controller, give its lease up (another server takes over at once), stop the
    embedded Ray cluster, and say what keeps running."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # (a second signal must not cut this short)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if loop is not None:
        loop.stop()
    if lease is not None:
        with suppress(Exception):
            lease.release()
    running = 0
    if db is not None:
        with suppress(Exception), db.session() as s:
            running = (
                s.scalar(select(func.count()).select_from(JobRow).where(JobRow.phase.in_(ACTIVE)))
                or 0
            )
        db.close()
    if cluster is not None:
        cluster.stop()
    if running:
        what = (
            "were stopped with the embedded Ray cluster; they go back to the queue and resume "
            "from their checkpoints when the server starts again"
            if cluster is not None
            else "keep running (their supervisors are detached); start the server again on "
            f"{cfg.state_dir} to follow them, or stop them with suanli cancel"
        )
        log.warning("%d job(s) %s", running, what)
