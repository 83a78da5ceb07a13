"""A real Slurm cluster on this machine, for the tests: munged (as the munge user), slurmctld and
one slurmd per node (each with its own port, spool directory and pid file, started with ``-N
NODE``), their own configuration and directories, no accounting, no systemd. Count-only generic
resources stand for the node's accelerators (``gres.conf`` without ``File=``). Stopped by pid:
``scontrol shutdown`` while munged is still up, then whatever is left of the daemons, their step
daemons and the jobs' processes, killed.

Needs root and Debian's ``slurmctld slurmd slurm-client munge`` (``.ci/run`` installs them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


def missing() -> str:
    """Why a cluster cannot start here (empty: it can)."""
    if os.geteuid() != 0:
        return "Slurm's daemons run as root here, and this is not root"
    gone = [d for d in (*DAEMONS, "sbatch", "runuser") if shutil.which(d) is None]
    if gone:
        return f"not installed: {', '.join(gone)} (apt-get install slurmctld slurmd munge)"
    return ""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _children(pids: set[int]) -> set[int]:
    """``pids`` and every process below them."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
    out = set(pids)
    grew = True
    while grew:
        more = {p for p, pp in parent.items() if pp in out and p not in out}
        out |= more
        grew = bool(more)
    return out


class LocalSlurm:
    def __init__(
        self,
        nodes: tuple[str, ...] = ("sl-1",),
        gres: dict[str, int] | None = None,
        cpus: int = 32,
    ):
        self.nodes = nodes
        #: the first node (where a test needs just one)
        self.node = nodes[0]
        self.gres = gres or {"npu:ascend910b": 8, "mlu:mlu370": 4}
        self.cpus = cpus
        self.root = Path(tempfile.mkdtemp(prefix="suanli-slurm-"))
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    # -- files ----------------------------------------------------------------------------
    def _write(self) -> None:
        r = self.root
        r.chmod(0o755)  # (munged wants its socket's directories open to everyone)
        for sub in ("state", "spool", "log", "runs"):
            (r / sub).mkdir(mode=0o700)
        for node in self.nodes:
            (r / "spool" / node).mkdir(mode=0o700)
        for sub, mode in (("munge", 0o700), ("msock", 0o755)):
            (r / sub).mkdir(mode=mode)
            shutil.chown(r / sub, "munge", "munge")
        key = r / "munge" / "key"
        key.write_bytes(os.urandom(128))
        key.chmod(0o400)
        shutil.chown(key, "munge", "munge")
        host = socket.gethostname()
        kinds = sorted({g.split(":")[0] for g in self.gres})
        gres = ",".join(f"{g}:{n}" for g, n in self.gres.items())
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=suanlitest",
                    f"SlurmctldHost={host}(127.0.0.1)",
                    f"SlurmctldPort={_port()}",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={r / 'msock' / 'sock'}",
                    f"StateSaveLocation={r / 'state'}",
                    f"SlurmdSpoolDir={r / 'spool' / '%n'}",
                    f"SlurmctldPidFile={r / 'slurmctld.pid'}",
                    f"SlurmdPidFile={r / 'slurmd-%n.pid'}",
                    f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={r / 'log' / 'slurmd-%n.log'}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core",
                    "SlurmdParameters=config_overrides",
                    f"GresTypes={','.join(kinds)}",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "MpiDefault=none",
                    "ReturnToService=2",
                    "SchedulerParameters=sched_interval=1",
                    "KillWait=5",
                    # (several slurmd on one host: a port each)
                    *(
                        f"NodeName={node} NodeHostname={host} NodeAddr=127.0.0.1 "
                        f"Port={_port()} CPUs={self.cpus} RealMemory=64000 Gres={gres} "
                        "State=UNKNOWN"
                        for node in self.nodes
                    ),
                    "PartitionName=pool Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        (r / "gres.conf").write_text(
            "".join(
                f"NodeName={node} Name={g.split(':')[0]} Type={g.split(':')[1]} Count={n}\n"
                for node in self.nodes
                for g, n in self.gres.items()
            )
        )

    # -- life -----------------------------------------------------------------------------
    def run(self, *args: str, check: bool = True) -> str:
        # (in its own directory: a batch job without --output writes slurm-ID.out there)
        done = subprocess.run(
            list(args),
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def _wait(self, what: str, ok: object, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while not ok():  # type: ignore[operator]
            if time.time() > deadline:
                logs = ""
                for f in sorted((self.root / "log").glob("*.log")):
                    logs += f"\n--- {f.name}\n" + f.read_text()[-2000:]
                raise RuntimeError(f"Slurm: {what} did not happen in {timeout:.0f} s{logs}")
            time.sleep(0.2)

    def start(self) -> LocalSlurm:
        why = missing()
        if why:
            raise RuntimeError(why)
        self._write()
        r = self.root
        m = r / "munge"
        subprocess.run(
            [
                "runuser",
                "-u",
                "munge",
                "--",
                "munged",
                f"--socket={r / 'msock' / 'sock'}",
                f"--key-file={m / 'key'}",
                f"--pid-file={m / 'pid'}",
                f"--log-file={m / 'log'}",
                f"--seed-file={m / 'seed'}",
            ],
            check=True,
            timeout=30,
        )
        subprocess.run(["slurmctld", "-i"], env=self.env, check=True, timeout=30)
        for node in self.nodes:
            subprocess.run(["slurmd", "-N", node], env=self.env, check=True, timeout=30)
        for node in self.nodes:
            self._wait(f"{node} came up", lambda n=node: self.up(n))
        return self

    def up(self, node: str | None = None) -> bool:
        return self.state(node) in ("IDLE", "MIXED", "ALLOCATED")

    def restart_controller(self) -> None:
        """slurmctld stopped (SIGTERM, by its pid) and started again from its saved state."""
        pid = _pid(self.root / "slurmctld.pid")
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        self._wait("slurmctld stopped", lambda: not _alive(pid), 30)
        subprocess.run(["slurmctld"], env=self.env, check=True, timeout=30)
        self._wait("slurmctld answered", lambda: self.state() != "", 60)

    def state(self, node: str | None = None) -> str:
        out = self.run("scontrol", "-o", "show", "node", node or self.node, check=False)
        for part in out.split():
            if part.startswith("State="):
                return part[len("State=") :]
        return ""

    def _daemon_files(self) -> list[Path]:
        r = self.root
        return [r / "slurmctld.pid", *(r / f"slurmd-{n}.pid" for n in self.nodes)]

    def pids(self) -> set[int]:
        files = (self.root / "munge" / "pid", *self._daemon_files())
        return {p for p in (_pid(f) for f in files) if p is not None and _alive(p)}

    def stop(self) -> None:
        """Everything it started, gone: the daemons by their pid files, and the processes
        below each slurmd (step daemons and the jobs' own)."""
        slurmds = {_pid(self.root / f"slurmd-{n}.pid") for n in self.nodes}
        below = _children({p for p in slurmds if p and _alive(p)})
        # step daemons daemonize away from slurmd: find them by their spool directory
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                with contextlib.suppress(OSError):
                    cmd = (d / "cmdline").read_bytes()
                    if b"slurmstepd" in cmd:
                        env = (d / "environ").read_bytes()
                        if str(self.conf).encode() in env:
                            below |= _children({int(d.name)})
        with contextlib.suppress(Exception):
            self.run("scontrol", "shutdown", check=False)
        deadline = time.time() + 15
        daemons = {p for p in (_pid(f) for f in self._daemon_files()) if p}
        while any(_alive(p) for p in daemons) and time.time() < deadline:
            time.sleep(0.1)
        for pid in sorted(self.pids() | below | daemons):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalSlurm:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
