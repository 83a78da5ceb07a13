"""Jobs run as someone else: each member's runs as an unprivileged OS user of their own, in a
bubblewrap sandbox that shows them only what is theirs.

What a sandboxed run sees (see docs/threat-model.md for why):

- ``/job``: its working directory (a private copy, writable), where it starts;
- ``/checkpoint``: its checkpoint directory (writable; it survives requeues);
- ``/data/DATASET``: each dataset its spec names and its member may read, read-only;
- ``/tmp``: scratch space of its own, on disk, gone when the run ends;
- read-only system paths (``/usr``, ``/etc``, ``/opt`` and the usual links), the Python
  environment suanli runs in (so that ``python`` is the one jobs expect), the device nodes of
  the accelerator stacks this machine has;
- its own processes only (a process namespace: it cannot see or signal the server or another
  run), its own IPC and host name, and by default a network namespace with only a loopback of
  its own (``network="private"``; ``"host"`` shares the machine's network).

Its environment is built from scratch: the stack's device variable, the checkpoint directory,
the job's own variables and secrets; nothing of the server's.

**Who runs it.** When the service runs as root, each member has an OS account
``suanli-MEMBER`` (created on first use: a system account with no home and no login shell) and
its runs switch to it with ``setpriv`` inside the sandbox (no capabilities, no new privileges,
no supplementary groups). When it is not root, bubblewrap makes a user namespace: the run keeps
the server's user id outside, but sees only its own files, so the state directory and the other
runs stay out of its reach; files it writes belong to the server's user.

``mode="none"`` runs jobs without any of this (their own process group, the same environment
rules): only for a machine where every member trusts every other.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from suanli.errors import CannotRunError, SandboxError
from suanli.executors.flower import flower_env

#: where a sandboxed run finds its directories
WORK = "/job"
CHECKPOINT = "/checkpoint"
DATA = "/data"
TMP = "/tmp"
REAPER = "/.suanli/reaper.py"
#: the first process of every run (see :mod:`suanli.executors.reaper`)
REAPER_FILE = Path(__file__).with_name("reaper.py")
#: the first process of a federated run's parts (see :mod:`suanli.executors.flower_driver`)
FLOWER_DRIVER = "/.suanli/flower_driver.py"
FLOWER_DRIVER_FILE = Path(__file__).with_name("flower_driver.py")

#: a job's working directory is copied into its run; larger ones are refused
MAX_WORKING_DIR_BYTES = 512 << 20

#: device nodes each accelerator stack needs (only those this machine has are shown)
DEVICE_NODES: Mapping[str, tuple[str, ...]] = {
    "cuda": ("/dev/nvidia*", "/dev/nvidia-caps"),
    "npu": ("/dev/davinci*", "/dev/devmm_svm", "/dev/hisi_hdc"),
    "mlu": ("/dev/cambricon*",),
    "dcu": ("/dev/kfd", "/dev/dri", "/dev/mkfd"),
    "xpu": ("/dev/xpu*",),
    "musa": ("/dev/mtgpu*", "/dev/dri"),
    "maca": ("/dev/mxcd*", "/dev/dri"),
    "corex": ("/dev/iluvatar*",),
    "gcu": ("/dev/gcu*",),
}

#: system paths every run sees read-only (links are made as links)
SYSTEM = ("/usr", "/etc", "/opt", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

#: the variables every run gets besides its own (the rest of the server's are never passed)
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxMode(StrEnum):
    BWRAP = "bwrap"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Account:
    """The OS user a member's runs execute as."""

    name: str
    uid: int
    gid: int


def account_name(member: str) -> str:
    """``suanli-MEMBER``, made a valid Linux user name of at most 32 characters."""
    base = re.sub(r"[^a-z0-9_-]", "-", member.lower())
    name = f"suanli-{base}"
    if len(name) > 32 or base != member:
        digest = hashlib.sha256(member.encode()).hexdigest()[:8]
        name = f"suanli-{base[:16]}-{digest}"
    return name


def member_account(member: str) -> Account | None:
    """The member's account, created if it does not exist yet; None unless running as root
    (the runs then keep the server's user id, in a user namespace of their own)."""
    if os.geteuid() != 0:
        return None
    name = account_name(member)
    for _ in range(50):
        try:
            pw = pwd.getpwnam(name)
            return Account(name, pw.pw_uid, pw.pw_gid)
        except KeyError:
            pass
        # useradd takes /etc/passwd's lock: two supervisors racing, one waits and sees it made
        r = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                f"suanli runs of member {member}",
                name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if r.returncode not in (0, 9):  # 9: it exists (made meanwhile)
            time.sleep(0.1)
    raise SandboxError(f"could not create the OS account {name} for member {member!r}")


def _runtime_paths() -> tuple[str, ...]:
    """The Python environment suanli runs in (its prefix and the interpreter's), and Flower's
    (:func:`suanli.executors.flower.flower_env`) where it is installed: a federated run's parts
    run from it."""
    out: list[str] = []
    found = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    with contextlib.suppress(CannotRunError):
        found.add(str(flower_env()))
    for p in sorted(found):
        real = os.path.realpath(p)
        if real not in out and not any(real.startswith(o + "/") for o in out):
            out.append(real)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """How runs are isolated on this machine (the executor's setting, not the job's)."""

    mode: SandboxMode = SandboxMode.BWRAP
    #: ``private``: a loopback of the run's own and nothing else; ``host``: this machine's
    network: str = "private"
    #: read-only paths besides the system ones (the Python environment by default)
    runtime: tuple[str, ...] = field(default_factory=_runtime_paths)

    def check_against(self, state_dir: Path) -> None:
        """Refuse a runtime path that would show the state directory to runs."""
        state = os.path.realpath(state_dir)
        for p in self.runtime:
            real = os.path.realpath(p)
            if state == real or state.startswith(real + "/") or real.startswith(state + "/"):
                raise SandboxError(
                    f"the read-only path {p} given to jobs holds the state directory {state}: "
                    "move the state directory out of it (--state-dir)"
                )

    def to_json(self) -> dict[str, object]:
        return {"mode": self.mode.value, "network": self.network, "runtime": list(self.runtime)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> SandboxConfig:
        runtime = data.get("runtime")
        return cls(
            SandboxMode(str(data.get("mode", "bwrap"))),
            str(data.get("network", "private")),
            tuple(str(x) for x in runtime) if isinstance(runtime, list) else _runtime_paths(),
        )


@dataclass(frozen=True, slots=True)
class Layout:
    """The host's directories of one run."""

    work: Path
    checkpoint: Path
    tmp: Path
    #: dataset id -> where its files lie on this machine
    datasets: Mapping[str, Path] = field(default_factory=dict)
    stack: str = "cuda"


def job_paths(config: SandboxConfig, layout: Layout) -> dict[str, str]:
    """The variables that tell a run where its directories are (as the run sees them)."""
    if config.mode is SandboxMode.NONE:
        work, ckpt, tmp = str(layout.work), str(layout.checkpoint), str(layout.tmp)
        data = str(layout.work.parent / "data")
    else:
        work, ckpt, tmp, data = WORK, CHECKPOINT, TMP, DATA
    driver = str(FLOWER_DRIVER_FILE) if config.mode is SandboxMode.NONE else FLOWER_DRIVER
    return {
        "SUANLI_FLOWER_DRIVER": driver,
        "SUANLI_CHECKPOINT_DIR": ckpt,
        "SUANLI_WORK_DIR": work,
        "SUANLI_DATA_DIR": data,
        "HOME": tmp,
        "TMPDIR": tmp,
    }


def base_env(config: SandboxConfig, layout: Layout, account: Account | None) -> dict[str, str]:
    """A run's environment before the job's own variables: nothing of the server's."""
    python_bin = os.path.dirname(sys.executable)
    user = account.name if account else "suanli-job"
    return {
        "PATH": f"{python_bin}:{SEARCH_PATH}",
        "LANG": "C.UTF-8",
        "USER": user,
        "LOGNAME": user,
        "SHELL": "/bin/sh",
        "PYTHONUNBUFFERED": "1",
        **job_paths(config, layout),
    }


def _system_args() -> list[str]:
    args: list[str] = []
    for p in SYSTEM:
        if os.path.islink(p):
            args += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            args += ["--ro-bind", p, p]
    return args


def _parents(path: str, made: set[str]) -> list[str]:
    """Directories leading to ``path`` that any user may traverse (bubblewrap would make them
    0700, root's, and a run as a member's user could not reach its own binds)."""
    out: list[str] = []
    parts = Path(path).parts[1:-1]
    for k in range(len(parts)):
        d = "/" + "/".join(parts[: k + 1])
        if d not in made:
            made.add(d)
            out += ["--perms", "0755", "--dir", d]
    return out


def bwrap_argv(
    config: SandboxConfig,
    layout: Layout,
    account: Account | None,
    command: list[str],
    info_fd: int | None = None,
) -> list[str]:
    """The command line that runs ``command`` in the run's sandbox."""
    bwrap = shutil.which("bwrap") or "bwrap"
    args = [
        bwrap,
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "suanli-job",
    ]
    if account is None:
        args.append("--unshare-user")
    if config.network != "host":
        args.append("--unshare-net")
    args += _system_args()
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/run"]
    for pattern in DEVICE_NODES.get(layout.stack, ()):
        for dev in sorted(glob.glob(pattern)):
            args += ["--dev-bind", dev, dev]
    args += ["--bind", str(layout.work), WORK]
    args += ["--bind", str(layout.checkpoint), CHECKPOINT]
    args += ["--bind", str(layout.tmp), TMP]
    made: set[str] = {WORK, CHECKPOINT, TMP}
    if layout.datasets:
        args += ["--dir", DATA]
        for name, path in sorted(layout.datasets.items()):
            args += ["--ro-bind", str(path), f"{DATA}/{name}"]
    # last, so that no directory of the run hides them (a Python under /tmp, say)
    for p in config.runtime:
        if os.path.isdir(p) and not any(p == s or p.startswith(s + "/") for s in SYSTEM):
            args += [*_parents(p, made), "--ro-bind", p, p]
    args += [*_parents(REAPER, made), "--ro-bind", str(REAPER_FILE), REAPER]
    args += ["--ro-bind", str(FLOWER_DRIVER_FILE), FLOWER_DRIVER, "--chdir", WORK]
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    args.append("--")
    if account is not None:
        args += [
            "setpriv",
            f"--reuid={account.uid}",
            f"--regid={account.gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]
    return args + command


def reaper_command(
    config: SandboxConfig, entrypoint: str, nodes: list[dict[str, str]], broadcast: bool = True
) -> list[str]:
    plan = {
        "entrypoint": entrypoint,
        "nodes": nodes,
        "namespace": config.mode is SandboxMode.BWRAP,
        "broadcast": broadcast,
    }
    reaper = REAPER if config.mode is SandboxMode.BWRAP else str(REAPER_FILE)
    return [sys.executable, "-I", reaper, json.dumps(plan)]


def _chown_tree(path: Path, account: Account) -> None:
    os.chown(path, account.uid, account.gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                os.chown(os.path.join(root, name), account.uid, account.gid, follow_symlinks=False)


def prepare(layout: Layout, account: Account | None) -> None:
    """Make the run's writable directories, owned by the run's user (mode 0700)."""
    for d in (layout.work, layout.tmp, layout.checkpoint):
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        if account is not None:
            st = d.stat()
            if (st.st_uid, st.st_gid) != (account.uid, account.gid):
                _chown_tree(d, account)


def _as(account: Account | None, argv: list[str]) -> list[str]:
    if account is None:
        return argv
    return [
        "setpriv",
        f"--reuid={account.uid}",
        f"--regid={account.gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--no-new-privs",
        "--",
        *argv,
    ]


def stage(
    source: str,
    dest: Path,
    account: Account | None,
    forbidden: Iterable[Path] = (),
    limit: int = MAX_WORKING_DIR_BYTES,
) -> None:
    """Copy a job's working directory into its run, reading it with the run's own user's
    permissions (so a job cannot name a directory its member could not read anyway: the path
    is walked as that user, then copied by that user). ``dest`` must be that user's already.
    Raises :class:`ValueError` with the reason when the directory cannot be used."""
    src = Path(source).resolve()
    if not src.is_dir():
        raise ValueError(f"runtime_env.working_dir {source}: no such directory")
    for place in forbidden:
        f = place.resolve()
        if src == f or f in src.parents or src in f.parents:
            raise ValueError(
                f"runtime_env.working_dir {source}: holds or lies in suanli's state directory"
            )
    env = {"PATH": SEARCH_PATH, "LANG": "C.UTF-8"}
    du = subprocess.run(
        _as(account, ["du", "-s", "-b", "--", str(src)]),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if du.returncode != 0:
        why = du.stderr.strip().splitlines()[-1] if du.stderr.strip() else "unreadable"
        raise ValueError(f"runtime_env.working_dir {source}: {why}")
    size = int(du.stdout.split()[0])
    if size > limit:
        raise ValueError(
            f"runtime_env.working_dir {source}: {size >> 20} MiB, over the {limit >> 20} MiB "
            "a working directory may hold (put data in a dataset)"
        )
    copy = ["cp", "-R", "--no-preserve=ownership", "--", f"{src}/.", str(dest)]
    if account is not None:
        # the member's user cannot reach the run's directory inside the state directory: the
        # copy runs as that user in a sandbox where both directories are mounted
        made: set[str] = set()
        copy = [
            shutil.which("bwrap") or "bwrap",
            "--die-with-parent",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-net",
            *_system_args(),
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            *_parents("/stage/src/x", made),
            "--ro-bind",
            str(src),
            "/stage/src",
            "--bind",
            str(dest),
            "/stage/dst",
            "--",
            *_as(
                account, ["cp", "-R", "--no-preserve=ownership", "--", "/stage/src/.", "/stage/dst"]
            ),
        ]
    cp = subprocess.run(copy, capture_output=True, text=True, env=env, check=False)
    if cp.returncode != 0:
        why = cp.stderr.strip().splitlines()[-1] if cp.stderr.strip() else "copy failed"
        raise ValueError(f"runtime_env.working_dir {source}: {why}")


class Sandbox:
    """A run's sandbox once started: its processes can be asked to stop, and killed."""

    def __init__(self, proc: subprocess.Popen[bytes], config: SandboxConfig) -> None:
        self.proc = proc
        self.config = config
        self._init: int | None = None

    @classmethod
    def start(
        cls,
        config: SandboxConfig,
        layout: Layout,
        account: Account | None,
        env: Mapping[str, str],
        entrypoint: str,
        nodes: list[dict[str, str]],
        stdout: int,
        broadcast: bool = True,
    ) -> Sandbox:
        """``broadcast`` false: the engine that stops the run signals each of its processes
        itself (Ray), so the reaper passes nothing on."""
        command = reaper_command(config, entrypoint, nodes, broadcast)
        if config.mode is SandboxMode.NONE:
            proc = subprocess.Popen(
                command,
                env=dict(env),
                cwd=layout.work,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            return cls(proc, config)
        r, w = os.pipe()
        try:
            proc = subprocess.Popen(
                bwrap_argv(config, layout, account, command, info_fd=w),
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                pass_fds=(w,),
                start_new_session=True,
            )
        finally:
            os.close(w)
        box = cls(proc, config)
        with os.fdopen(r, "rb") as info:
            data = info.read()  # bwrap closes it once the sandbox is set up (or failed)
        with contextlib.suppress(ValueError, KeyError, TypeError):
            box._init = int(json.loads(data)["child-pid"])
        return box

    def _reaper(self) -> int | None:
        """The reaper's pid as this machine sees it (the sandbox's init's child)."""
        if self._init is None:
            return None
        try:
            kids = Path(f"/proc/{self._init}/task/{self._init}/children").read_text().split()
        except OSError:
            return None
        return int(kids[0]) if kids else None

    def terminate(self, wait_s: float = 5.0) -> None:
        """Ask the job to stop: SIGTERM to the reaper, which passes it to every process (the
        reaper may be a moment away from starting: it is waited for)."""
        if self.config.mode is SandboxMode.NONE:
            pid: int | None = self.proc.pid
        else:
            deadline = time.monotonic() + wait_s
            while (pid := self._reaper()) is None and self.proc.poll() is None:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.02)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)

    def kill(self) -> None:
        """Kill every process of the run at once (the sandbox's processes die with it)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def wait(self) -> int:
        """The run's exit code (negative: the sandbox was killed by that signal)."""
        code = self.proc.wait()
        if self.config.mode is SandboxMode.NONE:  # what the job left in its group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        return code


def check(config: SandboxConfig, as_member: str = "sandbox-check") -> None:
    """Start one sandbox with nothing in it, or raise :class:`SandboxError` with the fix."""
    if config.mode is SandboxMode.NONE:
        return
    if shutil.which("bwrap") is None:
        raise SandboxError(
            "jobs run in a bubblewrap sandbox and bwrap was not found: install it (Debian and "
            "Ubuntu: apt-get install bubblewrap), or start with --sandbox none on a machine "
            "where every member trusts every other"
        )
    import tempfile

    with tempfile.TemporaryDirectory(prefix="suanli-sandbox-check-") as tmp:
        t = Path(tmp)
        layout = Layout(t / "work", t / "ckpt", t / "tmp")
        for d in (layout.work, layout.checkpoint, layout.tmp):
            d.mkdir()
        argv = bwrap_argv(config, layout, None if os.geteuid() else _probe_account(), ["true"])
        r = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
        if r.returncode != 0:
            raise SandboxError(
                f"bubblewrap cannot make a sandbox here ({r.stderr.strip() or r.returncode}): "
                "it needs user namespaces when suanli does not run as root "
                "(sysctl kernel.unprivileged_userns_clone=1, or run as root), or start with "
                "--sandbox none on a machine where every member trusts every other"
            )


def _probe_account() -> Account:
    return Account("nobody", 65534, 65534)


# -- runs started by another engine (Ray) ----------------------------------------------------
#: the variable that carries a run's plan to :func:`launch` (JSON, see :func:`run_plan`)
RUN_VAR = "SUANLI_RUN"


def run_plan(
    member: str,
    entrypoint: str,
    env: Mapping[str, str],
    nodes: list[dict[str, str]],
    stack: str,
    checkpoint: str,
    datasets: Mapping[str, str],
    config: SandboxConfig,
    working_dir: bool = False,
) -> dict[str, object]:
    """What :func:`launch` needs to run a job on a node of another engine (a Ray worker): the
    job's own variables, never the engine's (the runtime paths are the node's own)."""
    return {
        "member": member,
        "entrypoint": entrypoint,
        "env": dict(env),
        "nodes": nodes,
        "stack": stack,
        "checkpoint": checkpoint,
        "datasets": dict(datasets),
        "sandbox": {"mode": config.mode.value, "network": config.network},
        "working_dir": working_dir,
    }


def launch(
    plan: Mapping[str, Any], out: int, die_with_parent: bool = False, engine_signals: bool = False
) -> int:
    """Run a job in its sandbox on this node and wait for it: its working directory is a
    private copy of the current one (what the engine unpacked), its user its member's. SIGTERM
    asks the job to stop (every process of it); the engine kills this process after its grace
    period, and the sandbox dies with it. Returns the job's exit code.

    ``engine_signals``: the engine signals every descendant of this process itself when it
    stops the run (Ray's job supervisor does, SIGTERM then SIGKILL): bubblewrap then ignores
    SIGTERM (it would otherwise die at once and take the job with it before its checkpoint),
    and the job's processes get the engine's SIGTERM only, once."""
    import tempfile
    import threading

    if die_with_parent:  # the kernel kills this process when its parent (a Ray actor) dies
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)
    config = SandboxConfig.from_json(plan["sandbox"])
    account = member_account(str(plan["member"]))
    root = Path(tempfile.mkdtemp(prefix="suanli-run-"))
    try:
        datasets = {str(k): Path(str(v)) for k, v in plan["datasets"].items()}
        layout = Layout(
            root / "work",
            Path(str(plan["checkpoint"])),
            root / "tmp",
            {k: p for k, p in datasets.items() if p.is_dir()},
            str(plan["stack"]),
        )
        if plan.get("working_dir"):  # the job's files, as the engine unpacked them here
            shutil.copytree(Path.cwd(), layout.work, symlinks=True)
        prepare(layout, account)
        env = {**base_env(config, layout, account), **plan["env"]}
        nodes = [dict(n) for n in plan["nodes"]]
        # (ignored across exec by bubblewrap; the reaper sets its own handler)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        box = Sandbox.start(
            config,
            layout,
            account,
            env,
            str(plan["entrypoint"]),
            nodes,
            out,
            broadcast=not engine_signals,
        )
        if not engine_signals:
            signal.signal(
                signal.SIGTERM,
                lambda *_: threading.Thread(target=box.terminate, daemon=True).start(),
            )
        code = box.wait()
        return 128 - code if code < 0 else code
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(
        launch(
            json.loads(os.environ[RUN_VAR]),
            sys.stdout.fileno(),
            die_with_parent="--die-with-parent" in sys.argv[1:],
            engine_signals="--engine-signals" in sys.argv[1:],
        )
    )
