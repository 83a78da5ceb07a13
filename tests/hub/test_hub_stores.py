"""Where the hub keeps a file: a resident dataset's bytes in its sites' stores only, moved
there (and back) when its residency changes, never lost, and never taken out of residency by
a link to them."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import httpx
import pytest

from suanli.hub.stores import Stores

from ..stack import Stack

CARD = b"---\nlicense: cc0-1.0\n---\n"


def _commit(http: httpx.Client, repo: str, files: dict[str, bytes]) -> httpx.Response:
    lines = [{"key": "header", "value": {"summary": "s"}}]
    for path, data in files.items():
        value = {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}
        lines.append({"key": "file", "value": value})
    body = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    return http.post(f"/api/{repo}/commit/main", content=body)


def _where(stores: Stores, data: bytes) -> set[str]:
    sha = hashlib.sha256(data).hexdigest()
    out = {"central"} if stores.central.has(sha) else set()
    sites = stores.root / "sites"
    if sites.is_dir():
        out |= {d.name for d in sites.iterdir() if stores.site(d.name).has(sha)}
    return out


def _user(stack: Stack, name: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {stack.tokens[name]}"}
    return httpx.Client(base_url=stack.url, headers=headers)


def test_a_resident_datasets_files_live_only_in_its_sites_stores(stack: Stack) -> None:
    poems, shared = "床前明月光".encode(), b"bytes a public repo holds as well"
    with _user(stack, "lab-user") as lab:
        for kind, name in [("dataset", "poems"), ("model", "open")]:
            r = lab.post(
                "/api/repos/create",
                json={"name": name, "organization": "lab", "type": kind, "visibility": "public"},
            )
            assert r.status_code == 200, r.text
        assert _commit(lab, "models/lab/open", {"README.md": CARD, "w.bin": shared}).is_success
        # committed before the rule: in the control plane's store
        r = _commit(lab, "datasets/lab/poems", {"README.md": CARD, "a.txt": poems, "b": shared})
        assert r.status_code == 200, r.text
        assert _where(stack.hub, poems) == {"central"}
        r = lab.put("/api/datasets/lab/poems/settings", json={"residentSites": ["lab-site"]})
        assert r.status_code == 200, r.text
        # moved to the site; bytes a repo that is not resident holds stay central as well
        assert _where(stack.hub, poems) == {"lab-site"}
        assert _where(stack.hub, CARD) == _where(stack.hub, shared) == {"central", "lab-site"}
        assert lab.get("/datasets/lab/poems/resolve/main/a.txt").content == poems
        # committed under the rule: the body and its files never reach the central store
        later = b"a file written at the site"
        r = _commit(lab, "datasets/lab/poems", {"c.txt": later})
        assert r.status_code == 200, r.text
        assert _where(stack.hub, later) == {"lab-site"}
        assert list(stack.hub.central.incoming.iterdir()) == []
        assert lab.get("/datasets/lab/poems/resolve/main/c.txt").content == later

        # another member reading the repo's metadata cannot link its bytes out of the site
        with _user(stack, "corp-user") as corp:
            assert corp.get("/api/datasets/lab/poems/revision/main").status_code == 200
            assert corp.post("/api/repos/create", json={"name": "m", "organization": "corp"})
            link = {"path": "x", "algo": "sha256", "oid": hashlib.sha256(poems).hexdigest()}
            body = json.dumps({"key": "header", "value": {"summary": "s"}}) + "\n"
            body += json.dumps({"key": "lfsFile", "value": link}) + "\n"
            r = corp.post("/api/models/corp/m/commit/main", content=body)
            assert r.status_code == 422 and "that you may read" in r.text
        assert _where(stack.hub, poems) == {"lab-site"}

        # the rule lifted: every file back in the control plane's store, none left at the site
        r = lab.put("/api/datasets/lab/poems/settings", json={"residentSites": []})
        assert r.status_code == 200, r.text
        assert _where(stack.hub, poems) == _where(stack.hub, later) == {"central"}
        assert lab.get("/datasets/lab/poems/resolve/main/c.txt").content == later


def test_a_blob_is_copied_between_stores_whole_and_checked(tmp_path: Path) -> None:
    stores = Stores(tmp_path / "hub", {"far": tmp_path / "mounted"})
    blob = stores.central.put(b"x" * 3_000_000)
    stores.place(blob.sha256, ["far", "near"])
    assert stores.site("far").path(blob.sha256).read_bytes() == b"x" * 3_000_000
    assert stores.site("far").root == tmp_path / "mounted"
    assert stores.find(blob.sha256, ["near", "far"], prefer=["far"]).is_relative_to(
        tmp_path / "mounted"
    )
    # a copy that does not hold the bytes it is named by is refused, and leaves nothing
    fake = stores.central.path("ab" * 32)
    fake.parent.mkdir(exist_ok=True)
    fake.write_bytes(b"not those bytes")
    with pytest.raises(ValueError, match="does not hold"):
        stores.place("ab" * 32, ["far"])
    assert not stores.site("far").has("ab" * 32)
    assert list(stores.site("far").incoming.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        stores.place("cd" * 32, ["far"])
    with pytest.raises(ValueError, match="not a site id"):
        stores.site("../x")
    assert stores.clean_incoming() == 0
