"""Every dashboard page for every role, through real sessions: what each role may open, and
that what a page shows follows the same rules as the API (another member's job is not there,
its log is not offered, its queue entries are not listed)."""

from __future__ import annotations

import time

import httpx
import pytest

from suanli.service.auth import open_session

from ..stack import USERS, Stack, job

#: the pages every signed-in user may open
PAGES = ["/ui/", "/ui/queue", "/ui/jobs", "/ui/members", "/ui/reports", "/ui/ledger", "/ui/hub"]


def session(stack: Stack, user: str) -> httpx.Client:
    with stack.db.session() as s:
        web = open_session(s, stack.tokens[user], time.time())
    return httpx.Client(base_url=stack.url, cookies={"suanli_session": web.id})


@pytest.fixture
def jobs(stack: Stack) -> Stack:
    admin = stack.client("admin")
    admin.submit(job("lab-j", "lab"))
    admin.submit(job("corp-j", "corp", "Ascend910B:1"))
    admin.submit(job("lab-wait", "lab", "H800:8"))
    admin.submit(job("lab-wait2", "lab", "H800:8"))
    return stack


@pytest.mark.parametrize("user", sorted(USERS))
def test_every_page_opens_for_every_role_and_shows_what_the_role_may_see(
    jobs: Stack, user: str
) -> None:
    role, member = USERS[user]
    sees_all = role in ("alliance-admin", "viewer")
    with session(jobs, user) as c:
        for path in PAGES:
            r = c.get(path)
            assert r.status_code == 200 and "<h1>" in r.text, (user, path, r.status_code)
        listed = c.get("/ui/jobs").text
        queue = c.get("/ui/queue").text
        lab_page = c.get("/ui/jobs/lab-j").text
    if sees_all:
        assert "lab-j" in listed and "corp-j" in listed and "lab-wait" in queue
    else:
        for other in ("lab-j", "corp-j"):
            own = other.startswith(member or "-")
            assert (other in listed) == own, (user, other)
        assert ("lab-wait" in queue) == (member == "lab")
    # a job's page: another member's job is not found; its log only for its member and admins
    if sees_all or member == "lab":
        assert "Phase" in lab_page
        assert ("id=log>" in lab_page) == (role == "alliance-admin" or member == "lab")
    else:
        assert "No job lab-j" in lab_page and "id=log>" not in lab_page


def test_no_page_opens_without_a_session(jobs: Stack) -> None:
    with httpx.Client(base_url=jobs.url) as c:
        for path in [*PAGES, "/ui/jobs/lab-j", "/ui/reports/x.html"]:
            r = c.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/ui/login", path
