"""JobSpec and Placement to and from the JSON kept in the database."""

from __future__ import annotations

from typing import Any

from suanli.model.ids import DatasetId, JobId, MemberId, ModelId, NodeId
from suanli.model.job import CodeRevision, Gang, Group, JobSpec, Placement


def spec_to_json(spec: JobSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "member": spec.member,
        "count": spec.count,
        "models": sorted(spec.models),
        "gang": [spec.gang.nodes, spec.gang.per_node],
        "name": spec.name,
        "cpu": spec.cpu,
        "memory_gb": spec.memory_gb,
        "priority": spec.priority,
        "preemptible": spec.preemptible,
        "checkpoint_interval_s": spec.checkpoint_interval_s,
        "datasets": list(spec.datasets),
        "entrypoint": spec.entrypoint,
        "runtime_env": dict(spec.runtime_env),
        "estimated_duration_s": spec.estimated_duration_s,
        **({"secrets": list(spec.secrets)} if spec.secrets else {}),
        **({"own_nodes": True} if spec.own_nodes else {}),
        **({"group": _group_to_json(spec.group)} if spec.group else {}),
        **({"code": code_to_json(spec.code)} if spec.code else {}),
    }


def code_to_json(code: CodeRevision) -> dict[str, Any]:
    return {"revision": code.revision, "repository": code.repository, "dirty": code.dirty}


def code_from_json(d: dict[str, Any] | None) -> CodeRevision | None:
    if not d:
        return None
    return CodeRevision(str(d["revision"]), d.get("repository"), bool(d.get("dirty", False)))


def _group_to_json(g: Group) -> list[Any]:
    return [g.id, g.size, g.min_size]


def spec_from_json(d: dict[str, Any]) -> JobSpec:
    return JobSpec(
        id=JobId(d["id"]),
        member=MemberId(d["member"]),
        count=int(d["count"]),
        models=frozenset(ModelId(m) for m in d["models"]),
        gang=Gang(int(d["gang"][0]), int(d["gang"][1])),
        name=d.get("name", ""),
        cpu=float(d["cpu"]),
        memory_gb=float(d["memory_gb"]),
        priority=int(d["priority"]),
        preemptible=bool(d["preemptible"]),
        checkpoint_interval_s=d.get("checkpoint_interval_s"),
        datasets=tuple(DatasetId(x) for x in d.get("datasets", ())),
        entrypoint=d.get("entrypoint", ""),
        runtime_env=dict(d.get("runtime_env") or {}),
        estimated_duration_s=d.get("estimated_duration_s"),
        secrets=tuple(d.get("secrets", ())),
        own_nodes=bool(d.get("own_nodes", False)),
        group=Group(JobId(g[0]), int(g[1]), int(g[2])) if (g := d.get("group")) else None,
        code=code_from_json(d.get("code")),
    )


def placement_to_json(p: Placement) -> dict[str, Any]:
    return {"model": p.model, "assignments": [[n, list(d)] for n, d in p.assignments]}


def placement_from_json(d: dict[str, Any]) -> Placement:
    return Placement(
        ModelId(d["model"]),
        tuple((NodeId(n), tuple(int(x) for x in devs)) for n, devs in d["assignments"]),
    )
