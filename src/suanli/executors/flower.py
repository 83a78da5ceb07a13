"""A federation on Flower's deployment engine, started, supervised and stopped by suanli.

One SuperLink per run, with its database in the run's directory; one SuperNode per participant,
holding that participant's data (its node config's ``data-path``) and connecting outward to the
SuperLink, as a member behind a firewall would; then ``flwr run`` submits the app (a Flower app
directory: its ``pyproject.toml`` names the ServerApp and the ClientApp) and streams the run's
log until it ends.

Trust, per run: a certificate authority made for the run signs the SuperLink's TLS certificate
(every connection is TLS, checked against that authority and nothing else); each SuperNode has
a key pair of its own, registered with the SuperLink before it starts (SuperNode
authentication is on: a node whose key was not registered is refused). The SuperLink's APIs
listen on loopback unless the federation is given another host. Nothing of Flower is imported
here: its commands run from their own environment (``envs/flower``: flwr pins versions of
fastapi, starlette, uvicorn and protobuf that the service cannot share), found through
``SUANLI_FLOWER_ENV`` or next to this checkout.

While the run goes on, a SuperNode that dies is started again with the same key and rejoins (the
app's strategy goes on as long as its minimum of participants answers). Every process of the
federation carries the run's mark in its environment; stopping it kills them all, whatever
session they moved to (Flower starts each ServerApp and ClientApp as a process of its own).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from suanli.errors import CannotRunError
from suanli.executors.processes import free_port, kill_group, marked, stop_all

#: the environment variable naming Flower's environment (the directory holding ``bin/flwr``)
ENV_VARIABLE = "SUANLI_FLOWER_ENV"
#: the environment variable that marks every process of a federation with its run's id
MARK = "SUANLI_FLOWER_RUN"
#: the server's variables Flower's processes are started with (none of them is a secret)
PASSED = ("LANG", "LC_ALL", "TZ")
#: how long stopping waits for Flower's processes to end after SIGTERM
STOP_WAIT_S = 5.0

RunConfigValue = str | int | float | bool


def flower_env(path: Path | None = None) -> Path:
    """Flower's environment: ``path``, else ``$SUANLI_FLOWER_ENV``, else ``envs/flower/.venv``
    of this checkout. Raises :class:`CannotRunError` saying how to make it when it is not
    there."""
    default = Path(__file__).resolve().parents[3] / "envs" / "flower" / ".venv"
    env = path or Path(os.environ.get(ENV_VARIABLE) or default)
    if not (env / "bin" / "flwr").exists():
        raise CannotRunError(
            f"Flower's environment is not at {env}: make it with "
            "`python3 -m uv sync --frozen --project envs/flower`, or name it in "
            f"{ENV_VARIABLE}"
        )
    return env


@dataclass(frozen=True)
class Participant:
    """A member taking part in a federated run, with the data its SuperNode reads."""

    member: str
    data_path: Path


@dataclass
class FederationResult:
    """How a run ended: ``flwr run``'s exit code, the metrics and model the ServerApp wrote to
    its output directory (``metrics.json``, ``model.npz``), and the SuperNodes restarted."""

    exit_code: int
    output_dir: Path
    rounds: list[dict[str, object]]
    restarts: dict[str, int]

    @property
    def model(self) -> Path | None:
        path = self.output_dir / "model.npz"
        return path if path.exists() else None


@dataclass
class _Node:
    participant: Participant
    port: int
    home: Path
    key: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0


@dataclass
class Federation:
    """One federated run's Flower processes, under ``run_dir``."""

    run_dir: Path
    app: Path
    participants: Sequence[Participant]
    env: Path | None = None
    host: str = "127.0.0.1"
    run_id: str = field(default_factory=lambda: secrets.token_hex(8))
    link: subprocess.Popen[bytes] | None = None
    nodes: dict[str, _Node] = field(default_factory=dict)

    def __post_init__(self) -> None:
        members = [p.member for p in self.participants]
        if len(set(members)) != len(members):
            raise ValueError(f"participants: a member appears twice in {members}")
        self.env = flower_env(self.env)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.link_port = free_port()
        self.mark = f"{MARK}={self.run_id}"

    # -- environment and trust --------------------------------------------------------------
    def _environ(self, home: Path) -> dict[str, str]:
        assert self.env is not None
        env = {k: os.environ[k] for k in PASSED if k in os.environ}
        env |= {
            "PATH": f"{self.env / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "FLWR_HOME": str(home),
            "PYTHONUNBUFFERED": "1",
            MARK: self.run_id,
        }
        return env

    def _pki(self) -> None:
        """The run's certificate authority, the SuperLink's certificate, a key per node."""
        pki = self.run_dir / "pki"
        pki.mkdir(mode=0o700, exist_ok=True)
        made = run_pki(self.run_id, self.host, [p.member for p in self.participants])
        _write(pki / "ca.pem", made.ca.encode())
        _write(pki / "link.pem", made.link_cert.encode())
        _write(pki / "link.key", made.link_key.encode())
        for name, (private, public) in made.nodes.items():
            _write(pki / f"{name}.key", private.encode())
            _write(pki / f"{name}.pub", public.encode())

    # -- processes ----------------------------------------------------------------------
    def _spawn(self, cmd: list[str], home: Path, log: str) -> subprocess.Popen[bytes]:
        home.mkdir(parents=True, exist_ok=True)
        with (self.run_dir / log).open("ab") as out:
            return subprocess.Popen(
                cmd,
                cwd=home,
                env=self._environ(home),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _flwr(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[bytes]:
        """``flwr ARGS`` as the run's CLI (its config names this run's SuperLink)."""
        assert self.env is not None
        home = self.run_dir / "cli"
        return subprocess.run(
            [str(self.env / "bin" / "flwr"), *args],
            cwd=home,
            env=self._environ(home),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )

    def start(self, timeout_s: float = 180.0) -> Federation:
        """The SuperLink, the nodes' registration, then the SuperNodes; on any failure
        everything started is stopped."""
        try:
            self._start(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout_s: float) -> None:
        assert self.env is not None
        self._pki()
        pki = self.run_dir / "pki"
        bin_ = self.env / "bin"
        self.link = self._spawn(
            [
                str(bin_ / "flower-superlink"),
                f"--ssl-ca-certfile={pki / 'ca.pem'}",
                f"--ssl-certfile={pki / 'link.pem'}",
                f"--ssl-keyfile={pki / 'link.key'}",
                "--enable-supernode-auth",
                "--disable-runtime-dependency-installation",
                f"--database={self.run_dir / 'superlink.db'}",
                f"--host={self.host}",
                f"--port={self.link_port}",
            ],
            self.run_dir / "link",
            "superlink.log",
        )
        _until(
            lambda: _listening(self.host, self.link_port),
            timeout_s,
            "the SuperLink did not start listening",
            self.link,
        )
        cli = self.run_dir / "cli"
        cli.mkdir(exist_ok=True)
        (cli / "config.toml").write_text(
            '[superlink]\ndefault = "run"\n\n[superlink.run]\n'
            f'address = "{self.host}:{self.link_port}"\n'
            f"root-certificates = {json.dumps(str(pki / 'ca.pem'))}\n"
        )
        for p in self.participants:
            out = self._flwr(
                "supernode", "register", str(pki / f"{p.member}.pub"), "run", "--format", "json"
            )
            if out.returncode != 0:
                raise RuntimeError(
                    f"registering {p.member}'s SuperNode failed: {_tail(out.stdout + out.stderr)}"
                )
            self.nodes[p.member] = _Node(
                p, free_port(), self.run_dir / "nodes" / p.member, pki / f"{p.member}.key"
            )
        for node in self.nodes.values():
            self._start_node(node)

    def _start_node(self, node: _Node) -> None:
        assert self.env is not None
        config = f"data-path={json.dumps(str(node.participant.data_path))} " + (
            f"participant={json.dumps(node.participant.member)}"
        )
        node.proc = self._spawn(
            [
                str(self.env / "bin" / "flower-supernode"),
                f"--superlink={self.host}:{self.link_port}",
                f"--root-certificates={self.run_dir / 'pki' / 'ca.pem'}",
                f"--auth-supernode-private-key={node.key}",
                f"--node-config={config}",
                "--host=127.0.0.1",
                f"--port={node.port}",
            ],
            node.home,
            f"supernode-{node.participant.member}.log",
        )

    def supervise(self) -> None:
        """Start again every SuperNode that has died (same key: it rejoins as itself)."""
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is not None:
                kill_group(node.proc)
                node.restarts += 1
                self._start_node(node)

    def run(
        self,
        config: Mapping[str, RunConfigValue] | None = None,
        timeout_s: float = 1800.0,
        poll_s: float = 1.0,
    ) -> FederationResult:
        """Submit the app with ``config`` (its ``[tool.flwr.app.config]`` keys; the output
        directory is the run's ``output``) and wait for the run to end, restarting dead
        SuperNodes meanwhile."""
        output = self.run_dir / "output"
        values = {**(config or {}), "output-dir": str(output)}
        (self.run_dir / "run-config.toml").write_text(
            "".join(f"{k} = {_toml(v)}\n" for k, v in values.items())
        )
        assert self.env is not None
        proc = self._spawn(
            [
                str(self.env / "bin" / "flwr"),
                "run",
                str(self.app.resolve()),
                "run",
                "--stream",
                f"--run-config={self.run_dir / 'run-config.toml'}",
            ],
            self.run_dir / "cli",
            "run.log",
        )
        deadline = time.monotonic() + timeout_s
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the federated run did not end in {timeout_s:.0f} s")
                self._check_link()
                self.supervise()
                time.sleep(poll_s)
        finally:
            kill_group(proc)
        self._check_link()  # (``flwr run`` ends when its SuperLink goes)
        metrics = output / "metrics.json"
        return FederationResult(
            proc.returncode,
            output,
            json.loads(metrics.read_text()) if metrics.exists() else [],
            {m: n.restarts for m, n in self.nodes.items()},
        )

    def _check_link(self) -> None:
        if self.link is not None and self.link.poll() is not None:
            raise RuntimeError(
                f"the SuperLink exited ({self.link.returncode}): "
                + _tail((self.run_dir / "superlink.log").read_bytes())
            )

    def processes(self) -> list[int]:
        """Every process of this federation now (for operators and tests)."""
        return sorted(marked(self.mark.encode()))

    def stop(self) -> None:
        """SIGTERM to the SuperNodes and the SuperLink, a grace, then SIGKILL to their groups
        and to every process still carrying the run's mark."""
        procs = [n.proc for n in self.nodes.values() if n.proc is not None]
        procs += [self.link] if self.link is not None else []
        stop_all(procs, self.mark.encode(), STOP_WAIT_S)

    def __enter__(self) -> Federation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class RunPki:
    """A federated run's trust, as PEM and OpenSSH text: its own certificate authority, the
    SuperLink's certificate and key (for ``host``), and each node's key pair (private, public),
    which the SuperLink is told to accept."""

    ca: str
    link_cert: str
    link_key: str
    nodes: dict[str, tuple[str, str]]


def run_pki(run_id: str, host: str, nodes: Sequence[str], days: int = 30) -> RunPki:
    """Make a run's :class:`RunPki`: a P-256 authority named after the run signs the
    SuperLink's certificate (its subject alternative name is ``host``); each node gets a P-384
    key pair, as Flower's SuperNode authentication asks."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
    ) -> x509.Certificate:
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            try:
                alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(subject))
            except ValueError:
                alt = x509.DNSName(subject)
            b = b.add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        return b.sign(signer, hashes.SHA256())

    def pem(c: x509.Certificate) -> str:
        return c.public_bytes(serialization.Encoding.PEM).decode()

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"suanli run {run_id}")])
    ca = cert(f"suanli run {run_id}", ca_key, ca_name, ca_key, ca=True)
    link_key = ec.generate_private_key(ec.SECP256R1())
    link = cert(host, link_key, ca_name, ca_key, ca=False)
    pairs: dict[str, tuple[str, str]] = {}
    for name in nodes:
        key = ec.generate_private_key(ec.SECP384R1())
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        pairs[name] = (private.decode(), public.decode())
    link_pem = link_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return RunPki(pem(ca), pem(link), link_pem.decode(), pairs)


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def _toml(value: RunConfigValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)


def _tail(data: bytes, n: int = 800) -> str:
    return data[-n:].decode(errors="replace").strip()


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def _until(
    ok: Callable[[], bool], timeout_s: float, what: str, proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + timeout_s
    while not ok():
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: it exited ({proc.returncode})")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} in {timeout_s:.0f} s")
        time.sleep(0.5)
