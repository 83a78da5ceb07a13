"""The hub's dashboard pages, through real sessions: a repo's page for those who may read it
only, its card rendered with nothing of its HTML let through."""

from __future__ import annotations

import base64
import json

from ..stack import Stack
from ..ui.test_pages_matrix import session

CARD = (
    "---\nlicense: apache-2.0\n---\n# charlm\n\nA *byte-level* model. "
    "<script>alert(1)</script> [paper](https://example.org/p) [bad](javascript:alert(1))\n\n"
    "- trained on `tang300`\n- federated\n\n```\nsuanli hub download lab/charlm w.bin\n```\n"
)


def _commit(stack: Stack, repo: str, files: dict[str, bytes]) -> None:
    c = stack.client("lab-user")
    body = json.dumps({"key": "header", "value": {"summary": "add"}}) + "\n"
    for path, data in files.items():
        value = {"content": base64.b64encode(data).decode(), "path": path}
        body += json.dumps({"key": "file", "value": value}) + "\n"
    r = c.http.post(f"/api/models/{repo}/commit/main", content=body.encode())
    assert r.status_code == 200, r.text


def test_repo_pages_follow_visibility_and_render_the_card_safely(stack: Stack) -> None:
    lab = stack.client("lab-user")
    lab.hub_create("lab/charlm", visibility="members")
    lab.hub_visibility("lab/charlm", "private")
    _commit(stack, "lab/charlm", {"README.md": CARD.encode(), "w.bin": b"\0" * 2048})
    lab.hub_visibility("lab/charlm", "members", ["corp"])
    for user, sees in [
        ("lab-user", True),
        ("corp-user", True),
        ("startup-user", False),
        ("admin", True),
        ("viewer", False),
    ]:
        with session(stack, user) as web:
            listing = web.get("/ui/hub").text
            page = web.get("/ui/hub/model/lab/charlm")
        assert ("lab/charlm" in listing) == sees, user
        assert page.status_code == (200 if sees else 404), (user, page.status_code)
    with session(stack, "corp-user") as web:
        html = web.get("/ui/hub/model/lab/charlm").text
    assert "<h2>charlm</h2>" in html and "<li>trained on <code>tang300</code></li>" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert 'href="https://example.org/p"' in html and 'href="javascript' not in html
    assert "apache-2.0" in html and "w.bin" in html and "2,048" in html
    assert 'href="/lab/charlm/resolve/' in html
