"""The API served for real by uvicorn on a free loopback port, in a thread."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def spawn_server(
    state: Path,
    port: int,
    interval: float,
    db_url: str | None = None,
    *extra: str,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """A real ``suanli server`` process (its output in ``log``, or discarded; ``env``: its
    environment, or this process's)."""
    cmd = [sys.executable, "-m", "suanli", "server", "--state-dir", str(state)]
    cmd += ["--port", str(port), "--interval", str(interval), *extra]
    if db_url:
        cmd += ["--db", db_url]
    if log is None:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_up(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 120) -> None:
    """Until the server at ``url`` answers (its process, if given, must not have exited)."""
    from suanli.sdk.client import Client

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode})")
        try:
            with Client(url) as c:
                c.health()
            return
        except ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"the server at {url} did not come up")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def serving_html(html: str) -> Iterator[str]:
    """One page served at ``/`` by another origin (another site, in a browser's eyes)."""
    from fastapi.responses import HTMLResponse

    app = FastAPI()

    @app.get("/")
    def page() -> HTMLResponse:
        return HTMLResponse(html)

    with serving(app) as url:
        yield f"{url}/"
