"""Federated runs in the service: submitted, started, followed and ended.

A federated job is stored as rows of the jobs table: the *run* (``kind`` ``federated``,
owned by its submitter, holding no devices: the scheduler never sees it) and its *parts*
(``kind`` ``part``, one per participant, each owned by and charged to its participant, placed
by the scheduler as one :class:`~suanli.model.job.Group`). Every phase change still goes
through :mod:`suanli.service.lifecycle`.

- **Submit** (:func:`prepare`): the run's trust is made once: its own certificate authority,
  the SuperLink's certificate for the address its SuperNodes dial (``host`` and a free port),
  a key pair per part. Each part keeps its private key and the authority as sealed secrets,
  the run the SuperLink's key; the nodes' public keys are in the run's spec.
- **Start** (:func:`reconcile`, each controller step): a PENDING run is admitted once at
  least ``min_participants`` of its parts hold their devices; its run (the SuperLink and
  ``flwr run``, :mod:`suanli.executors.flower_driver` ``link``) starts beside the control plane
  (:data:`CONTROL_NODE`), in a sandbox as its submitter's user, the ServerApp being the
  submitter's code. A part's run is its participant's SuperNode (``node``), in a sandbox as
  that participant's user, with that participant's dataset only, dialling the SuperLink over
  TLS. Parts start as soon as they are placed; a SuperNode waits for its SuperLink.
- **Follow**: the run's output carries one ``suanli-round`` line per round the app reports
  and a ``suanli-model`` line at the end; they are read into the run's ``progress``
  (rounds, losses, participants per round, the model's digest).
- **Reclaim**: a part is preempted like any borrowed job; its SuperNode stops, the app goes
  on with the participants left (its minimum), and the part, placed again, rejoins with the
  same key.
- **End**: when the run ends, its parts end with it (a part still queued is cancelled).
  When too few parts are left to reach the minimum (participants cancelled theirs), the run
  is cancelled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from suanli.errors import CannotRunError
from suanli.executors.base import Executor, RunRequest
from suanli.executors.flower import flower_env, run_pki
from suanli.executors.processes import free_port
from suanli.model.alliance import Alliance
from suanli.model.federation import DifferentialPrivacy, FederatedSpec, SecureAggregation
from suanli.model.ids import JobId, ModelId, NodeId
from suanli.model.job import JobSpec, Phase
from suanli.service import lifecycle
from suanli.store.codec import code_to_json
from suanli.store.snapshot import FEDERATED
from suanli.store.tables import JobRow

#: where a run's SuperLink runs: no node of the pool, the control plane's own machine
CONTROL_NODE = NodeId("control-plane")
#: the kind of a part's row
PART = "part"
#: what a part runs (its variables are set by :func:`prepare` and :func:`part_request`)
NODE_ENTRYPOINT = '"$SUANLI_FLOWER_PYTHON" -I "$SUANLI_FLOWER_DRIVER" node'
LINK_ENTRYPOINT = '"$SUANLI_FLOWER_PYTHON" -I "$SUANLI_FLOWER_DRIVER" link'
#: the secrets of a part and of a run (sealed by the vault, handed only to their runs)
PART_SECRETS = ("SUANLI_FLOWER_CA", "SUANLI_FLOWER_KEY")
ROUND_LINE = b"suanli-round "
MODEL_LINE = b"suanli-model "
NOTE_LINE = b"suanli: "
#: how much of a run's output one step reads
READ_BYTES = 1 << 20
#: the grace a part's SuperNode gets to stop once its run has ended
PART_GRACE_S = 10.0
NONTERMINAL = (Phase.PENDING.value, Phase.ADMITTED.value, Phase.RUNNING.value)


@dataclass(frozen=True)
class Prepared:
    """A federated job ready to be stored: the run's row (its spec and secrets) and each
    part's."""

    run: dict[str, Any]
    run_secrets: dict[str, str]
    parts: list[tuple[JobSpec, dict[str, str]]]


def prepare(spec: FederatedSpec, host: str) -> Prepared:
    """The rows of ``spec``: its trust made (see the module's docstring), its SuperLink's
    address chosen (``host`` and a port free now)."""
    parts = spec.parts()
    pki = run_pki(spec.id, host, [p.id for p in parts])
    address = f"{host}:{free_port()}"
    run = {
        "kind": FEDERATED,
        "id": spec.id,
        "member": spec.member,
        "name": spec.name,
        "app": spec.app,
        "rounds": spec.rounds,
        "min_participants": spec.min_participants,
        "participants": [
            {
                "part": part.id,
                "member": p.member,
                "dataset": p.dataset,
                "count": p.count,
                "models": sorted(p.models),
                "cpu": p.cpu,
                "memory_gb": p.memory_gb,
            }
            for p, part in zip(spec.participants, parts, strict=True)
        ],
        "run_config": spec.flower_config(),
        "secure_aggregation": _fields(spec.secure_aggregation),
        "differential_privacy": _fields(spec.differential_privacy),
        "priority": spec.priority,
        "preemptible": spec.preemptible,
        "runtime_env": dict(spec.runtime_env),
        "estimated_duration_s": spec.estimated_duration_s,
        **({"code": code_to_json(spec.code)} if spec.code else {}),
        **({"publish": spec.publish} if spec.publish else {}),
        "address": address,
        "nodes": {part.id: pki.nodes[part.id][1] for part in parts},
    }
    secrets = {
        "SUANLI_FLOWER_CA": pki.ca,
        "SUANLI_FLOWER_LINK_CERT": pki.link_cert,
        "SUANLI_FLOWER_LINK_KEY": pki.link_key,
    }
    out = []
    for p, part in zip(spec.participants, parts, strict=True):
        env = {
            "SUANLI_FLOWER_LINK": address,
            "SUANLI_FLOWER_DATASET": p.dataset,
            "SUANLI_FLOWER_PARTICIPANT": p.member,
            "SUANLI_FLOWER_RUN": spec.id,
        }
        job = replace(
            part,
            entrypoint=NODE_ENTRYPOINT,
            runtime_env={"env_vars": env},
            secrets=PART_SECRETS,
        )
        out.append((job, {"SUANLI_FLOWER_CA": pki.ca, "SUANLI_FLOWER_KEY": pki.nodes[part.id][0]}))
    return Prepared(run, secrets, out)


def _fields(obj: SecureAggregation | DifferentialPrivacy | None) -> dict[str, Any] | None:
    return None if obj is None else asdict(obj)


def _python() -> str:
    return str(flower_env() / "bin" / "python")


def part_request(req: RunRequest) -> RunRequest:
    """A part's run as the controller made it, plus what only this machine knows: Flower's
    Python, and the machine's network (its SuperNode dials the SuperLink)."""
    return replace(req, env={**req.env, "SUANLI_FLOWER_PYTHON": _python()}, network="host")


def link_request(row: JobRow, secrets: dict[str, str], alliance: Alliance) -> RunRequest:
    """The run's own run: its SuperLink and ``flwr run``, beside the control plane, as its
    submitter. Raises :class:`CannotRunError` when Flower's environment is missing."""
    spec = row.spec
    lineage = {
        "run": row.id,
        "submitter": row.member,
        "app": spec["app"],
        "rounds": spec["rounds"],
        "participants": [
            {
                "part": p["part"],
                "member": p["member"],
                "dataset": p["dataset"],
                "dataset_owner": ds.owner if (ds := alliance.datasets.get(p["dataset"])) else None,
            }
            for p in spec["participants"]
        ],
        "secure_aggregation": spec.get("secure_aggregation"),
        "differential_privacy": spec.get("differential_privacy"),
    }
    env = {
        **secrets,
        "SUANLI_FLOWER_PYTHON": _python(),
        "SUANLI_FLOWER_RUN": row.id,
        "SUANLI_FLOWER_ADDRESS": spec["address"],
        "SUANLI_FLOWER_NODES": json.dumps(spec["nodes"]),
        "SUANLI_FLOWER_APP": spec["app"],
        "SUANLI_FLOWER_RUN_CONFIG": json.dumps(spec["run_config"]),
        "SUANLI_FLOWER_LINEAGE": json.dumps(lineage),
        **({"SUANLI_FLOWER_PUBLISH": spec["publish"]} if spec.get("publish") else {}),
    }
    wd = (spec.get("runtime_env") or {}).get("working_dir")
    if not wd:
        raise CannotRunError("a federated run needs runtime_env.working_dir (its app is there)")
    return RunRequest(
        JobId(row.id),
        row.attempt,
        LINK_ENTRYPOINT,
        ModelId("none"),
        "cpu",
        ((CONTROL_NODE, ()),),
        env,
        str(wd),
        member=row.member,
        network="host",
    )


def read_progress(row: JobRow, executor: Executor) -> None:
    """Fold the run's new output lines into its ``progress`` (each step while it runs, and
    once more when it has ended)."""
    progress: dict[str, Any] = dict(row.progress or {})
    if progress.get("attempt") != row.attempt:  # a run started again starts from round 1
        fresh = {"attempt": row.attempt, "offset": 0, "rounds": [], "model": None}
        progress = {**fresh, **({"why": progress["why"]} if "why" in progress else {})}
    offset = int(progress["offset"])
    data = executor.logs(JobId(row.id), row.attempt, offset, READ_BYTES)
    end = data.rfind(b"\n") + 1
    if end == 0:
        return
    rounds: dict[int, dict[str, Any]] = {int(r["round"]): r for r in progress["rounds"]}
    for line in data[:end].splitlines():
        if line.startswith(ROUND_LINE):
            entry = _json(line[len(ROUND_LINE) :])
            if entry is None or not isinstance(entry.get("round"), int):
                continue
            r = rounds.setdefault(entry["round"], {"round": entry["round"]})
            for part in ("train", "evaluate"):
                if isinstance(entry.get(part), dict):
                    r[part] = entry[part]
        elif line.startswith(MODEL_LINE):
            progress["model"] = _json(line[len(MODEL_LINE) :])
        elif line.startswith(NOTE_LINE):
            progress["note"] = line[len(NOTE_LINE) :].decode(errors="replace")[:500]
    progress["rounds"] = [rounds[k] for k in sorted(rounds)]
    progress["offset"] = offset + end
    row.progress = progress


def _json(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def reconcile(s: Session, executor: Executor, actor: str, now: float) -> list[JobRow]:
    """One controller step over the federated runs: their progress read, ended runs' parts
    ended, runs that can no longer reach their minimum cancelled, and the runs whose
    minimum of parts hold their devices admitted (returned: the caller starts them)."""
    runs = list(
        s.scalars(select(JobRow).where(JobRow.kind == FEDERATED, JobRow.phase.in_(NONTERMINAL)))
    )
    ended_with_parts = s.scalars(
        select(JobRow).where(
            JobRow.kind == FEDERATED,
            JobRow.phase.notin_(NONTERMINAL),
            JobRow.id.in_(
                select(JobRow.run).where(JobRow.kind == PART, JobRow.phase.in_(NONTERMINAL))
            ),
        )
    )
    for run in ended_with_parts:
        _end_parts(s, run, actor, now)
    admitted = []
    for run in runs:
        if run.phase != Phase.PENDING.value:
            read_progress(run, executor)
        parts = list(s.scalars(select(JobRow).where(JobRow.run == run.id)))
        least = int(run.spec["min_participants"])
        alive = [p for p in parts if p.phase in NONTERMINAL and not p.cancel_requested]
        if len(alive) < least:
            why = (
                f"cancelled: {len(alive)} of its parts are left, fewer than its minimum of "
                f"{least} participants"
            )
            if lifecycle.cancel(s, run, actor, now, PART_GRACE_S):
                run.reason = why
                run.progress = {**(run.progress or {}), "why": why}
            continue
        placed = [p for p in alive if p.phase in (Phase.ADMITTED.value, Phase.RUNNING.value)]
        if run.phase == Phase.PENDING.value:
            if len(placed) >= least:
                why = f"{len(placed)} of its {len(parts)} participants placed"
                if lifecycle.admit(s, run, None, why, actor, now):
                    admitted.append(run)
            else:
                run.reason = (
                    f"waiting for its participants: {len(placed)} of {len(parts)} placed, "
                    f"{least} needed"
                )
    return admitted


def ended(row: JobRow, phase: Phase | None) -> None:
    """A run that failed says why, as its run last said (its SuperLink's end, say); one
    cancelled for want of participants says so."""
    progress = row.progress or {}
    if phase is Phase.FAILED and progress.get("note"):
        row.reason = f"{row.reason}: {progress['note']}"
    elif phase is Phase.CANCELLED and progress.get("why"):
        row.reason = str(progress["why"])


def _end_parts(s: Session, run: JobRow, actor: str, now: float) -> None:
    phase = Phase(run.phase)
    why = f"its federated run {run.id} ended {phase.value}"
    for part in s.scalars(
        select(JobRow).where(JobRow.run == run.id, JobRow.phase.in_(NONTERMINAL))
    ):
        lifecycle.conclude(s, part, phase, why, actor, now, PART_GRACE_S)
