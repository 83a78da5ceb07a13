"""The hub's downloads against a plain static file server, in the same run (issue 16).

1. A real ``suanli server``; a file of ``--size-mib`` random bytes uploaded to a model repo
   through the SDK (a commit with the file inline, as the Hugging Face client sends it);
   Python's ``http.server`` serving the same file from a directory.
2. The same client (the standard library's HTTP, 1 MiB reads, bytes counted and hashed)
   downloads it from each server in turn, ``--rounds`` times: MiB/s, median and each.
3. The server's resident memory (``/proc/PID/status``) sampled every 50 ms: before, and the
   most during the upload and during each download, for the big file and for a small one (it
   must not grow with the file).
4. ``--clients`` Hugging Face clients at once, each ``snapshot_download`` of a repo of several
   files into its own cache: errors, and every file's sha256 against the source.

    uv run python benchmarks/bench_hub.py [--size-mib 1024] [--rounds 3] [--clients 20]

Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live import free_port, spawn_server, stop, wait_up  # noqa: E402

from suanli.sdk.client import Client  # noqa: E402


class Rss:
    """The peak resident memory of a process between ``reset`` and ``peak``."""

    def __init__(self, pid: int) -> None:
        self.pid, self.high, self.stopped = pid, 0, False
        threading.Thread(target=self._watch, daemon=True).start()

    def now(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def _watch(self) -> None:
        while not self.stopped:
            self.high = max(self.high, self.now())
            time.sleep(0.05)

    def reset(self) -> int:
        self.high = self.now()
        return self.high


def random_file(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 24))
            f.write(chunk)
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def fetch(port: int, path: str, token: str | None) -> tuple[float, int, str]:
    """Seconds, bytes and sha256 of one GET, read 1 MiB at a time."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    began = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    answer = conn.getresponse()
    assert answer.status == 200, (answer.status, answer.read()[:300])
    h, n = hashlib.sha256(), 0
    while chunk := answer.read(1 << 20):
        h.update(chunk)
        n += len(chunk)
    seconds = time.perf_counter() - began
    conn.close()
    return seconds, n, h.hexdigest()


def emit(**fields: object) -> None:
    print(json.dumps({"bench": "hub", **fields}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=20)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="suanli-bench-hub-"))
    port, static_port = free_port(), free_port()
    server = spawn_server(tmp / "state", port, 1.0, None, "--sandbox", "none")
    static: subprocess.Popen[bytes] | None = None
    try:
        url = f"http://127.0.0.1:{port}"
        wait_up(url, server)
        token = (tmp / "state" / "admin-token").read_text().strip()
        rss = Rss(server.pid)
        files = tmp / "files"
        files.mkdir()
        sizes = {"big.bin": args.size_mib << 20, "small.bin": 16 << 20}
        digests = {name: random_file(files / name, size) for name, size in sizes.items()}
        with Client(url, token, timeout=3600) as c:
            member = c.members()[0]["id"]
            repo = f"{member}/bench"
            c.hub_create(repo)
            for name, size in sizes.items():
                before = rss.reset()
                began = time.perf_counter()
                c.hub_upload(repo, {name: files / name})
                emit(
                    step="upload",
                    file=name,
                    mib=size >> 20,
                    seconds=round(time.perf_counter() - began, 2),
                    rss_before_mib=before >> 20,
                    rss_peak_mib=rss.high >> 20,
                )
        static = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(static_port), "--bind", "127.0.0.1"],
            cwd=files,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        rates: dict[str, list[float]] = {"suanli": [], "http.server": []}
        for r in range(args.rounds):
            for name in ("small.bin", "big.bin"):
                for who, p, path, tok in (
                    ("suanli", port, f"/{repo}/resolve/main/{name}", token),
                    ("http.server", static_port, f"/{name}", None),
                ):
                    before = rss.reset()
                    seconds, n, digest = fetch(p, path, tok)
                    assert n == sizes[name] and digest == digests[name], (who, name)
                    mib_s = n / seconds / (1 << 20)
                    if name == "big.bin":
                        rates[who].append(mib_s)
                    emit(
                        step="download",
                        round=r + 1,
                        server=who,
                        file=name,
                        mib_per_s=round(mib_s, 1),
                        **(
                            {"rss_before_mib": before >> 20, "rss_peak_mib": rss.high >> 20}
                            if who == "suanli"
                            else {}
                        ),
                    )
        ratio = statistics.median(rates["suanli"]) / statistics.median(rates["http.server"])
        emit(
            step="download_median",
            suanli_mib_per_s=round(statistics.median(rates["suanli"]), 1),
            static_mib_per_s=round(statistics.median(rates["http.server"]), 1),
            ratio=round(ratio, 3),
            target=">= 0.8",
        )
        concurrent(url, token, repo, tmp, args.clients)
        rss.stopped = True
    finally:
        if static is not None:
            static.terminate()
            static.wait()
        stop(server)


def concurrent(url: str, token: str, member_repo: str, tmp: Path, clients: int) -> None:
    """``clients`` Hugging Face clients downloading one snapshot at once."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    from huggingface_hub import snapshot_download

    member = member_repo.split("/", maxsplit=1)[0]
    repo = f"{member}/snapshot"
    src = tmp / "snapshot"
    src.mkdir()
    want = {f"part-{i}.bin": random_file(src / f"part-{i}.bin", (i + 1) << 20) for i in range(8)}
    (src / "config.json").write_text('{"parts": 8}')
    want["config.json"] = hashlib.sha256(b'{"parts": 8}').hexdigest()
    with Client(url, token) as c:
        c.hub_create(repo)
        c.hub_upload(repo, {name: src / name for name in want})

    def one(i: int) -> int:
        got = Path(snapshot_download(repo, endpoint=url, token=token, cache_dir=tmp / f"cache-{i}"))
        bad = 0
        for name, digest in want.items():
            bad += hashlib.sha256((got / name).read_bytes()).hexdigest() != digest
        return bad

    began = time.perf_counter()
    errors, bad = 0, 0
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(one, i) for i in range(clients)]:
            try:
                bad += future.result()
            except Exception as exc:  # (counted and shown: the figure is how many)
                errors += 1
                print(f"client error: {exc}", file=sys.stderr)
    total = sum((i + 1) << 20 for i in range(8)) * clients
    emit(
        step="concurrent_snapshots",
        clients=clients,
        files_each=len(want),
        errors=errors,
        mismatched_files=bad,
        seconds=round(time.perf_counter() - began, 2),
        mib_total=total >> 20,
    )


if __name__ == "__main__":
    main()
