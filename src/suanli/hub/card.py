"""A repo's card: README.md with YAML front matter between ``---`` lines, as on the Hugging
Face Hub. The hub reads the licence from it (``license``, or ``licence``)."""

from __future__ import annotations

from typing import Any

import yaml

from suanli.spec.card import problems

#: the most of a README read for its front matter
MAX_CARD = 1 << 20


def _split(text: str) -> str | None:
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), None)
    return None if end is None else "\n".join(lines[1:end])


def front_matter(text: str) -> dict[str, Any]:
    """The card's metadata ({} when it has none or it is not a YAML mapping)."""
    block = _split(text)
    if block is None:
        return {}
    try:
        meta = yaml.safe_load(block)
    except yaml.YAMLError:
        return {}
    return meta if isinstance(meta, dict) else {}


def check(text: str) -> tuple[list[str], list[str]]:
    """A card's errors (front matter that is not a YAML mapping) and warnings (no front
    matter, no licence)."""
    block = _split(text)
    if block is None:
        return [], ["no front matter (a block between '---' lines at the top)"]
    try:
        meta = yaml.safe_load(block)
    except yaml.YAMLError as e:
        return [f"the front matter is not YAML: {e}"], []
    if meta is not None and not isinstance(meta, dict):
        return ["the front matter is not a mapping"], []
    errors = [f"{p.field}: {p.message}" for p in problems(meta or {})]
    return errors, [] if licence(text) else ["no license in the front matter"]


def licence(text: str) -> str | None:
    meta = front_matter(text)
    value = meta.get("license", meta.get("licence"))
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return str(value).strip() or None if value is not None else None


def body(text: str) -> str:
    """The card without its front matter (what people read)."""
    lines = text.lstrip("\ufeff").splitlines()
    if _split(text) is None:
        return text
    end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "---")
    return "\n".join(lines[end + 1 :])
