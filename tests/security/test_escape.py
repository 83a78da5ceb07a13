"""The escape suite: a member's ordinary user submits jobs that try to reach the control
plane's secrets, the database, another member's outputs, checkpoints and processes, the
server's environment and the cluster's tokens, or to write outside their own directories,
against a real ``suanli server`` on the local executor and on an embedded Ray cluster. Every
attempt must fail; the suite prints what it tried (``attack.sh``)."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from suanli.sdk.client import ApiError, Client

from ..live import free_port

pytestmark = pytest.mark.slow  # real servers, clusters or browsers: pytest -m "not slow" skips them

ATTACK = (Path(__file__).with_name("attack.sh")).read_text()
#: every attempt attack.sh makes (the doc's threat model names them)
ATTEMPTS = [line.split('"')[1] for line in ATTACK.splitlines() if line.startswith('try "')]
VICTIM = (
    'echo topsecret > "$SUANLI_CHECKPOINT_DIR/secret"; echo topsecret-output; '
    "i=0; while [ $i -lt 80 ]; do sleep 0.1; i=$((i+1)); done; echo victim survived"
)


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out, frontier = [], {root}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier}
        out += sorted(frontier)
    return out


def _ray_dashboard(server_pid: int) -> str:
    """The embedded Ray cluster's dashboard address, as a local attacker could find it."""
    for pid in _descendants(server_pid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(c.endswith(b"dashboard/dashboard.py") for c in cmd):
            port = next(c for c in cmd if c.startswith(b"--port=")).split(b"=")[1]
            return f"http://127.0.0.1:{port.decode()}"
    return ""


SMALL_ALLIANCE = Path(__file__).resolve().parents[2] / "src/suanli/examples/embedded-alliance.yaml"


class Server:
    def __init__(self, tmp: Path, executor: str) -> None:
        self.state = tmp / "state"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "SUANLI_CANARY": "the-servers-own-secret",
            "SUANLI_RAY_TOKEN": "a-members-cluster-token",
        }
        cmd = [sys.executable, "-m", "suanli", "server", "--state-dir", str(self.state)]
        cmd += ["--port", str(self.port), "--interval", "0.3", "--executor", executor]
        # three nodes (one Ray node each): the example alliance's seventeen took more than five
        # minutes to start on two cores busy with another test suite
        cmd += ["--alliance", str(SMALL_ALLIANCE)]
        self.log = (tmp / "server.log").open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def wait_up(self, timeout: float) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, "the server exited"
            token = self.state / "admin-token"
            try:
                with Client(self.url) as c:
                    c.health()
                if token.exists():
                    return token.read_text().strip()
            except ConnectionError:
                pass
            time.sleep(0.2)
        self.log.flush()
        tail = (self.state.parent / "server.log").read_bytes()[-3000:].decode(errors="replace")
        raise AssertionError(f"the server did not come up in {timeout:.0f} s; its log:\n{tail}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module", params=["local", "ray"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    srv = Server(tmp_path_factory.mktemp(request.param), request.param)
    try:
        yield srv, srv.wait_up(300 if request.param == "ray" else 60)
    finally:
        srv.stop()


def _wait(c: Client, job: str, phases: set[str], timeout: float = 240) -> dict[str, object]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = c.job(job)
        if j["phase"] in phases:
            return j
        time.sleep(0.3)
    raise AssertionError(f"{job} is {c.job(job)['phase']}, not in {phases}")


def test_a_members_job_reaches_nothing_that_is_not_its_own(server: tuple[Server, str]) -> None:
    srv, admin = server
    with Client(srv.url, admin) as c:
        attacker = c.create_user("mallory", "member-user", "huaxia-cloud")["token"]
        victim = c.create_user("victor", "member-user", "pengcheng-lab")["token"]
    with Client(srv.url, victim) as v:
        v.submit(
            {
                "id": "pengcheng-lab-victim",
                "member": "pengcheng-lab",
                "accelerators": "Ascend910B:1",
                "entrypoint": VICTIM,
            }
        )
        _wait(v, "pengcheng-lab-victim", {"RUNNING"})
        time.sleep(0.5)  # its checkpoint is written
    with Client(srv.url, attacker) as a:
        env = {
            "STATE": str(srv.state.resolve()),
            "SERVER_PID": str(srv.proc.pid),
            "VICTIM": "pengcheng-lab-victim",
            "HOST_TMP": f"{os.stat('/tmp').st_dev}:{os.stat('/tmp').st_ino}",
            "RAY_DASHBOARD": _ray_dashboard(srv.proc.pid),
        }
        a.submit(
            {
                "id": "huaxia-cloud-attack",
                "member": "huaxia-cloud",
                "accelerators": "H800:1",
                "entrypoint": ATTACK,
                "runtime_env": {"env_vars": env},
            }
        )
        _wait(a, "huaxia-cloud-attack", {"SUCCEEDED", "FAILED"})
        out = a.logs("huaxia-cloud-attack")[0].decode()
        # another member's job is not even there for it
        with pytest.raises(ApiError) as info:
            a.logs("pengcheng-lab-victim")
        assert info.value.status in (403, 404)
    print(out)
    results = {
        line[4:].rsplit(": ", 1)[0]: line.rsplit(": ", 1)[1]
        for line in out.splitlines()
        if line.startswith("TRY ")
    }
    assert "attack done" in out, out
    assert sorted(results) == sorted(ATTEMPTS), out
    escaped = [what for what, how in results.items() if how != "blocked"]
    assert escaped == [], out
    assert not (srv.state / "pwned").exists() and not Path("/tmp/pwned-attack").exists()
    with Client(srv.url, victim) as v:
        done = _wait(v, "pengcheng-lab-victim", {"SUCCEEDED", "FAILED"})
        assert done["phase"] == "SUCCEEDED", v.logs("pengcheng-lab-victim")[0]
        assert b"victim survived" in v.logs("pengcheng-lab-victim")[0]


def listening(pids: set[int]) -> list[str]:
    """The addresses that the processes ``pids`` listen on (TCP, from /proc)."""
    inodes: dict[str, int] = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes[link[8:-1]] = pid
        except OSError:
            continue
    out = []
    for table, family in (("tcp", 4), ("tcp6", 6)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:  # 0A: LISTEN
                continue
            hexaddr, port = f[1].split(":")
            raw = bytes.fromhex(hexaddr)
            if family == 4:
                addr = ".".join(str(b) for b in raw[::-1])
            else:  # four little-endian words
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                addr = ipaddress.IPv6Address(words).compressed
            out.append(f"{addr}:{int(port, 16)}")
    return out


def _loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr.rsplit(":", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def test_every_port_the_server_and_its_cluster_open_is_on_loopback(
    server: tuple[Server, str],
) -> None:
    srv, _ = server
    pids = {srv.proc.pid, *_descendants(srv.proc.pid)}
    addrs = listening(pids)
    assert addrs, "found no listening socket at all (the server's own, at least)"
    assert [a for a in addrs if not _loopback(a)] == [], addrs
