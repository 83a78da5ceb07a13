"""docs/threat-model.md is checked line by line: every promise names a test that exists, and
the escape suite tries exactly what the page lists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "threat-model.md").read_text()


def _section(title: str) -> str:
    return DOC.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        n.name
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test_")
    }


def test_every_promise_names_a_test_that_exists() -> None:
    rows = [ln for ln in _section("Boundaries").splitlines() if ln.startswith("| ") and "`" in ln]
    assert len(rows) >= 20
    for row in rows:
        refs = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", row)
        assert refs, f"no test named for: {row}"
        for path, name in refs:
            assert name in _tests_in(ROOT / path), f"{path}::{name} does not exist"


def test_the_escape_suite_tries_what_the_page_lists() -> None:
    listed = [
        ln[2:].strip()
        for ln in _section("What the escape suite tries").splitlines()
        if ln.startswith("- ")
    ]
    attack = (ROOT / "tests" / "security" / "attack.sh").read_text()
    tried = [ln.split('"')[1] for ln in attack.splitlines() if ln.startswith('try "')]
    assert listed == tried
