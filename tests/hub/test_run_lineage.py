"""A job's run publishes to the hub with the run token it was handed (no user's token), from
inside its sandbox, through the Hugging Face protocol; the revision records the job, and its
lineage shows what the job read, the chips it ran on and its NU-hours from the ledger. The
token stops working when the run ends."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import httpx

from suanli.executors.local import LocalProcessExecutor
from suanli.executors.sandbox import SandboxConfig
from suanli.model.ids import JobId
from suanli.sched.policy import get_policy
from suanli.sdk.code import with_code
from suanli.service.controller import Controller

from ..stack import Stack
from ..stepping import run_until
from ..ui.test_pages_matrix import session

UPLOAD = """
import base64, json, os, urllib.request
url, token = os.environ["HF_ENDPOINT"], os.environ["HF_TOKEN"]
lines = [{"key": "header", "value": {"summary": "trained by " + os.environ["SUANLI_JOB_ID"]}},
         {"key": "file", "value": {"path": "model.bin", "content":
          base64.b64encode(b"weights of " + os.environ["SUANLI_JOB_ID"].encode()).decode()}}]
body = "".join(json.dumps(x) + "\\n" for x in lines).encode()
req = urllib.request.Request(url + "/api/models/lab/charlm/commit/main", data=body,
                             headers={"Authorization": "Bearer " + token})
print(urllib.request.urlopen(req).read().decode())
print("token", token)
"""


def test_a_run_publishes_with_its_run_token_and_the_revision_names_the_job(
    stack: Stack, shared_dir: Path, tmp_path: Path
) -> None:
    (shared_dir / "upload.py").write_text(UPLOAD)
    (shared_dir / "upload.py").chmod(0o644)
    executor = LocalProcessExecutor(tmp_path / "runs", SandboxConfig(network="host"))
    ctl = Controller(
        stack.db,
        executor,
        get_policy("alliance"),
        vault=stack.vault,
        hub_url=stack.url,
        accounting_interval_s=0.5,
    )
    lab = stack.client("lab-user")
    lab.hub_create("lab/charlm")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(shared_dir)]
    for args in (["init", "-q"], ["add", "upload.py"], ["commit", "-q", "-m", "upload"]):
        subprocess.run([*git, *args], check=True)
    head = subprocess.check_output([*git, "rev-parse", "HEAD"], text=True)
    job = {
        "id": "lab-train",
        "member": "lab",
        "accelerators": "H800:2",
        "datasets": ["lab-data"],
        "entrypoint": "python3 upload.py && sleep 1",
        "runtime_env": {"working_dir": str(shared_dir)},
    }
    lab.submit(with_code(json.dumps(job), Path.cwd()))  # (as suanli submit sends it)
    rows = run_until(ctl, stack.db, lambda r: r["lab-train"].phase in ("SUCCEEDED", "FAILED"), 120)
    log = executor.logs(JobId("lab-train"), 1).decode()
    assert rows["lab-train"].phase == "SUCCEEDED", (rows["lab-train"].reason, log)
    assert "commitOid" in log
    run_until(ctl, stack.db, lambda r: True)  # (one more step: its usage into the ledger)

    commits = lab.hub_commits("lab/charlm")
    assert commits[0]["title"] == "trained by lab-train"
    assert commits[0]["authors"][0]["user"] == "run:lab-train.1"
    found = lab.hub_lineage("lab/charlm")
    assert found["commits"][0]["job"] == "lab-train"
    (job,) = found["jobs"]
    assert job["shown"] and job["datasets"] == ["lab-data"] and job["model"] == "H800-80GB"
    assert job["nodes"] == ["lab-h800"] and job["devices"] == 2 and job["nu_hours"] > 0
    assert job["code"] == {"revision": head.strip(), "repository": None, "dirty": False}
    with session(stack, "lab-user") as web:
        page = web.get("/ui/hub/model/lab/charlm").text
    lineage = page.split('id="lineage"', 1)[1]
    assert (
        "lab-train" in lineage and "lab-data" in lineage and "H800-80GB x2 on lab-h800" in lineage
    )
    assert head.strip()[:12] in lineage
    # another member may read the repo once it is shared, but not the job's details
    lab.http.post(
        "/api/models/lab/charlm/commit/main",
        content=(
            b'{"key": "header", "value": {"summary": "card"}}\n'
            b'{"key": "file", "value": {"path": "README.md", "content": "'
            + base64.b64encode(b"---\nlicense: mit\n---\n")
            + b'"}}\n'
        ),
    )
    lab.hub_visibility("lab/charlm", "alliance")
    (seen,) = stack.client("corp-user").hub_lineage("lab/charlm")["jobs"]
    assert seen == {**seen, "job": "lab-train", "member": "lab", "shown": False, "datasets": []}
    # the run is over: its token no longer works, and a forged one never did
    token = log.split("token ", 1)[1].split()[0]
    for bad in (token, token[:-4] + "0000", "sr_lab-train.1.x"):
        r = httpx.get(
            f"{stack.url}/api/models/lab/charlm", headers={"Authorization": f"Bearer {bad}"}
        )
        assert r.status_code == 401, (bad, r.text)
    # and a run token is no key to the API
    r = httpx.get(f"{stack.url}/api/v1/jobs", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


FETCH = """
import os, urllib.error, urllib.request
url = os.environ["HF_ENDPOINT"] + "/datasets/lab/poems/resolve/main/train.txt"
req = urllib.request.Request(url, headers={"Authorization": "Bearer " + os.environ["HF_TOKEN"]})
try:
    print("got", urllib.request.urlopen(req).read().decode())
except urllib.error.HTTPError as e:
    print("refused", e.code, e.read().decode())
"""


def test_a_resident_dataset_goes_only_to_its_member_and_runs_placed_at_its_sites(
    stack: Stack, shared_dir: Path, tmp_path: Path
) -> None:
    (shared_dir / "fetch.py").write_text(FETCH)
    (shared_dir / "fetch.py").chmod(0o644)
    lab = stack.client("lab-user")
    lab.hub_create("lab/poems", kind="dataset")
    lab.http.post(
        "/api/datasets/lab/poems/commit/main",
        content=(
            b'{"key": "header", "value": {"summary": "poems"}}\n'
            b'{"key": "file", "value": {"path": "README.md", "content": "'
            + base64.b64encode(b"---\nlicense: cc0-1.0\n---\n")
            + b'"}}\n{"key": "file", "value": {"path": "train.txt", "content": "'
            + base64.b64encode("床前明月光".encode())
            + b'"}}\n'
        ),
    )
    lab.hub_residency("lab/poems", ["lab-site"])
    lab.hub_visibility("lab/poems", "alliance", kind="dataset")
    url = f"{stack.url}/datasets/lab/poems/resolve/main/train.txt"
    for user, status in [("lab-user", 200), ("corp-user", 403), ("admin", 403)]:
        r = httpx.get(url, headers={"Authorization": f"Bearer {stack.tokens[user]}"})
        assert r.status_code == status, (user, r.text)
    assert "resident at lab-site" in r.text
    bad = stack.client("corp-user").http.put(
        "/api/datasets/lab/poems/settings", json={"residentSites": []}
    )
    assert bad.status_code == 403
    bad = lab.http.put("/api/datasets/lab/poems/settings", json={"residentSites": ["corp-site"]})
    assert bad.status_code == 422 and "not a site of lab" in bad.text

    executor = LocalProcessExecutor(tmp_path / "runs", SandboxConfig(network="host"))
    ctl = Controller(
        stack.db, executor, get_policy("alliance"), vault=stack.vault, hub_url=stack.url
    )
    admin = stack.client("admin")
    for jid, member, accel in [
        ("at-lab", "startup", "H800:1"),
        ("at-corp", "corp", "Ascend910B:1"),
    ]:
        admin.submit(
            {
                "id": jid,
                "member": member,
                "accelerators": accel,
                "entrypoint": "python3 fetch.py",
                "runtime_env": {"working_dir": str(shared_dir)},
            }
        )
    ended = ("SUCCEEDED", "FAILED")
    run_until(
        ctl, stack.db, lambda r: r["at-lab"].phase in ended and r["at-corp"].phase in ended, 120
    )
    assert executor.logs(JobId("at-lab"), 1).decode().strip() == "got 床前明月光"
    out = executor.logs(JobId("at-corp"), 1).decode()
    assert out.startswith("refused 403") and "this run is placed at corp-site" in out
