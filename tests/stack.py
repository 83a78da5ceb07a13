"""The service stack, for tests: a real database (SQLite or PostgreSQL), the small alliance
below, a user per role, the local executor, the controller and the API served on a free
loopback port. One fixture (``stack``, in conftest) instead of one per test module."""

from __future__ import annotations

import time
from pathlib import Path

from suanli.api.app import create_app
from suanli.executors.local import LocalProcessExecutor
from suanli.hub.stores import Stores
from suanli.sched.policy import get_policy
from suanli.sdk.client import ApiError, Client
from suanli.service.auth import create_user
from suanli.service.context import Service
from suanli.service.controller import Controller
from suanli.service.pool import create_alliance
from suanli.service.vault import Vault
from suanli.spec.alliance_file import loads_alliance
from suanli.store.database import Database

ALLIANCE = """
alliance: two
members:
  - {id: lab, kind: institute}
  - {id: corp, kind: enterprise}
  - {id: startup, kind: startup, tier: commons}
sites:
  - {id: lab-site, member: lab, region: r1}
  - {id: corp-site, member: corp, region: r1}
nodes:
  - {id: lab-h800, site: lab-site, model: H800-80GB, devices: 8, cpu: 64, memory_gb: 512}
  - {id: corp-910b, site: corp-site, model: Ascend910B, devices: 8, cpu: 64, memory_gb: 512}
datasets:
  - {id: lab-data, owner: lab, readers: [startup], residency: {sites: [lab-site]}}
  - {id: corp-data, owner: corp}
"""

USERS = {
    "admin": ("alliance-admin", None),
    "lab-admin": ("member-admin", "lab"),
    "lab-user": ("member-user", "lab"),
    "corp-user": ("member-user", "corp"),
    "startup-user": ("member-user", "startup"),
    "viewer": ("viewer", None),
}


class Stack:
    def __init__(self, db: Database, tmp: Path) -> None:
        self.db = db
        self.executor = LocalProcessExecutor(tmp / "exec")
        policy = get_policy("alliance")
        self.controller = Controller(db, self.executor, policy)
        self.vault = Vault.open(tmp)
        self.controller.vault = self.vault
        self.hub = Stores(tmp / "hub")
        self.app = create_app(
            Service(db, policy, self.executor, vault=self.vault, hub=self.hub, hub_max_file=1 << 26)
        )
        self.tokens: dict[str, str] = {}
        self.url = ""
        self.clients: dict[str, Client] = {}
        with db.session() as s:
            create_alliance(s, loads_alliance(ALLIANCE), "test", time.time())
            for name, (role, member) in USERS.items():
                self.tokens[name] = create_user(s, None, name, role, member, time.time())

    def client(self, user: str | None) -> Client:
        key = user or ""
        if key not in self.clients:
            self.clients[key] = Client(self.url, self.tokens[user] if user else None)
        return self.clients[key]


def status(call) -> int:  # type: ignore[no-untyped-def]
    try:
        call()
    except ApiError as exc:
        return exc.status
    return 200


def job(jid: str, member: str, accel: str = "H800:1") -> dict[str, object]:
    return {"id": jid, "member": member, "accelerators": accel, "entrypoint": "echo hi"}
