"""Helpers shared by the file parsers: YAML loading, duration parsing, error conversion."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pydantic
import yaml

from suanli.errors import Problem, ValidationError

MAX_FILE_BYTES = 16 * 1024 * 1024
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


def parse_duration(value: float | int | str) -> float:
    """``90``, ``"90s"``, ``"30m"``, ``"4h"``, ``"2d"`` to seconds; raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90, '30m' or '4h'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"expected a duration such as 90, '30m' or '4h', got {value!r}")
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds <= 0:
        raise ValueError("must be positive")
    return seconds


def read_yaml(path: Path) -> Any:
    """Read one YAML document; a syntax error becomes a ValidationError naming the line."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ValidationError([Problem("", f"cannot read: {exc.strerror}")], str(path)) from None
    if size > MAX_FILE_BYTES:
        raise ValidationError([Problem("", f"file is {size} bytes, more than 16 MiB")], str(path))
    return parse_yaml(path.read_text("utf-8"), str(path))


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationError([Problem(where, f"invalid YAML: {problem}")], source) from None


def pydantic_problems(exc: pydantic.ValidationError, prefix: str = "") -> list[Problem]:
    out = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        out.append(Problem(path, msg))
    return out
