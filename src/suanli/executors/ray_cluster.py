"""A Ray cluster on this machine, started and stopped by suanli (embedded mode and tests).

Each Ray node is a ``ray start --block`` child process in its own session. Not everything Ray
starts stays in that process group: Ray puts each worker in a group of its own, and a job's
driver, and the shell that watches it, in a session of their own. Every process started from a
node carries the cluster's mark in its environment (``SUANLI_RAY_CLUSTER``), and that is how
stopping the cluster, or killing one node, finds exactly its processes and nothing else on the
machine. Nothing of the cluster outlives it: a watcher left behind would, once its job's
supervisor is gone, SIGKILL the driver's process group by its number, long after that number may
have been given to an unrelated process.

Every node's address is 127.0.0.1, kept as such (see :data:`RAY_START`), so that every port the
cluster opens (GCS, raylets, dashboard and its agents, the runtime-env agent, the client server,
the metrics exporters) listens on loopback only; Ray's token authentication is on as well
(``RAY_AUTH_MODE=token``). The nodes start with a bare environment (:data:`PASSED`), never the
server's. Simulated accelerators are Ray resources and labels the nodes declare.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from suanli.executors.processes import free_port, marked, stop_all

#: ``ray start``, keeping the loopback address it is given. Ray replaces 127.0.0.1 by the
#: machine's routable address (``resolve_ip_for_localhost``) and its services then listen on
#: every interface; with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` in the cluster's environment
#: every Ray process takes loopback as its node's address, and binds there, but ``ray start``
#: would refuse to add worker nodes: this process alone keeps the cluster mode on.
RAY_START = [
    sys.executable,
    "-c",
    "import sys; import ray._private.ray_constants as c; import ray._private.services as s; "
    "c.ENABLE_RAY_CLUSTER = True; s.resolve_ip_for_localhost = lambda h: h; "
    "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()",
]

#: how long stopping waits for the nodes to stop their processes before it kills them all
STOP_WAIT_S = 5.0

#: the server's variables a Ray node is started with (none of them is a secret)
PASSED = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME")

#: the environment variable that marks every process of a cluster with the cluster's id
MARK = "SUANLI_RAY_CLUSTER"


@dataclass
class RayNodeSpec:
    """One Ray node: its resources (``{"GPU": 8, "suanli.node.hx-1": 8}``) and labels."""

    resources: dict[str, float]
    labels: dict[str, str] = field(default_factory=dict)
    num_cpus: int = 2


class Cancelled(Exception):
    """The cluster's start was called off (the server was told to stop); what it had started
    is stopped."""


def _never() -> bool:
    return False


class LocalRayCluster:
    def __init__(
        self, nodes: list[RayNodeSpec], token: str | None = None, stop_grace_s: float = 30.0
    ) -> None:
        if not nodes:
            raise ValueError("a Ray cluster needs at least its head node")
        self.nodes = nodes
        self.token = token or secrets.token_hex(24)
        #: every port handed out to this cluster: the kernel may offer a port again once the
        #: probe that found it free is closed, and Ray refuses two components on one port
        self._ports: set[int] = set()
        self.gcs_port = self._port()
        self.dashboard_port = self._port()
        #: the head's two metrics servers (Ray's defaults are fixed ports: two clusters on one
        #: machine would fight over them)
        self.metrics_ports = (self._port(), self._port())
        self.temp_dir = Path(tempfile.mkdtemp(prefix="suanli-ray-"))
        #: what every process of this cluster carries in its environment (see ``MARK``): its
        #: directory, the pid of the process that started it (which server's cluster), a nonce
        self.mark = f"{MARK}={self.temp_dir.name}-pid{os.getpid()}-{secrets.token_hex(8)}"
        #: the running ``ray start`` process of each node, by its index in ``nodes``
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        #: how long a stopped job has between SIGTERM and SIGKILL (Ray's job stop timeout)
        self.stop_grace_s = stop_grace_s
        #: whether the start under way was called off (see :meth:`start`)
        self._cancelled: Callable[[], bool] = _never
        #: whether :meth:`stop` keeps ``temp_dir`` (a start that failed: its logs say why)
        self._keep = False

    @property
    def address(self) -> str:
        """The Job Submission API's address (the dashboard)."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def env(self) -> dict[str, str]:
        """The cluster's environment: nothing of the server's but the basics (no secret of
        suanli's reaches a Ray process, nor through it a job)."""
        # jobs' ``python`` is the one suanli runs on (the gang driver imports suanli)
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return {
            **{k: v for k, v in os.environ.items() if k in PASSED},
            "PATH": path,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # (see RAY_START)
            "DASHBOARD_METRIC_PORT": str(self.metrics_ports[0]),
            "AUTOSCALER_METRIC_PORT": str(self.metrics_ports[1]),
            # drivers started under ``uv run`` must not ship the working directory around
            "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
            "RAY_JOB_STOP_WAIT_TIME_S": str(int(self.stop_grace_s)),
            MARK: self.mark.split("=", 1)[1],
        }

    def _start(self, index: int, args: list[str]) -> None:
        spec = self.nodes[index]
        resources = dict(spec.resources)
        gpus = int(resources.pop("GPU", 0))  # Ray takes GPUs only through --num-gpus
        cmd = [
            *RAY_START,
            "start",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={spec.num_cpus}",
            f"--num-gpus={gpus}",
            f"--resources={json.dumps(resources)}",
            "--disable-usage-stats",
            *args,
        ]
        # every port a node opens is chosen here: several Ray nodes share this machine's address
        cmd += [
            f"--node-manager-port={self._port()}",
            f"--object-manager-port={self._port()}",
            f"--metrics-export-port={self._port()}",
            f"--runtime-env-agent-port={self._port()}",
            f"--dashboard-agent-grpc-port={self._port()}",
            f"--dashboard-agent-listen-port={self._port()}",
        ]
        if spec.labels:
            cmd.append("--labels=" + ",".join(f"{k}={v}" for k, v in spec.labels.items()))
        with (self.temp_dir / f"node-{index}.log").open("ab") as log:
            self.procs[index] = subprocess.Popen(
                cmd,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _port(self) -> int:
        """A free port of this machine not yet given to another component of this cluster."""
        while (port := free_port()) in self._ports:
            pass
        self._ports.add(port)
        return port

    def start(
        self, timeout_s: float = 300.0, cancelled: Callable[[], bool] = _never
    ) -> LocalRayCluster:
        """Start the head, then the workers; on any failure stop what was started. Starting
        takes minutes on a busy machine: ``cancelled`` is asked between every step and every
        poll, and once it answers true the start stops what it started and raises
        :class:`Cancelled` (within a few seconds: the longest wait is one poll's timeout)."""
        self._cancelled = cancelled
        try:
            self._start_all(timeout_s)
        except Cancelled:
            self.stop()
            raise
        except BaseException:
            self._keep = True  # (its nodes' logs say why: the error names the directory)
            self.stop()
            raise
        return self

    def _go_on(self) -> None:
        if self._cancelled():
            raise Cancelled("the Ray cluster's start was called off")

    def _start_all(self, timeout_s: float) -> None:
        self._start(
            0,
            [
                "--head",
                f"--port={self.gcs_port}",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={self.dashboard_port}",
                f"--ray-client-server-port={self._port()}",
                "--include-dashboard=true",
                f"--temp-dir={self.temp_dir}",
            ],
        )
        self._wait_dashboard(timeout_s)
        for k in range(1, len(self.nodes)):  # one at a time: each joins before the next
            self._go_on()
            self._start(k, [f"--address=127.0.0.1:{self.gcs_port}"])
            self._wait_nodes(k + 1, timeout_s)

    def kill_node(self, index: int) -> list[int]:
        """Kill a worker node outright, as a machine dies: SIGKILL to every process of it at
        once (its session, and the workers, jobs' drivers and their children started from it
        that left the session). Returns the process ids it killed."""
        if index == 0:
            raise ValueError("the head cannot be killed and brought back")
        p = self.procs.pop(index)
        procs = marked(self.mark.encode())
        node = {pid for pid, (_, sid) in procs.items() if sid == p.pid} | {p.pid}
        grew = True
        while grew:  # and their descendants, down the tree
            more = {pid for pid, (ppid, _) in procs.items() if ppid in node} - node
            node |= more
            grew = bool(more)
        for pid in node:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        p.wait()
        return sorted(node)

    def restart_node(self, index: int, timeout_s: float = 300.0) -> None:
        """Start a killed worker node again (a new Ray node with the same labels)."""
        alive = len(self.procs)
        self._start(index, [f"--address=127.0.0.1:{self.gcs_port}"])
        self._wait_nodes(alive + 1, timeout_s)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _wait_dashboard(self, timeout_s: float) -> None:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            self._go_on()
            if self.procs[0].poll() is not None:
                raise RuntimeError(f"the Ray head exited; see {self.temp_dir}")
            try:
                r = httpx.get(f"{self.address}/api/version", headers=self._headers(), timeout=2)
                if r.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the Ray head did not come up")

    def _wait_nodes(self, n: int, timeout_s: float) -> None:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            self._go_on()
            try:
                r = httpx.get(
                    f"{self.address}/nodes?view=summary", headers=self._headers(), timeout=5
                )
                summary = r.json()["data"]["summary"]
                alive = [x for x in summary if x.get("raylet", {}).get("state") == "ALIVE"]
                if len(alive) >= n:
                    return
            except (httpx.TransportError, KeyError, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{n} Ray nodes did not join")

    def stop(self) -> None:
        """Stop every process this cluster started, workers first: SIGTERM to each
        ``ray start`` (it stops its own Ray processes in a second or two; a SIGTERM to the
        whole group instead makes it wait half a minute), then SIGKILL to whatever is left in
        its process group, then to every process still carrying the cluster's mark. Its
        directory goes too (Ray's session: logs, sockets, spilled objects), unless the start
        failed: the error names it for its logs."""
        procs = [self.procs[k] for k in sorted(self.procs, reverse=True)]
        # (``ray start`` stops its processes itself; then whatever of the cluster left the
        # nodes' groups: workers, jobs' drivers, the shells watching them, their children)
        stop_all(procs, self.mark.encode(), STOP_WAIT_S)
        self.procs.clear()
        if not self._keep:  # (Ray's session: logs, sockets, spilled objects; megabytes a start)
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def processes(self) -> list[int]:
        """The process ids of everything this cluster runs now (for operators and tests)."""
        return sorted(marked(self.mark.encode()))

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
