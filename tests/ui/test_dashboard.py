"""The dashboard in a real headless Chromium: signing in, every page with real data from a
running controller, a job's log followed live, roles, and screenshots whose pixels are looked
at (the bars and the plots are drawn, not only served)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from suanli.api.app import create_app
from suanli.executors.local import LocalProcessExecutor
from suanli.sched.policy import get_policy
from suanli.service import jobs
from suanli.service.auth import create_user
from suanli.service.context import Service
from suanli.service.controller import Controller
from suanli.service.pool import create_alliance
from suanli.spec.alliance_file import loads_alliance
from suanli.store.database import Database

from ..builders import admin
from ..live import serving, serving_html
from ..stack import ALLIANCE
from ..stepping import run_until
from .browser import chromium

pytestmark = pytest.mark.slow  # real servers, clusters or browsers: pytest -m "not slow" skips them

ACCENT = (0x2F, 0x6F, 0xDB)  # the bars' and the first series' colour
SECOND = (0xD9, 0x2D, 0x20)  # the second series' colour


def pixels_near(png: bytes, rgb: tuple[int, int, int], tol: int = 40) -> int:
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    near = (np.abs(img - np.array(rgb, dtype=np.int16)) < tol).all(axis=2)
    return int(near.sum())


class Site:
    def __init__(self, tmp: Path) -> None:
        self.db = Database.open(f"sqlite:///{tmp / 'ui.db'}")
        self.ex = LocalProcessExecutor(tmp / "exec")
        policy = get_policy("alliance")
        self.ctl = Controller(self.db, self.ex, policy)
        reports = tmp / "reports" / "philly"
        reports.mkdir(parents=True)
        (reports / "report.html").write_text("<html><body><h1>Policy comparison</h1></body></html>")
        self.app = create_app(Service(self.db, policy, self.ex, reports_dir=tmp / "reports"))
        with self.db.session() as s:
            create_alliance(s, loads_alliance(ALLIANCE), "t", time.time())
            self.admin = create_user(s, None, "root", "alliance-admin", None, time.time())
            self.corp = create_user(s, None, "cu", "member-user", "corp", time.time())
        self.url = ""

    def submit(self, doc: dict[str, Any]) -> None:
        with self.db.session() as s:
            jobs.submit(s, admin(), doc, time.time())


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    st = Site(tmp_path)
    with st.db.session() as s:
        st.ctl.accountant.flush(s, time.time(), force=True)
    st.submit(
        {
            "id": "busy",
            "member": "lab",
            "accelerators": "H800:8",
            "entrypoint": "trap 'exit 0' TERM; while true; do sleep 0.1; done",
        }
    )
    st.submit({"id": "waits", "member": "startup", "accelerators": "H800:4", "entrypoint": "true"})
    st.submit(
        {
            "id": "talks",
            "member": "corp",
            "accelerators": "Ascend910B:2",
            "entrypoint": "for i in 1 2 3 4 5 6; do echo line $i; sleep 0.4; done",
        }
    )
    run_until(st.ctl, st.db, lambda r: r["busy"].phase == "RUNNING")
    with serving(st.app) as url:
        st.url = url
        yield st
    with st.db.session() as s:
        jobs.cancel(s, admin(), "busy", time.time())
    run_until(st.ctl, st.db, lambda r: r["busy"].phase == "CANCELLED")
    st.db.close()


def sign_in(page: Any, url: str, token: str) -> None:
    page.goto(f"{url}/ui/")
    assert page.url.endswith("/ui/login")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/ui/")


def test_every_page_as_an_admin(site: Site) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{site.url}/ui/login")
        page.fill("input[name=token]", "not-a-token")
        page.click("button[type=submit]")
        assert "Unknown or revoked token" in page.content()
        sign_in(page, site.url, site.admin)

        # pool: vendors, models, sites, and the H800 node's bar drawn full
        pool = page.inner_text("#pool")
        assert "NVIDIA" in pool and "H800-80GB" in pool and "Huawei" in pool
        assert "100%" in page.inner_text("#vendors")
        shot = page.locator("#vendors").screenshot()
        assert pixels_near(shot, ACCENT) > 300, "the utilization bar is not drawn"

        # queue: the startup's job waits, with the scheduler's reason
        page.click("text=Queue")
        row = page.locator("#queue tbody tr", has_text="waits")
        assert row.count() == 1 and len(row.inner_text()) > 20

        # a job's log followed live, as it is written
        site.ctl.step()
        page.goto(f"{site.url}/ui/jobs/talks")
        deadline = time.time() + 30
        while "line 6" not in page.inner_text("#log") and time.time() < deadline:
            site.ctl.step()
            page.wait_for_timeout(300)
        assert "line 1\nline 2" in page.inner_text("#log")
        # the page says the log ended once the controller has recorded the job's exit
        while page.inner_text("#logstate") != "(ended)" and time.time() < deadline:
            site.ctl.step()
            page.wait_for_timeout(300)
        assert page.inner_text("#logstate") == "(ended)"
        log = page.locator("#log").screenshot()
        assert pixels_near(log, (0x0B, 0x10, 0x20), 12) > 1000  # the dark log panel
        assert pixels_near(log, (0xD6, 0xDE, 0xEB), 40) > 20  # with text on it
        # the spec as YAML, the placement as a table, nothing wider than the window
        spec = page.inner_text("#job pre.spec")
        assert "member: corp\n" in spec and "entrypoint: for i in 1 2 3" in spec
        assert "Node" in page.inner_text("#job table") and "Ascend910B" in page.inner_text("#job")
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        # every label of the job's facts on one line (a 1280 px window once broke them into
        # syllables: "Me / mb / er")
        labels = page.locator("#job > tbody > tr > th")
        assert labels.count() == 11 and "Preemptions" in labels.all_inner_texts()
        lines = labels.evaluate_all(
            "els => els.map(e => { const r = document.createRange(); r.selectNodeContents(e);"
            " return r.getClientRects().length; })"
        )
        assert lines == [1] * 11, lines
        # an unknown job is a 404 page
        assert page.goto(f"{site.url}/ui/jobs/nope").status == 404

        # members: a plot per member, the used line and the entitlement line drawn
        with site.db.session() as s:
            site.ctl.accountant.flush(s, time.time(), force=True)
        page.click("text=Members")
        assert page.locator("svg polyline").count() == 2 * 3
        plot = page.locator(".plot", has_text="lab: used vs entitled").screenshot()
        assert pixels_near(plot, ACCENT) > 20 and pixels_near(plot, SECOND) > 20

        # ledger: lab's statement for this month
        period = time.strftime("%Y-%m", time.gmtime())
        page.goto(f"{site.url}/ui/ledger?member=lab&period={period}")
        statement = page.inner_text("#statement")
        assert "Contributed" in statement and "Balance" in statement

        # reports: the simulator's HTML report, behind the same sign-in
        page.click("text=Reports")
        page.click("text=philly/report.html")
        # (the click only starts the navigation: wait for the report to have loaded)
        page.wait_for_url("**/reports/philly/report.html", wait_until="load")
        assert "Policy comparison" in page.content()

        page.goto(f"{site.url}/ui/")
        Path(site.db.engine.url.database or ".").with_name("pool.png").write_bytes(
            page.screenshot(full_page=True)
        )


def test_a_member_sees_its_own_jobs_only(site: Site) -> None:
    with chromium() as browser:
        page = browser.new_page()
        sign_in(page, site.url, site.corp)
        page.click("text=Jobs")
        listed = page.inner_text("#jobs")
        assert "talks" in listed and "busy" not in listed and "waits" not in listed
        page.goto(f"{site.url}/ui/jobs/busy")
        assert "No job busy" in page.content()
        page.goto(f"{site.url}/ui/ledger?member=lab")
        assert "may not read the ledger statement" in page.content()
        page.click("text=sign out")
        page.goto(f"{site.url}/ui/queue")
        assert page.url.endswith("/ui/login")


def test_the_session_cookie_holds_no_token_and_sign_out_ends_the_session(site: Site) -> None:
    with chromium() as browser:
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, site.url, site.corp)
        cookies = {c["name"]: c for c in context.cookies()}
        session = cookies["suanli_session"]
        assert session["httpOnly"] and session["sameSite"] == "Strict"
        assert site.corp not in session["value"] and all(
            site.corp not in c["value"] for c in cookies.values()
        )
        # the session reads the API's GET endpoints, as the member
        listed = page.evaluate(
            "fetch('/api/v1/jobs').then(r => r.json()).then(j => j.items.map(x => x.id))"
        )
        assert listed == ["talks"]
        # but never writes through it
        status = page.evaluate(
            "fetch('/api/v1/jobs/talks/cancel', {method: 'POST'}).then(r => r.status)"
        )
        assert status == 401
        page.click("text=sign out")
        page.wait_for_url(f"{site.url}/ui/login")
        # the old cookie is dead on the server, not only forgotten by the browser
        old = httpx.get(f"{site.url}/api/v1/jobs", cookies={"suanli_session": session["value"]})
        assert old.status_code == 401


def test_a_sign_in_from_another_site_is_refused(site: Site) -> None:
    """Login CSRF: another site's page posting the attacker's token to /ui/login would sign the
    victim's browser in as the attacker."""
    page_html = (
        (
            "<form id=f method=post action='SITE/ui/login'>"
            "<input name=token value='TOKEN'><input name=csrf value=guess></form>"
            "<script>document.getElementById('f').submit()</script>"
        )
        .replace("SITE", site.url)
        .replace("TOKEN", site.corp)
    )
    with serving_html(page_html) as evil, chromium() as browser:
        context = browser.new_context()
        page = context.new_page()
        page.goto(evil)
        page.wait_for_url(f"{site.url}/ui/login")
        assert "Refused" in page.content()
        assert "suanli_session" not in {c["name"] for c in context.cookies()}
    # without a browser: no Origin, a forged Origin, or no CSRF cookie: all refused
    form = {"token": site.corp, "csrf": "x"}
    assert httpx.post(f"{site.url}/ui/login", data=form).status_code == 403
    evil_origin = {"Origin": "http://evil.example"}
    assert httpx.post(f"{site.url}/ui/login", data=form, headers=evil_origin).status_code == 403
    own = {"Origin": site.url}
    r = httpx.post(f"{site.url}/ui/login", data=form, headers=own, cookies={"suanli_login": "y"})
    assert r.status_code == 403
    # sign-out is a POST from the dashboard with the session's CSRF token; GET does nothing
    assert httpx.get(f"{site.url}/ui/logout").status_code == 405


def test_a_revoked_token_ends_its_sessions(site: Site) -> None:
    with chromium() as browser:
        page = browser.new_page()
        sign_in(page, site.url, site.corp)
        r = httpx.post(
            f"{site.url}/api/v1/users/cu/revoke",
            headers={"Authorization": f"Bearer {site.admin}"},
        )
        assert r.status_code == 200 and r.json()["revoked"] == 1
        page.goto(f"{site.url}/ui/jobs")
        assert page.url.endswith("/ui/login")


def test_the_api_docs_work_without_internet(site: Site) -> None:
    """Swagger UI and ReDoc load their scripts from this server and render the API while the
    browser may reach nothing else (every other request is refused: only ReDoc's footer logo
    is asked for, and missed)."""
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        outside: list[str] = []

        def only_here(route: Any) -> None:
            if route.request.url.startswith(site.url):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", only_here)
        page.goto(f"{site.url}/docs")
        page.wait_for_selector(".opblock-summary-path[data-path='/api/v1/jobs']", timeout=30_000)
        page.goto(f"{site.url}/redoc")
        page.wait_for_selector("h2:has-text('Jobs Submit')", timeout=30_000)
        assert all(u.endswith(".svg") for u in outside), outside
