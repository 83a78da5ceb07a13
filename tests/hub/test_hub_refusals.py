"""What the hub refuses, over raw HTTP (what a hostile or broken client can send): each
refusal names the problem, and nothing of a refused commit is left, visible or on disk."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ..stack import Stack

CARD = b"---\nlicense: mit\n---\n"


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {stack.tokens['lab-user']}"}
    ) as c:
        yield c


def _ndjson(*lines: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(x).encode() + b"\n" for x in lines)


def _file(path: str, data: bytes) -> dict[str, Any]:
    value = {"content": base64.b64encode(data).decode(), "path": path, "encoding": "base64"}
    return {"key": "file", "value": value}


HEADER = {"key": "header", "value": {"summary": "s", "description": ""}}


def _head(http: httpx.Client, repo: str = "lab/r") -> str:
    return str(http.get(f"/api/models/{repo}/revision/main").json()["sha"])


def _create(http: httpx.Client, name: str = "r", visibility: str = "private") -> None:
    r = http.post(
        "/api/repos/create", json={"name": name, "organization": "lab", "visibility": visibility}
    )
    assert r.status_code == 200, r.text


def wait_for(condition: Any, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def _nothing_left(stack: Stack) -> None:
    assert list(stack.hub.central.incoming.iterdir()) == []


@pytest.mark.parametrize(
    "path", ["../x", "/etc/passwd", "a/../../b", "a//b", ".git/config", "a\\b", "a/./b", ""]
)
def test_paths_that_escape_or_are_malformed_are_refused(
    stack: Stack, http: httpx.Client, path: str
) -> None:
    _create(http)
    before = _head(http)
    r = http.post("/api/models/lab/r/commit/main", content=_ndjson(HEADER, _file(path, b"x")))
    assert r.status_code == 422 and "commit line 2" in r.text, r.text
    assert _head(http) == before
    _nothing_left(stack)


def test_traversal_in_urls_and_repo_names(stack: Stack, http: httpx.Client) -> None:
    _create(http)
    for url in ("/lab/r/resolve/main/..%2F..%2Fsuanli.db", "/lab/r/resolve/main/a/%2e%2e/b"):
        r = http.get(url)
        assert r.status_code in (404, 422) and "suanli" not in r.headers.get("content-type", "")
    for name in ("..", "a/b", ".git", "x.git", "a" * 97, "-x"):
        r = http.post("/api/repos/create", json={"name": name, "organization": "lab"})
        assert r.status_code == 422 and "name" in r.text, (name, r.text)
    r = http.post("/api/repos/create", json={"name": "x", "organization": "../lab"})
    assert r.status_code == 422


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not json\n", "not JSON"),
        (_ndjson({"key": "file", "value": {}}), "first line is the header"),
        (_ndjson(HEADER), "nothing to commit"),
        (_ndjson(HEADER, {"key": "rename", "value": {"path": "a"}}), "not an operation"),
        (
            _ndjson(HEADER, {"key": "file", "value": {"content": "!!!!", "path": "a"}}),
            "not base64",
        ),
        (_ndjson(HEADER, _file("a", b"x" * 300))[:-100], "ended inside"),
        (_ndjson(HEADER, {"key": "lfsFile", "value": {"path": "a", "oid": "0" * 64}}), "may read"),
        (_ndjson(HEADER, {"key": "deletedFile", "value": {"path": "nope"}}), "no such file"),
    ],
)
def test_malformed_commits_are_refused_whole(
    stack: Stack, http: httpx.Client, body: bytes, says: str
) -> None:
    _create(http)
    before = _head(http)
    r = http.post("/api/models/lab/r/commit/main", content=body)
    assert r.status_code == 422 and says in r.text, r.text
    assert _head(http) == before
    _nothing_left(stack)


def test_oversized_files_and_bodies_are_refused(stack: Stack, http: httpx.Client) -> None:
    _create(http)
    before = _head(http)
    stack.app.state.service.hub_max_file = 1000
    try:
        r = http.post(
            "/api/models/lab/r/commit/main", content=_ndjson(HEADER, _file("a", b"x" * 1200))
        )
        assert r.status_code == 413 and "over the 1000 bytes" in r.text
        r = http.post(
            "/api/models/lab/r/commit/main", content=_ndjson(HEADER, _file("a", b"x" * 900)) * 3
        )
        assert r.status_code == 413 and "at most 2000 bytes" in r.text
    finally:
        stack.app.state.service.hub_max_file = 1 << 26
    host, port = stack.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:  # (refused before a byte is read)
        sock.sendall(
            f"POST /api/models/lab/r/commit/main HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {stack.tokens['lab-user']}\r\n"
            f"Content-Length: {1 << 40}\r\n\r\n".encode()
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 413")
    assert _head(http) == before
    _nothing_left(stack)


def test_a_client_gone_mid_upload_leaves_no_revision_and_no_file(
    stack: Stack, http: httpx.Client
) -> None:
    _create(http)
    before = _head(http)
    body = _ndjson(HEADER, _file("big.bin", b"y" * 3_000_000))
    host, port = stack.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        head = (
            f"POST /api/models/lab/r/commit/main HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {stack.tokens['lab-user']}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body[: len(body) // 2])
        # gone once the server is receiving it (its spool is there), not before
        wait_for(lambda: any(stack.hub.central.incoming.iterdir()))
    wait_for(lambda: not any(stack.hub.central.incoming.iterdir()))
    _nothing_left(stack)
    assert _head(http) == before
    r = http.post("/api/models/lab/r/commit/main", content=body)  # the retry lands whole
    assert r.status_code == 200
    assert http.get("/lab/r/resolve/main/big.bin").content == b"y" * 3_000_000


def test_a_repo_others_read_names_its_licence(stack: Stack, http: httpx.Client) -> None:
    _create(http, "open", "alliance")
    r = http.post("/api/models/lab/open/commit/main", content=_ndjson(HEADER, _file("w", b"1")))
    assert r.status_code == 422 and "README.md" in r.text and "license" in r.text
    r = http.post(
        "/api/models/lab/open/commit/main",
        content=_ndjson(HEADER, _file("README.md", CARD), _file("w", b"1")),
    )
    assert r.status_code == 200, r.text
    assert http.get("/api/models/lab/open").json()["license"] == "mit"
    _create(http, "closed")
    http.post("/api/models/lab/closed/commit/main", content=_ndjson(HEADER, _file("w", b"1")))
    r = http.put("/api/models/lab/closed/settings", json={"visibility": "public"})
    assert r.status_code == 422 and "README.md" in r.text


def test_two_commits_on_one_parent_cannot_both_land(stack: Stack, http: httpx.Client) -> None:
    _create(http)
    parent = _head(http)
    header = {"key": "header", "value": {"summary": "s", "parentCommit": parent}}
    first = http.post("/api/models/lab/r/commit/main", content=_ndjson(header, _file("a", b"1")))
    second = http.post("/api/models/lab/r/commit/main", content=_ndjson(header, _file("b", b"2")))
    assert first.status_code == 200 and second.status_code == 409, second.text
    assert _head(http) == first.json()["commitOid"]


def test_visibility_members_and_public(stack: Stack, http: httpx.Client) -> None:
    _create(http)
    http.post("/api/models/lab/r/commit/main", content=_ndjson(HEADER, _file("README.md", CARD)))
    corp = {"Authorization": f"Bearer {stack.tokens['corp-user']}"}
    startup = {"Authorization": f"Bearer {stack.tokens['startup-user']}"}
    assert httpx.get(f"{stack.url}/lab/r/resolve/main/README.md", headers=corp).status_code == 404
    r = http.put(
        "/api/models/lab/r/settings", json={"visibility": "members", "sharedWith": ["corp"]}
    )
    assert r.status_code == 200, r.text
    assert httpx.get(f"{stack.url}/lab/r/resolve/main/README.md", headers=corp).status_code == 200
    assert (
        httpx.get(f"{stack.url}/lab/r/resolve/main/README.md", headers=startup).status_code == 404
    )
    assert httpx.get(f"{stack.url}/lab/r/resolve/main/README.md").status_code == 404
    r = http.put("/api/models/lab/r/settings", json={"visibility": "public"})
    assert httpx.get(f"{stack.url}/lab/r/resolve/main/README.md").content == CARD
    # only the owner's users change it
    r = httpx.put(
        f"{stack.url}/api/models/lab/r/settings", json={"visibility": "private"}, headers=corp
    )
    assert r.status_code == 403
    r = httpx.put(f"{stack.url}/api/models/lab/r/settings", json={"visibility": "private"})
    assert r.status_code == 401


def test_a_known_sha256_does_not_give_another_members_file(
    stack: Stack, http: httpx.Client
) -> None:
    secret = b"lab's private weights"
    _create(http)
    http.post("/api/models/lab/r/commit/main", content=_ndjson(HEADER, _file("w.bin", secret)))
    sha256 = hashlib.sha256(secret).hexdigest()
    corp = httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {stack.tokens['corp-user']}"}
    )
    with corp:
        made = corp.post("/api/repos/create", json={"name": "mine", "organization": "corp"})
        assert made.status_code == 200
        link = {"key": "lfsFile", "value": {"path": "stolen.bin", "algo": "sha256", "oid": sha256}}
        r = corp.post("/api/models/corp/mine/commit/main", content=_ndjson(HEADER, link))
        assert r.status_code == 422 and "that you may read" in r.text
        assert corp.get("/corp/mine/resolve/main/stolen.bin").status_code == 404
    # the owner may link its own file (a copy, as the client's CommitOperationCopy does)
    r = http.post(
        "/api/models/lab/r/commit/main",
        content=_ndjson(HEADER, {**link, "value": {**link["value"], "path": "copy.bin"}}),
    )
    assert r.status_code == 200 and http.get("/lab/r/resolve/main/copy.bin").content == secret


def test_a_card_that_breaks_the_card_schema_is_refused_before_upload(
    stack: Stack, http: httpx.Client
) -> None:
    r = http.post("/api/validate-yaml", json={"content": "---\nlicense: mit\ntags: 3\n---\n"})
    assert r.status_code == 400 and "tags" in r.json()["errors"][0]["message"]
    r = http.post("/api/validate-yaml", json={"content": "---\nlicense: mit\n---\n# ok\n"})
    assert r.status_code == 200 and r.json() == {"errors": [], "warnings": []}
    r = http.post("/api/validate-yaml", json={"content": "# no front matter\n"})
    assert r.status_code == 200 and r.json()["warnings"]
