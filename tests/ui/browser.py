"""A real headless Chromium (Debian's package) driven by Playwright, for the dashboard's tests
and benchmark. CI installs Chromium and asks for it (SUANLI_REQUIRE_BROWSER=1)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def need_chromium() -> str:
    path = chromium_path()
    if path is None:
        if os.environ.get("SUANLI_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is required here (apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return path


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = need_chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
