"""JSON Schemas for the alliance file and the job spec: the alliance's published standard."""

from __future__ import annotations

from typing import Any

from suanli.spec.alliance_file import AllianceFile
from suanli.spec.federated_job import FederatedEntry
from suanli.spec.job_file import JobEntry

SCHEMA_BASE = "https://suanli.dev/schemas"


def alliance_schema() -> dict[str, Any]:
    schema = AllianceFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"{SCHEMA_BASE}/alliance.schema.json"
    return schema


ACCELERATORS = {
    "anyOf": [
        {"$ref": "#/$defs/Accelerators"},
        {
            "type": "string",
            "pattern": r"^[A-Za-z0-9._-]+:[0-9]+$",
            "description": "MODEL:COUNT, e.g. Ascend910B:8",
        },
    ]
}
DURATION = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(s|m|h|d)?$"},
        {"type": "null"},
    ],
    "description": "seconds, or '30m', '4h'",
}


def _federated_schema() -> dict[str, Any]:
    schema = FederatedEntry.model_json_schema()
    defs = schema.pop("$defs", {})
    defs["ParticipantEntry"]["properties"]["accelerators"] = ACCELERATORS
    schema["properties"]["estimated_duration"] = DURATION
    return {**defs, "FederatedEntry": schema}


def job_schema() -> dict[str, Any]:
    """The job spec in its long form: a batch job (``JobEntry``) or a federated one
    (``FederatedEntry``, ``kind: federated``). Short forms (``H800:8``, ``2x8``, ``'30m'``)
    are also accepted and described as alternatives."""
    schema = JobEntry.model_json_schema()
    props = schema["properties"]
    props["accelerators"] = ACCELERATORS
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
    props["checkpoint_interval"] = DURATION
    props["estimated_duration"] = DURATION
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"{SCHEMA_BASE}/job.schema.json"
    one = {"anyOf": [{"$ref": "#/$defs/JobEntry"}, {"$ref": "#/$defs/FederatedEntry"}]}
    return {
        "$schema": schema.pop("$schema"),
        "$id": schema.pop("$id"),
        "anyOf": [
            *one["anyOf"],
            {
                "type": "object",
                "properties": {"jobs": {"type": "array", "items": one}},
                "required": ["jobs"],
                "additionalProperties": False,
            },
        ],
        "$defs": {**schema.pop("$defs", {}), **_federated_schema(), "JobEntry": schema},
    }
