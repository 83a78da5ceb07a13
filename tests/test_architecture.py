"""docs/architecture.md is executable: the package table's ``imports`` column is the only
imports each package may make, and the outer layers keep their functions short."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "suanli"
DOC = (ROOT / "docs" / "architecture.md").read_text()
#: the packages whose functions stay under this many lines (ruff limits statements elsewhere)
SHORT = ("api", "ui", "cli", "service")
MAX_LINES = 80


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _allowed() -> dict[str, set[str]]:
    table = DOC.split("## Packages", 1)[1].split("\n## ", 1)[0]
    out: dict[str, set[str]] = {}
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`suanli"):
            continue
        names = re.findall(r"`([a-z_.]+)`", cells[2])
        out[cells[0].strip("`")] = {n if n.startswith("suanli") else f"suanli.{n}" for n in names}
    return out


def _imports() -> dict[str, dict[str, str]]:
    """Package -> imported package -> a module that imports it."""
    out: dict[str, dict[str, str]] = {}
    for f in SRC.rglob("*.py"):
        module = ".".join(f.relative_to(SRC.parent).with_suffix("").parts)
        here = _package(module.removesuffix(".__init__"))
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.split(".")[0] == "suanli" and _package(name) != here:
                    out.setdefault(here, {})[_package(name)] = module
    return out


def test_every_package_is_in_the_table() -> None:
    """Every module of code (package data, such as ``examples``, holds none)."""
    code = {f for f in SRC.rglob("*.py") if f.name != "__init__.py" and f.parent != SRC}
    found = {f"suanli.{f.relative_to(SRC).parts[0]}" for f in code}
    found |= {f"suanli.{f.stem}" for f in SRC.glob("*.py") if not f.name.startswith("__")}
    assert found - set(_allowed()) == set()


def test_packages_import_only_what_the_table_allows() -> None:
    allowed = _allowed()
    wrong = [
        f"{pkg} imports {dep} (in {where})"
        for pkg, deps in sorted(_imports().items())
        if pkg in allowed
        for dep, where in sorted(deps.items())
        if dep not in allowed[pkg]
    ]
    assert wrong == []


def test_the_outer_layers_keep_functions_short() -> None:
    long = []
    for name in SHORT:
        for f in (SRC / name).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > MAX_LINES:
                        long.append(f"{f.relative_to(SRC)}:{node.name} {lines} lines")
    assert long == []
