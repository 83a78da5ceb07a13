"""JSON Schemas for the alliance file and the job spec: the alliance's published standard."""

from __future__ import annotations

from typing import Any

from suanli.spec.alliance_file import AllianceFile
from suanli.spec.job_file import JobEntry

SCHEMA_BASE = "https://suanli.dev/schemas"


def alliance_schema() -> dict[str, Any]:
    schema = AllianceFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"{SCHEMA_BASE}/alliance.schema.json"
    return schema


def job_schema() -> dict[str, Any]:
    """The job spec in its long form. Short forms (``H800:8``, ``2x8``, ``'30m'``) are also
    accepted and described as alternatives."""
    schema = JobEntry.model_json_schema()
    props = schema["properties"]
    props["accelerators"] = {
        "anyOf": [
            {"$ref": "#/$defs/Accelerators"},
            {
                "type": "string",
                "pattern": r"^[A-Za-z0-9._-]+:[0-9]+$",
                "description": "MODEL:COUNT, e.g. Ascend910B:8",
            },
        ]
    }
    props["gang"] = {
        "anyOf": [
            {"$ref": "#/$defs/GangEntry"},
            {"type": "null"},
            {
                "type": "string",
                "pattern": r"^[0-9]+[xX*][0-9]+$",
                "description": "NODESxPER_NODE, e.g. 2x8",
            },
        ]
    }
    duration = {
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(s|m|h|d)?$"},
            {"type": "null"},
        ]
    }
    props["checkpoint_interval"] = dict(duration, description="seconds, or '30m', '4h'")
    props["estimated_duration"] = dict(duration, description="seconds, or '30m', '4h'")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"{SCHEMA_BASE}/job.schema.json"
    return {
        "$schema": schema.pop("$schema"),
        "$id": schema.pop("$id"),
        "anyOf": [
            {"$ref": "#/$defs/JobEntry"},
            {
                "type": "object",
                "properties": {"jobs": {"type": "array", "items": {"$ref": "#/$defs/JobEntry"}}},
                "required": ["jobs"],
                "additionalProperties": False,
            },
        ],
        "$defs": {**schema.pop("$defs", {}), "JobEntry": schema},
    }
