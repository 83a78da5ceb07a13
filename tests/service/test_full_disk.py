"""A real server whose state directory's disk fills up (a small tmpfs made by the test): writes
answer 503 and the health check turns red, nothing half-stored, a run whose end could not be
written is not restarted forever, and everything works again once there is room."""

from __future__ import annotations

import contextlib
import errno
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from suanli.sdk.client import ApiError, Client

from ..live import free_port, spawn_server, stop, wait_up

pytestmark = pytest.mark.slow  # real servers, clusters or browsers: pytest -m "not slow" skips them


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "disk"
    where.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m,mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path) -> None:
    """Write zeros until the disk is full."""
    block = b"\0" * (1 << 20)
    with path.open("wb", buffering=0) as f:
        while True:
            try:
                f.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        with contextlib.suppress(OSError):  # the last few bytes
            while True:
                f.write(b"\0" * 512)


def job(i: int, entrypoint: str = "echo hi") -> dict[str, str]:
    return {
        "id": f"d{i}",
        "member": "huaxia-cloud",
        "accelerators": "H800:1",
        "entrypoint": entrypoint,
    }


def test_a_full_disk_answers_503_turns_health_red_and_recovers(small_disk: Path) -> None:
    state = small_disk / "state"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = spawn_server(state, port, 0.3)
    try:
        wait_up(url, server)
        token = (state / "admin-token").read_text().strip()
        with Client(url, token) as c:
            c.submit(job(0, "sleep 3; echo done"))
            deadline = time.time() + 60
            while c.job("d0")["phase"] != "RUNNING":
                assert time.time() < deadline, c.job("d0")
                time.sleep(0.1)
            filler = small_disk / "filler"
            fill(filler)
            # a batch big enough that the database must grow
            big = {"jobs": [job(i, "echo " + "x" * 2000) for i in range(1, 400)]}
            with pytest.raises(ApiError) as err:
                c.submit(big)
            assert err.value.status == 503, err.value
            assert "full" in err.value.message
            health = c.http.get("/healthz")
            assert health.status_code == 503 and "full" in health.json()["problem"]
            time.sleep(4)  # d0 ends meanwhile: its exit status cannot be written
            filler.unlink()
            assert c.jobs(limit=1000)["total"] == 1  # nothing of the refused batch was kept
            c.submit(job(400))
            deadline = time.time() + 30  # the controller's next pass clears its own failure
            while (health := c.http.get("/healthz")).status_code != 200:
                assert time.time() < deadline, health.json()
                time.sleep(0.1)
            deadline = time.time() + 120
            while not all(c.job(j)["phase"] in ("SUCCEEDED", "FAILED") for j in ("d0", "d400")):
                assert time.time() < deadline, [c.job(j) for j in ("d0", "d400")]
                time.sleep(0.2)
            assert c.job("d400")["phase"] == "SUCCEEDED"
            assert c.job("d0")["attempt"] <= 4  # run again at most a few times, then given up
    finally:
        stop(server)
