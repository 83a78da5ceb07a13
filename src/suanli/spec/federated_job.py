"""The federated job a person writes (``kind: federated``), and its validation.

```yaml
kind: federated
id: uni-a-poetry
member: uni-a                     # the submitter: owns the run and its final model
app: charlm                       # the Flower app, in the job's working directory
rounds: 10
min_participants: 2               # default: every participant (all or nothing)
participants:
  - {member: uni-a, dataset: tang300, accelerators: Ascend910B:1}
  - {member: inst-b, dataset: song100, accelerators: {count: 1, stacks: [cuda]}}
run_config: {local-steps: 50}
secure_aggregation: {num_shares: 3, reconstruction_threshold: 2}
differential_privacy: {noise_multiplier: 0.5, clipping_norm: 1.0}
```

Each participant trains on its own nodes, where its dataset may be processed; the dataset's
owner must let the submitter's federated runs train on it (``federated_with`` in the alliance
file, or as a reader).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from suanli.catalog.accelerator import Catalog
from suanli.errors import Problem, ValidationError
from suanli.model.alliance import Alliance
from suanli.model.federation import (
    RESERVED_KEYS,
    DifferentialPrivacy,
    FederatedSpec,
    Participant,
    SecureAggregation,
)
from suanli.model.ids import DatasetId, JobId, MemberId, ModelId
from suanli.spec.common import ID_PATTERN, REPO_NAME_PATTERN, did_you_mean
from suanli.spec.job_file import (
    Accelerators,
    RunEntry,
    divisible_models,
    resolve_models,
    short_accelerators,
)

MAX_PARTICIPANTS = 64
#: a run-config key as Flower's ``--run-config`` takes it
CONFIG_KEY = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"
#: SecAgg+ masks live in [0, 2**32): the quantization range must be below it
MODULUS_RANGE = 2**32

Ident = Annotated[str, Field(pattern=ID_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _repo(v: str) -> str:
    member, slash, name = v.partition("/")
    if not (slash and re.fullmatch(ID_PATTERN, member) and re.fullmatch(REPO_NAME_PATTERN, name)):
        raise ValueError(f"{v!r} is not a hub repo MEMBER/NAME")
    return v


def _app_path(v: str) -> str:
    parts = v.split("/")
    if v.startswith("/") or any(p in ("", "..") for p in parts) or "\0" in v:
        raise ValueError("a path inside the job's working directory (no leading /, no ..)")
    return v


class ParticipantEntry(_Strict):
    member: Ident
    dataset: Ident
    accelerators: Accelerators
    cpu: Annotated[float, Field(gt=0, le=4096)] = 1.0
    memory_gb: Annotated[float, Field(gt=0, le=65536)] = 1.0

    @field_validator("accelerators", mode="before")
    @classmethod
    def _short_accel(cls, v: Any) -> Any:
        return short_accelerators(v)


class SecureAggregationEntry(_Strict):
    """Flower's SecAgg+ parameters (its own constraints, checked here before a run starts)."""

    num_shares: Annotated[int, Field(ge=3, le=MAX_PARTICIPANTS)]
    reconstruction_threshold: Annotated[int, Field(ge=2, le=MAX_PARTICIPANTS)]
    clipping_range: Annotated[float, Field(gt=0, le=1e6)] = 8.0
    quantization_range: Annotated[int, Field(ge=2, lt=MODULUS_RANGE)] = 4_194_304


class DifferentialPrivacyEntry(_Strict):
    noise_multiplier: Annotated[float, Field(ge=0, le=1000)]
    clipping_norm: Annotated[float, Field(gt=0, le=1e6)]
    #: ``server``: noise added once to the aggregate (central DP); ``client``: by each
    #: participant to its own update (local DP)
    side: Literal["server", "client"] = "server"


class FederatedEntry(RunEntry):
    kind: Literal["federated"]
    #: (its parts are ``ID.K``: an id leaves room for that)
    id: Annotated[Ident, Field(max_length=60)] | None = None
    name: Annotated[str, Field(max_length=200)] = ""
    member: Ident
    app: Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_app_path)]
    rounds: Annotated[int, Field(ge=1, le=100_000)]
    participants: Annotated[list[ParticipantEntry], Field(min_length=1, max_length=64)]
    min_participants: Annotated[int, Field(ge=1, le=MAX_PARTICIPANTS)] | None = None
    run_config: Annotated[
        dict[Annotated[str, Field(pattern=CONFIG_KEY)], str | int | float | bool],
        Field(max_length=256, default_factory=dict),
    ]
    secure_aggregation: SecureAggregationEntry | None = None
    differential_privacy: DifferentialPrivacyEntry | None = None
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0
    preemptible: bool = True
    #: a model repo of the hub (``MEMBER/NAME``, the submitter's) the run commits its final
    #: model to with its run token, so that the revision's lineage names the run
    publish: Annotated[str, AfterValidator(_repo)] | None = None


def _participant(
    k: int, p: ParticipantEntry, submitter: MemberId, catalog: Catalog, alliance: Alliance | None
) -> tuple[Participant, list[Problem]]:
    where = f"participants.{k}"
    problems: list[Problem] = []
    models = resolve_models(p.accelerators, catalog, problems, f"{where}.accelerators")
    count = p.accelerators.count
    models = divisible_models(models, count, catalog, problems, f"{where}.accelerators.count")
    member, dataset = MemberId(p.member), DatasetId(p.dataset)
    if alliance is not None:
        problems += _against_alliance(where, member, dataset, submitter, models, count, alliance)
    part = Participant(member, dataset, count, frozenset(models), p.cpu, p.memory_gb)
    return part, problems


def _against_alliance(
    where: str,
    member: MemberId,
    dataset: DatasetId,
    submitter: MemberId,
    models: set[ModelId],
    count: int,
    alliance: Alliance,
) -> list[Problem]:
    if member not in alliance.members:
        hint = did_you_mean(member, alliance.members)
        return [Problem(f"{where}.member", f"unknown member {member!r}{hint}")]
    ds = alliance.datasets.get(dataset)
    if ds is None:
        hint = did_you_mean(dataset, alliance.datasets)
        return [Problem(f"{where}.dataset", f"unknown dataset {dataset!r}{hint}")]
    if not ds.may_read(member):
        why = f"member {member!r} may not read dataset {dataset!r} (owner {ds.owner!r})"
        return [Problem(f"{where}.dataset", why)]
    if not ds.may_federate(submitter):
        why = (
            f"the owner of dataset {dataset!r} ({ds.owner!r}) does not let federated runs of "
            f"{submitter!r} train on it (the dataset's federated_with or readers)"
        )
        return [Problem(f"{where}.dataset", why)]
    if not models:
        return []
    own = [
        n
        for n in alliance.nodes.values()
        if alliance.owner(n) == member and n.model in models and n.devices >= count
    ]
    if not own:
        why = f"member {member!r} has no node with {count} of {'|'.join(sorted(models))}"
        return [Problem(f"{where}.accelerators", why)]
    allowed = alliance.allowed_sites((dataset,))
    if allowed is not None and not any(n.site in allowed for n in own):
        why = (
            f"no node of member {member!r} with these accelerators lies where dataset "
            f"{dataset!r} may be processed (its sites: {sorted(allowed) or 'none of theirs'})"
        )
        return [Problem(f"{where}.dataset", why)]
    return []


def build_federated(
    entry: FederatedEntry, catalog: Catalog, alliance: Alliance | None, default_id: str
) -> FederatedSpec:
    """Check ``entry`` against the catalog (and the alliance, when given); all or nothing."""
    problems: list[Problem] = []
    submitter = MemberId(entry.member)
    if alliance is not None and submitter not in alliance.members:
        hint = did_you_mean(entry.member, alliance.members)
        problems.append(Problem("member", f"unknown member {entry.member!r}{hint}"))
    participants: list[Participant] = []
    seen: dict[tuple[str, str], int] = {}
    for k, p in enumerate(entry.participants):
        part, found = _participant(k, p, submitter, catalog, alliance)
        problems += found
        first = seen.setdefault((p.member, p.dataset), k)
        if first != k:
            why = f"member {p.member!r} already takes part with dataset {p.dataset!r} (#{first})"
            problems.append(Problem(f"participants.{k}", why))
        participants.append(part)
    n = len(participants)
    least = n if entry.min_participants is None else entry.min_participants
    if least > n:
        why = f"{least} needed, but the run has only {n} participant(s)"
        problems.append(Problem("min_participants", why))
    sa = entry.secure_aggregation
    if sa is not None:
        problems += _secagg_problems(sa, least)
        if entry.differential_privacy and entry.differential_privacy.side == "server":
            why = (
                "with secure_aggregation the server never sees one participant's update to "
                "clip: use side: client"
            )
            problems.append(Problem("differential_privacy.side", why))
    problems += [
        Problem(f"run_config.{k}", "set by suanli from the job's own fields; not settable here")
        for k in entry.run_config
        if k in RESERVED_KEYS
    ]
    if entry.publish is not None and entry.publish.split("/", 1)[0] != entry.member:
        why = f"a run publishes to its submitter's repos ({entry.member}/NAME)"
        problems.append(Problem("publish", why))
    if problems:
        raise ValidationError(problems)
    dp = entry.differential_privacy
    return FederatedSpec(
        id=JobId(entry.id or default_id),
        member=submitter,
        app=entry.app,
        rounds=entry.rounds,
        participants=tuple(participants),
        min_participants=least,
        name=entry.name or entry.id or default_id,
        run_config=dict(entry.run_config),
        secure_aggregation=None
        if sa is None
        else SecureAggregation(
            sa.num_shares, sa.reconstruction_threshold, sa.clipping_range, sa.quantization_range
        ),
        differential_privacy=None
        if dp is None
        else DifferentialPrivacy(dp.noise_multiplier, dp.clipping_norm, dp.side),
        priority=entry.priority,
        preemptible=entry.preemptible,
        runtime_env=dict(entry.runtime_env),
        estimated_duration_s=entry.estimated_duration,
        code=entry.code.revision_of() if entry.code else None,
        publish=entry.publish,
    )


def _secagg_problems(sa: SecureAggregationEntry, least: int) -> list[Problem]:
    out = []
    if sa.reconstruction_threshold >= sa.num_shares:
        why = f"must be below num_shares ({sa.num_shares})"
        out.append(Problem("secure_aggregation.reconstruction_threshold", why))
    if sa.num_shares > least:
        why = (
            f"{sa.num_shares} shares need as many participants in every round, "
            f"but a round may go on with min_participants ({least})"
        )
        out.append(Problem("secure_aggregation.num_shares", why))
    return out
