"""The job spec a person writes (YAML), and its validation against the catalog and alliance.

Short forms: ``accelerators: Ascend910B:8`` (a model or family and a count) and
``gang: 2x8`` (nodes times devices per node). Long forms: ``accelerators: {count: 8, any_of:
[H800, A800]}`` or ``{count: 8, stacks: [cuda, npu]}``, and ``gang: {nodes: 2, per_node: 8}``.
A file holds one job, or a list of jobs under ``jobs:``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from suanli.catalog.accelerator import Catalog, load_catalog
from suanli.errors import Problem, ValidationError
from suanli.model.alliance import Alliance
from suanli.model.federation import FederatedSpec
from suanli.model.ids import DatasetId, JobId, MemberId, ModelId, SiteId
from suanli.model.job import CodeRevision, Gang, JobSpec
from suanli.spec.common import (
    ID_PATTERN,
    did_you_mean,
    parse_duration,
    pydantic_problems,
    read_yaml,
)

MAX_DEVICES_PER_JOB = 16384
#: an environment variable's name
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
_SHORT_ACCEL = re.compile(r"^\s*([A-Za-z0-9._-]+)\s*:\s*(-?\d+)\s*$")
_SHORT_GANG = re.compile(r"^\s*(\d+)\s*[xX*]\s*(\d+)\s*$")

Count = Annotated[int, Field(ge=1, le=MAX_DEVICES_PER_JOB)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _catalog(info: ValidationInfo) -> Catalog:
    ctx = info.context if isinstance(info.context, dict) else {}
    cat = ctx.get("catalog")
    return cat if isinstance(cat, Catalog) else load_catalog()


def _known_model(name: str, info: ValidationInfo) -> str:
    catalog = _catalog(info)
    if not catalog.resolve(name):
        hint = did_you_mean(name, catalog.names())
        raise ValueError(f"unknown accelerator model {name!r}{hint}")
    return name


def _known_stack(stack: str, info: ValidationInfo) -> str:
    stacks = _catalog(info).stacks
    if stack not in stacks:
        raise ValueError(f"unknown software stack {stack!r}; known: {sorted(stacks)}")
    return stack


class Accelerators(_Strict):
    count: Count
    any_of: list[Annotated[str, AfterValidator(_known_model)]] = []
    stacks: list[Annotated[str, AfterValidator(_known_stack)]] = []


class GangEntry(_Strict):
    nodes: Annotated[int, Field(ge=1, le=4096)]
    per_node: Annotated[int, Field(ge=1, le=64)]


def short_accelerators(v: Any) -> Any:
    """``MODEL:COUNT`` as the long form ``{any_of: [MODEL], count: COUNT}``."""
    if isinstance(v, str):
        m = _SHORT_ACCEL.match(v)
        if not m:
            raise ValueError(f"expected MODEL:COUNT such as 'H800:8', got {v!r}")
        return {"any_of": [m.group(1)], "count": int(m.group(2))}
    return v


def check_runtime_env(v: dict[str, Any]) -> dict[str, Any]:
    env = v.get("env_vars", {})
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(x, str | int | float | bool) for k, x in env.items()
    ):
        raise ValueError("env_vars must map variable names to strings or numbers")
    bad = [k for k in env if not re.fullmatch(ENV_NAME, k)]
    if bad:
        raise ValueError(f"env_vars: {bad[0]!r} is not a variable name (letters, digits, _)")
    if "working_dir" in v and not (isinstance(v["working_dir"], str) and v["working_dir"]):
        raise ValueError("working_dir must be a directory path")
    return v


class CodeEntry(_Strict):
    """Which code the job runs (its lineage): ``suanli submit`` fills it from the git working
    tree of ``runtime_env.working_dir`` when the file does not."""

    #: a git commit, a tag or a digest of the code
    revision: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:+/-]{0,199}$")]
    #: where that revision lives (a URL without credentials)
    repository: Annotated[str, Field(max_length=500)] | None = None
    #: the working tree held changes not in ``revision``
    dirty: bool = False

    @field_validator("repository")
    @classmethod
    def _no_credentials(cls, v: str | None) -> str | None:
        if v is not None and re.match(r"^[a-z][a-z0-9+.-]*://[^/@]*@", v, re.IGNORECASE):
            raise ValueError("a repository URL holds no user or token (it is shown to others)")
        return v

    def revision_of(self) -> CodeRevision:
        return CodeRevision(self.revision, self.repository, self.dirty)


class RunEntry(_Strict):
    """What every kind of job states about how it runs."""

    runtime_env: dict[str, Any] = {}
    estimated_duration: float | None = None
    code: CodeEntry | None = None

    @field_validator("runtime_env")
    @classmethod
    def _runtime_env(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_runtime_env(v)

    @field_validator("estimated_duration", mode="before")
    @classmethod
    def _estimated(cls, v: Any) -> Any:
        return None if v is None else parse_duration(v)


class JobEntry(RunEntry):
    #: a batch job (the default); ``federated`` jobs have their own fields
    kind: Literal["batch"] = "batch"
    id: Annotated[str, Field(pattern=ID_PATTERN)] | None = None
    name: Annotated[str, Field(max_length=200)] = ""
    member: Annotated[str, Field(pattern=ID_PATTERN)]
    accelerators: Accelerators
    gang: GangEntry | None = None
    cpu: Annotated[float, Field(gt=0, le=4096)] = 1.0
    memory_gb: Annotated[float, Field(gt=0, le=65536)] = 1.0
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0
    preemptible: bool = True
    checkpoint_interval: float | None = None
    datasets: list[Annotated[str, Field(pattern=ID_PATTERN)]] = []
    entrypoint: Annotated[str, Field(max_length=10000)] = ""
    #: secret values (API keys...) the job's runs get as environment variables: stored
    #: encrypted, never shown (only their names)
    secrets: Annotated[
        dict[Annotated[str, Field(pattern=ENV_NAME)], Annotated[str, Field(max_length=65536)]],
        Field(max_length=64),
    ] = {}

    @field_validator("accelerators", mode="before")
    @classmethod
    def _short_accel(cls, v: Any) -> Any:
        return short_accelerators(v)

    @field_validator("gang", mode="before")
    @classmethod
    def _short_gang(cls, v: Any) -> Any:
        if isinstance(v, str):
            m = _SHORT_GANG.match(v)
            if not m:
                raise ValueError(f"expected NODESxPER_NODE such as '2x8', got {v!r}")
            return {"nodes": int(m.group(1)), "per_node": int(m.group(2))}
        return v

    @field_validator("checkpoint_interval", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return None if v is None else parse_duration(v)


def resolve_models(
    acc: Accelerators, catalog: Catalog, problems: list[Problem], where: str = "accelerators"
) -> set[ModelId]:
    """The models ``acc`` accepts, those whose allocation unit divides ``per_node``."""
    if not acc.any_of and not acc.stacks:
        problems.append(Problem(where, "name a model (MODEL:COUNT), any_of or stacks"))
    models: set[ModelId] = set()
    for k, name in enumerate(acc.any_of):
        hits = catalog.resolve(name)
        if not hits:
            hint = did_you_mean(name, catalog.names())
            problems.append(
                Problem(f"{where}.any_of.{k}", f"unknown accelerator model {name!r}{hint}")
            )
        models.update(hits)
    for k, stack in enumerate(acc.stacks):
        if stack not in catalog.stacks:
            problems.append(
                Problem(
                    f"{where}.stacks.{k}",
                    f"unknown software stack {stack!r}; known: {sorted(catalog.stacks)}",
                )
            )
        models.update(catalog.with_stack(stack))
    return models


def divisible_models(
    models: set[ModelId], per_node: int, catalog: Catalog, problems: list[Problem], where: str
) -> set[ModelId]:
    """The models whose allocation unit divides ``per_node`` (a problem at ``where`` if none)."""
    divisible = {m for m in models if per_node % catalog.get(m).alloc_unit == 0}
    if models and not divisible:
        units = sorted({catalog.get(m).alloc_unit for m in models})
        problems.append(
            Problem(
                where,
                f"{per_node} devices cannot be allocated: "
                f"these models allocate devices in groups of {units}",
            )
        )
    return divisible


def _gang(entry: JobEntry, problems: list[Problem]) -> Gang:
    count = entry.accelerators.count
    if entry.gang is None:
        return Gang(1, count)
    gang = Gang(entry.gang.nodes, entry.gang.per_node)
    if gang.devices != count:
        problems.append(
            Problem(
                "gang",
                f"{gang.nodes}x{gang.per_node} is {gang.devices} "
                f"devices but accelerators.count is {count}",
            )
        )
    return gang


def _fits_somewhere(
    alliance: Alliance, model: ModelId, gang: Gang, sites: frozenset[SiteId] | None
) -> bool:
    if gang.nodes == 1:
        return any(
            n.model == model and n.devices >= gang.per_node and (sites is None or n.site in sites)
            for n in alliance.nodes.values()
        )
    per_zone: dict[str, int] = {}
    for n in alliance.nodes.values():
        if n.model == model and n.devices == gang.per_node and (sites is None or n.site in sites):
            zone = alliance.sites[n.site].region or n.site
            per_zone[zone] = per_zone.get(zone, 0) + 1
    return any(c >= gang.nodes for c in per_zone.values())


def build_job(
    entry: JobEntry, catalog: Catalog, alliance: Alliance | None, default_id: str
) -> JobSpec:
    """Check ``entry`` against the catalog (and the alliance, when given); all or nothing."""
    problems: list[Problem] = []
    models = resolve_models(entry.accelerators, catalog, problems)
    gang = _gang(entry, problems)
    count = entry.accelerators.count
    # Models whose allocation unit cannot divide the request are not acceptable for it.
    models = divisible_models(models, gang.per_node, catalog, problems, "accelerators.count")
    member = MemberId(entry.member)
    datasets = tuple(DatasetId(d) for d in entry.datasets)
    if alliance is not None:
        if member not in alliance.members:
            hint = did_you_mean(entry.member, alliance.members)
            problems.append(Problem("member", f"unknown member {entry.member!r}{hint}"))
        for k, ds_id in enumerate(datasets):
            ds = alliance.datasets.get(ds_id)
            if ds is None:
                hint = did_you_mean(ds_id, alliance.datasets)
                problems.append(Problem(f"datasets.{k}", f"unknown dataset {ds_id!r}{hint}"))
            elif not ds.may_read(member):
                problems.append(
                    Problem(
                        f"datasets.{k}",
                        f"member {member!r} may not read dataset {ds_id!r} (owner {ds.owner!r})",
                    )
                )
        if models and not any(p.field.startswith("datasets") for p in problems):
            present = {n.model for n in alliance.nodes.values()}
            if not models & present:
                what = (
                    f"stacks {entry.accelerators.stacks}"
                    if entry.accelerators.stacks
                    else f"models {sorted(models)}"
                )
                problems.append(Problem("accelerators", f"no node in the pool has {what}"))
            else:
                sites = alliance.allowed_sites(datasets)
                fitting = {m for m in models if _fits_somewhere(alliance, m, gang, None)}
                if not fitting:
                    shape = (
                        f"{count} devices on one node"
                        if gang.nodes == 1
                        else f"{gang.nodes} whole nodes of {gang.per_node} devices in one region"
                    )
                    problems.append(
                        Problem(
                            "accelerators.count",
                            f"impossible count: no acceptable model has {shape} in this pool",
                        )
                    )
                elif sites is not None and not any(
                    _fits_somewhere(alliance, m, gang, sites) for m in fitting
                ):
                    problems.append(
                        Problem(
                            "datasets",
                            "no acceptable node lies where the "
                            f"datasets may be processed (sites {sorted(sites)})",
                        )
                    )
                models = fitting
    if problems:
        raise ValidationError(problems)
    return JobSpec(
        id=JobId(entry.id or default_id),
        member=member,
        count=count,
        models=frozenset(models),
        gang=gang,
        name=entry.name or entry.id or default_id,
        cpu=entry.cpu,
        memory_gb=entry.memory_gb,
        priority=entry.priority,
        preemptible=entry.preemptible,
        checkpoint_interval_s=entry.checkpoint_interval,
        datasets=datasets,
        entrypoint=entry.entrypoint,
        runtime_env=dict(entry.runtime_env),
        estimated_duration_s=entry.estimated_duration,
        secrets=tuple(sorted(entry.secrets)),
        code=entry.code.revision_of() if entry.code else None,
    )


def parse_specs(
    data: Any, source: str = "", alliance: Alliance | None = None, catalog: Catalog | None = None
) -> list[JobSpec | FederatedSpec]:
    """Parse one job or ``{jobs: [...]}``, batch or federated (``kind: federated``). Raises
    with every problem of every job, or returns them all: nothing is half-accepted."""
    from suanli.spec.federated_job import FederatedEntry, build_federated

    catalog = catalog or (alliance.catalog if alliance else load_catalog())
    if isinstance(data, dict) and set(data) == {"jobs"}:
        raw, prefix = data["jobs"], "jobs"
        if not isinstance(raw, list):
            raise ValidationError([Problem("jobs", "must be a list of jobs")], source)
    elif isinstance(data, dict):
        raw, prefix = [data], ""
    else:
        raise ValidationError(
            [Problem("", "a job file is a mapping (one job, or jobs: [...])")], source
        )
    problems: list[Problem] = []
    specs: list[JobSpec | FederatedSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"{prefix}.{i}" if prefix else ""
        default_id = f"job-{i + 1}"
        context = {"catalog": catalog}
        spec: JobSpec | FederatedSpec
        try:
            if isinstance(item, dict) and item.get("kind") == "federated":
                fed = FederatedEntry.model_validate(item, context=context)
                spec = build_federated(fed, catalog, alliance, default_id)
            else:
                entry = JobEntry.model_validate(item, context=context)
                spec = build_job(entry, catalog, alliance, default_id)
        except pydantic.ValidationError as exc:
            problems += _as_written(item, pydantic_problems(exc), where)
            continue
        except ValidationError as exc:
            problems += _as_written(item, exc.problems, where)
            continue
        if spec.id in seen:
            problems.append(
                Problem(f"{where}.id" if where else "id", f"duplicate job id {spec.id!r}")
            )
        seen.add(spec.id)
        specs.append(spec)
    if problems:
        raise ValidationError(problems, source)
    return specs


def parse_jobs(
    data: Any, source: str = "", alliance: Alliance | None = None, catalog: Catalog | None = None
) -> list[JobSpec]:
    """:func:`parse_specs` where only batch jobs are accepted: a federated job is refused by
    its ``kind`` before anything else of it is checked."""
    many = isinstance(data, dict) and set(data) == {"jobs"} and isinstance(data["jobs"], list)
    items = data["jobs"] if many else [data]
    federated = [
        Problem(
            f"jobs.{k}.kind" if many else "kind",
            "a federated job has no place here, where only batch jobs are read (submit it "
            "to the service: suanli submit; see where it goes: suanli schedule)",
        )
        for k, item in enumerate(items)
        if isinstance(item, dict) and item.get("kind") == "federated"
    ]
    if federated:
        raise ValidationError(federated, source)
    return [s for s in parse_specs(data, source, alliance, catalog) if isinstance(s, JobSpec)]


def _short_forms(item: Any) -> list[str]:
    """Where ``item`` wrote its accelerators as ``MODEL:COUNT``: the job's, or a federated
    job's participants'."""
    if not isinstance(item, dict):
        return []
    out = ["accelerators"] if isinstance(item.get("accelerators"), str) else []
    parts = item.get("participants")
    if isinstance(parts, list):
        out += [
            f"participants.{k}.accelerators"
            for k, p in enumerate(parts)
            if isinstance(p, dict) and isinstance(p.get("accelerators"), str)
        ]
    return out


def _as_written(item: Any, problems: list[Problem], where: str) -> list[Problem]:
    """The problems in the file's own terms: ``accelerators`` for the short form the person
    wrote (not the long form it stands for), and in a file of several jobs the job's id."""
    named = where and isinstance(item, dict) and isinstance(item.get("id"), str)
    short = _short_forms(item)
    out = []
    for p in problems:
        field = p.field
        for acc in short:
            if field.startswith((f"{acc}.any_of", f"{acc}.count")):
                field = acc
        message = f"job {item['id']!r}: {p.message}" if named else p.message
        out.append(Problem(f"{where}.{field}" if where and field else where or field, message))
    return out


def load_jobs(path: Path, alliance: Alliance | None = None) -> list[JobSpec]:
    return parse_jobs(read_yaml(path), str(path), alliance)


def load_specs(path: Path, alliance: Alliance | None = None) -> list[JobSpec | FederatedSpec]:
    return parse_specs(read_yaml(path), str(path), alliance)
