"""The composition root: the one place that wires the database, the executor, the controller
loop (in a thread) and the REST API into the service process.

On the embedded defaults everything lives in one state directory: ``suanli.db`` (SQLite, WAL),
``runs/`` and ``checkpoints/`` of the local-process executor, and ``admin-token`` (mode 0600,
written once when the first admin is created: only its hash is in the database).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import uvicorn

from suanli.api.app import create_app
from suanli.executors.base import Executor
from suanli.executors.local import LocalProcessExecutor
from suanli.executors.ray_cluster import LocalRayCluster
from suanli.executors.sandbox import SandboxConfig, SandboxMode
from suanli.executors.sandbox import check as check_sandbox
from suanli.model.alliance import Alliance
from suanli.model.ids import SiteId
from suanli.sched.policy import get_policy
from suanli.service.auth import create_user
from suanli.service.context import Service
from suanli.service.controller import Controller
from suanli.service.metrics import Metrics
from suanli.service.pool import create_alliance
from suanli.service.statedir import private_files, secure
from suanli.service.vault import Vault
from suanli.store.alliance_rows import has_alliance, read_alliance
from suanli.store.database import Database
from suanli.store.tables import UserRow

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

    def sandbox_config(self) -> SandboxConfig:
        return SandboxConfig(SandboxMode(self.sandbox), self.job_network)


class ControllerLoop:
    """Runs :meth:`Controller.step` every ``interval_s`` until stopped; a failing step is
    logged and retried at the next tick (the database holds every intention)."""

    def __init__(self, controller: Controller, interval_s: float) -> None:
        self.controller = controller
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="controller", daemon=True)
        self.steps = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self.controller.step()
                self.steps += 1
            except Exception:
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
        url = cfg.db_url or f"sqlite:///{cfg.state_dir / 'suanli.db'}"
        db = Database.open(url)
    token = None
    with db.session() as s:
        if not has_alliance(s):
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
    cfg: ServerConfig, alliance: Alliance, grace_s: float
) -> tuple[Executor, LocalRayCluster | None]:
    """A per-site Ray executor: sites that name a Ray address use it (its token from
    ``SUANLI_RAY_TOKEN``); the others share an embedded local Ray cluster whose nodes declare
    the suanli nodes' chips as resources and labels."""
    from suanli.executors.ray import RAY_RESOURCE, RayExecutor, node_resource
    from suanli.executors.ray_cluster import LocalRayCluster, RayNodeSpec
    from suanli.executors.sites import PerSiteExecutor

    ckpt = cfg.state_dir / "checkpoints"
    executors: dict[SiteId, Executor] = {}
    embedded_sites = [s for s in alliance.sites.values() if not s.executor]
    cluster = None
    if embedded_sites:
        specs = []
        for node in sorted(alliance.nodes.values(), key=lambda n: n.id):
            site = alliance.sites[node.site]
            if site.executor:
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
        cluster = LocalRayCluster(specs, stop_grace_s=grace_s).start()
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
    site_of = {n.id: n.site for n in alliance.nodes.values()}
    return PerSiteExecutor(executors, site_of, timeout_s=cfg.site_timeout_s), cluster


def serve(cfg: ServerConfig, alliance: Alliance) -> None:
    """Run the service until it is stopped. Everything this process writes is private to it
    (umask 0077): the database and its journal, the runs' files."""
    os.umask(0o077)
    db, _ = prepare(cfg, alliance)
    policy = get_policy(cfg.policy)
    cluster: LocalRayCluster | None = None
    executor: Executor
    check_sandbox(cfg.sandbox_config())
    if cfg.executor == "ray":
        with db.session() as s:
            current, _ = read_alliance(s)
        executor, cluster = ray_executor(cfg, current, policy.grace_s)
    else:
        executor = LocalProcessExecutor(
            cfg.state_dir, cfg.sandbox_config(), data_root=cfg.data_root
        )
    metrics = Metrics()
    vault = Vault.open(cfg.state_dir)
    loop = ControllerLoop(
        Controller(db, executor, policy, metrics=metrics, vault=vault), cfg.interval_s
    )
    reports = cfg.reports_dir or cfg.state_dir / "reports"
    app = create_app(
        Service(db, policy, executor, metrics=metrics, reports_dir=reports, vault=vault)
    )
    loop.start()
    try:
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False)
    finally:
        loop.stop()
        db.close()
        if cluster is not None:
            cluster.stop()
