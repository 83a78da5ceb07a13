"""What the service functions run against: one object the composition root builds and every
surface (API, dashboard) hands on. It holds no rule."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from suanli.executors.base import Executor
from suanli.hub.stores import Stores
from suanli.sched.policy import Policy
from suanli.service.metrics import Metrics
from suanli.service.vault import Vault
from suanli.store.database import Database


@dataclass
class Health:
    """What the service knows is wrong with itself; a ``fatal`` problem (its database file
    deleted, say) makes every request answer 503 with it, and the health check fail."""

    fatal: str | None = None
    #: the last controller step that failed, cleared by the next that succeeds
    degraded: str | None = None
    #: ``controller`` or ``standby`` once the controller loop has run a step
    role: str | None = None


@dataclass
class Service:
    db: Database
    policy: Policy
    executor: Executor
    clock: Callable[[], float] = time.time
    #: the controller's metrics when it runs in this process (``suanli server``)
    metrics: Metrics = field(default_factory=Metrics)
    #: where the dashboard finds the simulator's HTML reports
    reports_dir: Path | None = None
    #: seals jobs' secrets (None: this server accepts no job with secrets)
    vault: Vault | None = None
    health: Health = field(default_factory=Health)
    #: where federated runs' SuperLinks listen (their SuperNodes dial it)
    federation_host: str = "127.0.0.1"
    #: the hub's files (None: this server keeps no hub)
    hub: Stores | None = None
    #: the largest file, and the largest commit body, the hub accepts
    hub_max_file: int = 8 << 30
