"""The first process of a federated run's parts, as the service runs them: standard library
only, run by the Python of Flower's own environment inside the run's sandbox (where it is
mounted read-only at :data:`suanli.executors.sandbox.FLOWER_DRIVER`).

``link``: the run's SuperLink and ``flwr run``. It writes the run's certificates (from its
sealed secrets) to its private ``/tmp``, starts the SuperLink on ``SUANLI_FLOWER_ADDRESS``
with its database in the checkpoint directory and SuperNode authentication on, registers each
participant's public key, then submits the app (``SUANLI_FLOWER_APP`` in the working
directory) and streams its log. Each round the app reports (``progress.jsonl`` in its output
directory) is printed as one ``suanli-round {json}`` line, and the final model as one
``suanli-model {json}`` line with its lineage written beside it: the service reads both from
the run's output. With ``SUANLI_FLOWER_PUBLISH`` (the job's ``publish``), the model, its
metrics and its lineage are then committed to that hub repo with the run's token
(``HF_ENDPOINT``, ``HF_TOKEN``), so that the revision's lineage names the run; the commit's id
is in the model line (or, if the hub refused, the reason in a note). It exits with ``flwr
run``'s code, or 1 with the reason when the SuperLink dies.

``node``: one participant's SuperNode. It writes the run's authority and the participant's
private key to its private ``/tmp``, waits for the SuperLink to answer, and keeps a
``flower-supernode`` dialling it with its dataset's directory as node config ``data-path``: one
that exits is started again (same key: it rejoins as itself) until the part is stopped.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

#: how long the SuperLink may take to listen
LINK_START_S = 300.0
ROUND_LINE = "suanli-round"
MODEL_LINE = "suanli-model"


def _say(*parts: str) -> None:
    print("suanli:", *parts, flush=True)


def _need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        _say(f"{name} is not set")
        sys.exit(2)
    return value


def _secret_file(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text if text.endswith("\n") else text + "\n")
    return path


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def _bin(name: str) -> str:
    return str(Path(sys.prefix) / "bin" / name)


def _environ(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("SUANLI_FLOWER_") and name not in ("SUANLI_FLOWER_RUN",):
            del env[name]  # (the keys stay in files only this run's user can read)
    env.update(
        PATH=f"{Path(sys.prefix) / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
        HOME=str(home),
        FLWR_HOME=str(home),
    )
    return env


def _tail(path: Path, n: int = 800) -> str:
    try:
        return path.read_bytes()[-n:].decode(errors="replace").strip()
    except OSError:
        return ""


def _rounds(progress: Path, seen: int) -> int:
    """Print the app's rounds reported since line ``seen``; returns the lines read."""
    try:
        lines = progress.read_text().splitlines()
    except OSError:
        return seen
    for line in lines[seen:]:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        print(ROUND_LINE, json.dumps(entry, sort_keys=True), flush=True)
    return max(seen, len(lines))


def _register(pub: Path, home: Path, env: dict[str, str], tries: int = 10) -> str | None:
    """Register a SuperNode's public key with the SuperLink (its Control API may answer a
    moment after its port does: tried again); None once done, else what ``flwr`` said."""
    said = ""
    for k in range(tries):
        r = subprocess.run(
            [_bin("flwr"), "supernode", "register", str(pub), "run", "--format", "json"],
            cwd=home,
            env=env,
            capture_output=True,
            check=False,
            timeout=300,
        )
        if r.returncode == 0:
            return None
        text = (r.stdout + r.stderr).decode(errors="replace")[-800:].strip()
        said = f"exit {r.returncode}: {text or '(nothing said)'}"
        time.sleep(min(10.0, 1.0 + k))
    return said


def link() -> int:
    tmp = Path(os.environ.get("TMPDIR") or "/tmp")
    ckpt = Path(_need("SUANLI_CHECKPOINT_DIR"))
    work = Path(os.environ.get("SUANLI_WORK_DIR") or os.getcwd())
    pki = tmp / "pki"
    pki.mkdir(mode=0o700, exist_ok=True)
    ca = _secret_file(pki / "ca.pem", _need("SUANLI_FLOWER_CA"))
    cert = _secret_file(pki / "link.pem", _need("SUANLI_FLOWER_LINK_CERT"))
    key = _secret_file(pki / "link.key", _need("SUANLI_FLOWER_LINK_KEY"))
    nodes: dict[str, str] = json.loads(_need("SUANLI_FLOWER_NODES"))
    host, port = _need("SUANLI_FLOWER_ADDRESS").rsplit(":", 1)
    app = (work / _need("SUANLI_FLOWER_APP")).resolve()
    config: dict[str, Any] = json.loads(_need("SUANLI_FLOWER_RUN_CONFIG"))
    lineage: dict[str, Any] = json.loads(os.environ.get("SUANLI_FLOWER_LINEAGE") or "{}")
    output = ckpt / "output"
    output.mkdir(parents=True, exist_ok=True)
    progress = output / "progress.jsonl"
    progress.unlink(missing_ok=True)  # (a run started again starts from its first round)
    home = tmp / "flwr"
    home.mkdir(exist_ok=True)
    env = _environ(home)
    log = ckpt / "superlink.log"
    with log.open("ab") as out:
        superlink = subprocess.Popen(
            [
                _bin("flower-superlink"),
                f"--ssl-ca-certfile={ca}",
                f"--ssl-certfile={cert}",
                f"--ssl-keyfile={key}",
                "--enable-supernode-auth",
                "--disable-runtime-dependency-installation",
                f"--database={ckpt / 'superlink.db'}",
                f"--host={host}",
                f"--port={port}",
            ],
            cwd=home,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    deadline = time.monotonic() + LINK_START_S
    while not _listening(host, int(port)):
        if superlink.poll() is not None or stopping or time.monotonic() > deadline:
            why = "it exited" if superlink.poll() is not None else "it did not listen in time"
            _say(f"the SuperLink did not start ({why}): {_tail(log)}")
            superlink.kill()
            return 1
        time.sleep(0.5)
    _say(f"the SuperLink listens on {host}:{port}")
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "run"\n\n[superlink.run]\n'
        f'address = "{host}:{port}"\nroot-certificates = {json.dumps(str(ca))}\n'
    )
    for name, public in sorted(nodes.items()):
        pub = _secret_file(pki / f"{name}.pub", public)
        said = _register(pub, home, env)
        if said is not None:
            _say(f"registering {name}'s SuperNode failed: {said}")
            superlink.kill()
            return 1
    _say(f"{len(nodes)} SuperNode keys registered")
    run_config = home / "run-config.toml"
    values = {**config, "output-dir": str(output)}
    run_config.write_text("".join(f"{k} = {_toml(v)}\n" for k, v in values.items()))
    flwr = subprocess.Popen(
        [_bin("flwr"), "run", str(app), "run", "--stream", f"--run-config={run_config}"],
        cwd=home,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    seen = 0
    code: int | None = None
    while code is None:
        if stopping:
            flwr.terminate()
            superlink.terminate()
            flwr.wait()
            superlink.wait()
            return 143
        if superlink.poll() is not None:
            _say(f"the SuperLink exited ({superlink.returncode}): {_tail(log)}")
            flwr.kill()
            return 1
        seen = _rounds(progress, seen)
        code = flwr.poll()
        time.sleep(0.5)
    seen = _rounds(progress, seen)
    superlink.terminate()
    try:
        superlink.wait(timeout=10)
    except subprocess.TimeoutExpired:
        superlink.kill()
    model = output / "model.npz"
    if code == 0 and model.exists():
        digest = hashlib.sha256(model.read_bytes()).hexdigest()
        lineage = {**lineage, "model": {"file": "model.npz", "sha256": digest}, "rounds": seen}
        (output / "lineage.json").write_text(json.dumps(lineage, indent=1, sort_keys=True))
        entry: dict[str, Any] = {
            "file": "output/model.npz",
            "sha256": digest,
            "bytes": model.stat().st_size,
        }
        repo = os.environ.get("SUANLI_FLOWER_PUBLISH")
        if repo:
            files = [output / n for n in ("model.npz", "metrics.json", "lineage.json")]
            entry["published"] = _publish(repo, [f for f in files if f.exists()], seen)
        print(MODEL_LINE, json.dumps(entry, sort_keys=True), flush=True)
    elif code == 0:
        _say("the app ended without writing output/model.npz")
        return 1
    return code


def _publish(repo: str, files: list[Path], rounds: int) -> dict[str, str] | None:
    """Commit ``files`` to the hub's model repo ``repo`` (its ``main``) with the run's token,
    as the Hugging Face client's commit does: ``{repo, commit}``, or None with the reason
    said. (Each file is read whole: the demo's model is small.)"""
    endpoint, token = os.environ.get("HF_ENDPOINT"), os.environ.get("HF_TOKEN")
    if not endpoint or not token:
        _say(f"not published to {repo}: this server gives runs no hub")
        return None
    run = os.environ.get("SUANLI_FLOWER_RUN", "")
    header = {"summary": f"federated run {run}: {rounds} rounds", "description": ""}
    lines = [{"key": "header", "value": header}]
    for f in files:
        content = base64.b64encode(f.read_bytes()).decode()
        lines.append(
            {"key": "file", "value": {"path": f.name, "content": content, "encoding": "base64"}}
        )
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    request = urllib.request.Request(
        f"{endpoint.rstrip('/')}/api/models/{repo}/commit/main",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as answer:
            commit = str(json.load(answer)["commitOid"])
    except urllib.error.HTTPError as exc:
        _say(f"not published to {repo}: {exc.code} {exc.read()[:300].decode(errors='replace')}")
        return None
    except (OSError, ValueError, KeyError) as exc:
        _say(f"not published to {repo}: {exc}")
        return None
    _say(f"published to {repo} at {commit}")
    return {"repo": repo, "commit": commit}


def node() -> int:
    """The participant's SuperNode, started once its SuperLink answers and started again
    whenever it exits (it rejoins as itself: same key), until this part is stopped."""
    tmp = Path(os.environ.get("TMPDIR") or "/tmp")
    pki = tmp / "pki"
    pki.mkdir(mode=0o700, exist_ok=True)
    ca = _secret_file(pki / "ca.pem", _need("SUANLI_FLOWER_CA"))
    key = _secret_file(pki / "node.key", _need("SUANLI_FLOWER_KEY"))
    address = _need("SUANLI_FLOWER_LINK")
    host, port = address.rsplit(":", 1)
    dataset = _need("SUANLI_FLOWER_DATASET")
    data = Path(_need("SUANLI_DATA_DIR")) / dataset
    if not data.is_dir():
        _say(f"dataset {dataset} is not at this site ({data} is missing)")
        return 2
    member = _need("SUANLI_FLOWER_PARTICIPANT")
    config = f"data-path={json.dumps(str(data))} participant={json.dumps(member)}"
    home = tmp / "flwr"
    home.mkdir(exist_ok=True)
    env = _environ(home)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    waited = False
    pause = 1.0
    while not stopping:
        if not _listening(host, int(port)):
            if not waited:
                _say(f"waiting for the SuperLink at {address}")
                waited = True
            time.sleep(1.0)
            continue
        supernode = subprocess.Popen(
            [
                _bin("flower-supernode"),
                f"--superlink={address}",
                f"--root-certificates={ca}",
                f"--auth-supernode-private-key={key}",
                f"--node-config={config}",
                "--host=127.0.0.1",
                f"--port={_free_port('127.0.0.1')}",
            ],
            cwd=home,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        started = time.monotonic()
        while supernode.poll() is None and not stopping:
            time.sleep(0.5)
        if stopping:
            supernode.terminate()
            try:
                supernode.wait(timeout=10)
            except subprocess.TimeoutExpired:
                supernode.kill()
            break
        pause = 1.0 if time.monotonic() - started > 60 else min(30.0, pause * 2)
        _say(f"the SuperNode exited ({supernode.returncode}); starting it again in {pause:.0f} s")
        time.sleep(pause)
    return 143


def main() -> int:
    if sys.argv[1:] == ["link"]:
        return link()
    if sys.argv[1:] == ["node"]:
        return node()
    print("usage: flower_driver.py link|node", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
