"""Helpers shared by the file parsers: YAML and JSON loading (bounded: JSON's types only,
limited depth and size, so that no document from outside can make the service do unbounded
work), duration parsing, error conversion."""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pydantic
import yaml

from suanli.errors import Problem, ValidationError

MAX_FILE_BYTES = 16 * 1024 * 1024
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
#: a hub repo's name, after its member's id and a slash
REPO_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$"
#: how deep a document may nest
MAX_DEPTH = 32
#: how many values a document may hold once its YAML aliases are expanded (a body); files
#: (an alliance of thousands of nodes) may hold more
MAX_VALUES = 100_000
MAX_FILE_VALUES = 2_000_000
#: the largest integer a document may carry (a 63-bit database integer)
MAX_INT = (1 << 63) - 1


def _path(parts: tuple[str, ...]) -> str:
    return ".".join(parts)


def _kind(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return "a date (quote it to make it a string)"
    if isinstance(value, bytes):
        return "binary data"
    if isinstance(value, set | frozenset):
        return "a set (use a list)"
    return f"a value of type {type(value).__name__}"


def check_document(
    doc: Any, source: str = "", max_values: int = MAX_VALUES, max_depth: int = MAX_DEPTH
) -> Any:
    """``doc`` if it holds only what JSON can (mappings with string keys, lists, strings
    without NUL, finite numbers, booleans, null), nests at most ``max_depth`` deep and holds
    at most ``max_values`` values once YAML's aliases are expanded; else a ValidationError
    naming where. Walks without recursion, and stops at the first bound crossed."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(doc, ())]
    seen = 0
    while stack:
        value, where = stack.pop()
        seen += 1
        if seen > max_values:
            why = f"more than {max_values:,} values (YAML aliases count once per use)"
            raise ValidationError([Problem(_path(where), why)], source)
        if len(where) > max_depth:
            why = f"nested more than {max_depth} deep"
            raise ValidationError([Problem(_path(where[: max_depth + 1]), why)], source)
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str) or "\0" in key:
                    why = f"a key must be a string without NUL, not {_kind(key)}"
                    raise ValidationError([Problem(_path(where), why)], source)
                stack.append((item, (*where, key)))
        elif isinstance(value, list):
            stack.extend((item, (*where, str(k))) for k, item in enumerate(value))
        elif isinstance(value, str):
            if "\0" in value:
                raise ValidationError([Problem(_path(where), "contains a NUL")], source)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if abs(value) > MAX_INT:
                raise ValidationError([Problem(_path(where), "a number too large")], source)
        elif isinstance(value, float):
            if not math.isfinite(value):
                why = "NaN and infinities are not numbers here"
                raise ValidationError([Problem(_path(where), why)], source)
        else:
            why = f"{_kind(value)} is not allowed (strings, numbers, true/false, null, lists, "
            why += "mappings only)"
            raise ValidationError([Problem(_path(where), why)], source)
    return doc


def _not_json_number(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(text: str, source: str, max_values: int = MAX_VALUES) -> Any:
    """One JSON document, bounded as :func:`check_document` says (NaN and Infinity refused)."""
    try:
        doc = json.loads(text, parse_constant=_not_json_number)
    except json.JSONDecodeError as exc:
        why = f"invalid JSON at line {exc.lineno}: {exc.msg}"
        raise ValidationError([Problem("body", why)], source) from None
    except ValueError as exc:
        raise ValidationError([Problem("body", str(exc))], source) from None
    except RecursionError:
        why = f"nested more than {MAX_DEPTH} deep"
        raise ValidationError([Problem("body", why)], source) from None
    return check_document(doc, source, max_values)


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
    if not math.isfinite(seconds):
        raise ValueError("must be a finite number of seconds")
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
    return parse_yaml(path.read_text("utf-8"), str(path), MAX_FILE_VALUES)


def parse_yaml(text: str, source: str, max_values: int = MAX_VALUES) -> Any:
    """One YAML document, bounded as :func:`check_document` says."""
    if "\0" in text:
        raise ValidationError([Problem("", "contains a NUL")], source)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationError([Problem(where, f"invalid YAML: {problem}")], source) from None
    except RecursionError:
        why = f"nested more than {MAX_DEPTH} deep"
        raise ValidationError([Problem("", why)], source) from None
    return check_document(doc, source, max_values)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'X'?"`` for the known name closest to ``name`` (case aside), or ""."""
    options = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(options), n=1, cutoff=0.6)
    return f"; did you mean {options[close[0]]!r}?" if close else ""


def pydantic_problems(exc: pydantic.ValidationError, prefix: str = "") -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = list(err["loc"])
        key = loc[-2] if len(loc) > 1 and loc[-1] == "[key]" else None
        if key is not None:  # a mapping's key: name the key's place, not pydantic's marker
            loc = loc[:-1]
        path = ".".join(str(p) for p in loc)
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        if key is not None:
            msg = f"key {key!r}: {msg}"
        out.append(Problem(path, msg))
    return out
