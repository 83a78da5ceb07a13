"""A model or dataset card's metadata: the YAML front matter of a repo's README.md, as the
Hugging Face Hub reads it, with the keys the alliance relies on typed (its JSON Schema is
``schemas/card.schema.json``, the alliance's standard). Other keys are kept as written."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from suanli.errors import Problem
from suanli.spec.schema import SCHEMA_BASE

Name = Annotated[str, Field(min_length=1, max_length=200)]
OneOrMany = Name | list[Name]


class CardMeta(BaseModel):
    """What a card says of its repo. ``license``: an SPDX identifier as the Hugging Face Hub
    lists them (``apache-2.0``, ``mit``, ``cc-by-4.0``, ...) or ``other`` with
    ``license_name`` and ``license_link``; required before anyone but the repo's member may
    read it."""

    model_config = ConfigDict(extra="allow")

    license: Name | None = None
    license_name: Name | None = None
    license_link: Annotated[str, Field(max_length=2000)] | None = None
    language: OneOrMany | None = None
    library_name: Name | None = None
    pipeline_tag: Name | None = None
    tags: list[Name] | None = None
    #: the datasets it was trained or evaluated on (``MEMBER/NAME`` on the hub, or elsewhere)
    datasets: list[Name] | None = None
    #: the model it was fine-tuned from
    base_model: OneOrMany | None = None


def problems(meta: dict[str, Any]) -> list[Problem]:
    """What is wrong with a card's metadata, each naming its key."""
    try:
        found = CardMeta.model_validate(meta)
    except PydanticError as exc:
        return [
            Problem(".".join(str(x) for x in e["loc"]) or "card", e["msg"]) for e in exc.errors()
        ]
    if found.license == "other" and not (found.license_name and found.license_link):
        return [Problem("license", "'other' needs license_name and license_link")]
    return []


def card_schema() -> dict[str, Any]:
    schema = CardMeta.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"{SCHEMA_BASE}/card.schema.json"
    return schema
