"""The alliance file: members, sites, nodes, share limits, grants and datasets (YAML).

Parsing has two stages: pydantic checks each entry's shape, then :func:`build_alliance`
checks references across entries (a node's site exists, a model is in the catalog, a model
without a trustworthy peak figure has a calibration, ...). Every problem is collected; the
alliance is returned only if there are none.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from suanli.catalog.accelerator import Catalog, load_catalog
from suanli.errors import CalibrationRequiredError, Problem, ValidationError
from suanli.model.alliance import Alliance, ShareLimits
from suanli.model.dataset import Dataset
from suanli.model.ids import DatasetId, MemberId, ModelId, NodeId, SiteId
from suanli.model.member import Member, MemberKind, Tier
from suanli.model.node import Node
from suanli.model.share import Grant
from suanli.model.site import Site, SlurmSite
from suanli.spec.common import ID_PATTERN, parse_yaml, pydantic_problems, read_yaml

Ident = Annotated[str, Field(pattern=ID_PATTERN)]
MAX_DEVICES_PER_NODE = 64


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MemberEntry(_Strict):
    id: Ident
    name: str = ""
    kind: Literal["enterprise", "startup", "university", "institute"]
    tier: Literal["contributor", "commons"] = "contributor"
    weight: Annotated[float, Field(gt=0, le=1000)] = 1.0


class SlurmEntry(_Strict):
    """A site that is a Slurm cluster (the member keeps running it)."""

    partition: Annotated[str, Field(max_length=100, pattern=r"^[A-Za-z0-9_.-]*$")] = ""
    account: Annotated[str, Field(max_length=100, pattern=r"^[A-Za-z0-9_.-]*$")] = ""
    qos: Annotated[str, Field(max_length=100, pattern=r"^[A-Za-z0-9_.-]*$")] = ""
    #: the prefix Slurm's commands run through, as words (["ssh", "hpc-login"])
    command: list[Annotated[str, Field(min_length=1, max_length=500)]] = []
    #: catalog model -> the site's generic resource, TYPE:NAME (npu:ascend910b)
    gres: dict[str, Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*:[A-Za-z0-9_.-]+$")]] = {}
    #: pool node id -> its name in Slurm, where they differ
    names: dict[str, Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]] = {}
    #: a directory the cluster's nodes and the control plane share, for the runs' files
    run_dir: Annotated[str, Field(max_length=1000)] = ""


class SiteEntry(_Strict):
    id: Ident
    member: Ident
    region: str = ""
    executor: str = ""
    slurm: SlurmEntry | None = None


class NodeEntry(_Strict):
    """One node, or with ``count`` > 1 that many identical nodes named ``{id}-01``, ..."""

    id: Ident
    site: Ident
    model: str
    devices: Annotated[int, Field(ge=1, le=MAX_DEVICES_PER_NODE)]
    cpu: Annotated[float, Field(gt=0, le=4096)]
    memory_gb: Annotated[float, Field(gt=0, le=65536)]
    topology: list[list[Annotated[int, Field(ge=0)]]] = []
    calibrated_tflops: Annotated[float, Field(gt=0, le=100000)] | None = None
    count: Annotated[int, Field(ge=1, le=10000)] = 1


class ShareEntry(_Strict):
    member: Ident
    model: str
    borrowing_limit: Annotated[int, Field(ge=0)] | None = None
    lending_limit: Annotated[int, Field(ge=0)] | None = None


class GrantEntry(_Strict):
    member: Ident
    model: str
    devices: Annotated[int, Field(ge=1)]
    donor: Ident | None = None


class Residency(_Strict):
    sites: list[Ident] = []
    members: list[Ident] = []


def _relative_path(v: str) -> str:
    parts = v.split("/")
    if v.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in v:
        raise ValueError(
            "a relative path under the owner's data directory (no leading /, no . or .. parts)"
        )
    return v


class DatasetEntry(_Strict):
    id: Ident
    owner: Ident
    readers: list[Ident] = []
    #: members whose federated runs may train on it where it lies (never reading it)
    federated_with: list[Ident] = []
    residency: Residency = Residency()
    #: relative to DATA_ROOT/OWNER on the nodes; the id when empty
    path: Annotated[str, Field(max_length=500), AfterValidator(_relative_path)] | None = None


class AllianceFile(_Strict):
    """The alliance file, as a person writes it."""

    alliance: Ident
    members: list[MemberEntry]
    sites: list[SiteEntry] = []
    nodes: list[NodeEntry] = []
    shares: list[ShareEntry] = []
    grants: list[GrantEntry] = []
    datasets: list[DatasetEntry] = []


def _dupes(kind: str, ids: list[str]) -> list[Problem]:
    seen: set[str] = set()
    out = []
    for i, x in enumerate(ids):
        if x in seen:
            out.append(Problem(f"{kind}.{i}.id", f"duplicate id {x!r}"))
        seen.add(x)
    return out


def _check_topology(path: str, topology: list[list[int]], devices: int) -> list[Problem]:
    if not topology:
        return []
    flat = [d for group in topology for d in group]
    problems = []
    if any(d >= devices for d in flat):
        problems.append(Problem(path, f"device index out of range 0..{devices - 1}"))
    if sorted(flat) != list(range(devices)):
        problems.append(Problem(path, "groups must be disjoint and cover every device once"))
    return problems


def _model(catalog: Catalog, path: str, name: str, problems: list[Problem]) -> ModelId | None:
    if name in catalog:
        return ModelId(name)
    hits = catalog.resolve(name)
    if len(hits) == 1:
        return hits[0]
    if hits:
        problems.append(Problem(path, f"{name!r} names several models, pick one of {list(hits)}"))
    else:
        problems.append(Problem(path, f"unknown accelerator model {name!r}"))
    return None


def _prefixes(ids: list[str]) -> list[Problem]:
    """A member's job ids begin with ``MEMBER-``: no member id may begin with another's and a
    dash, or two members' job ids could clash (and a conflict reveal the other's job)."""
    out = []
    for k, mid in enumerate(ids):
        for other in ids:
            if mid != other and mid.startswith(f"{other}-"):
                why = f"begins with member {other!r} and a dash: their job ids could clash"
                out.append(Problem(f"members.{k}.id", why))
    return out


def _slurm_site(
    path: str, entry: SiteEntry, catalog: Catalog, problems: list[Problem]
) -> SlurmSite | None:
    slurm = entry.slurm
    if slurm is None:
        return None
    if entry.executor:
        problems.append(Problem(f"{path}.slurm", "a site is a Ray or a Slurm cluster, not both"))
    gres = {}
    for name, value in slurm.gres.items():
        mid = _model(catalog, f"{path}.slurm.gres.{name}", name, problems)
        if mid is not None:
            gres[mid] = value
    return SlurmSite(
        slurm.partition,
        slurm.account,
        slurm.qos,
        tuple(slurm.command),
        gres,
        {NodeId(k): v for k, v in slurm.names.items()},
        slurm.run_dir,
    )


def _slurm_names(doc: AllianceFile, nodes: Mapping[NodeId, Node]) -> list[Problem]:
    out = []
    for i, site in enumerate(doc.sites):
        for name in site.slurm.names if site.slurm is not None else ():
            node = nodes.get(NodeId(name))
            if node is None or node.site != site.id:
                out.append(Problem(f"sites.{i}.slurm.names.{name}", "not a node of this site"))
    return out


def build_alliance(doc: AllianceFile, catalog: Catalog) -> Alliance:
    problems: list[Problem] = []
    problems += _dupes("members", [m.id for m in doc.members])
    problems += _prefixes([m.id for m in doc.members])
    problems += _dupes("sites", [s.id for s in doc.sites])
    problems += _dupes("datasets", [d.id for d in doc.datasets])
    members = {
        MemberId(m.id): Member(
            MemberId(m.id), m.name or m.id, MemberKind(m.kind), Tier(m.tier), m.weight
        )
        for m in doc.members
    }
    sites: dict[SiteId, Site] = {}
    for i, s in enumerate(doc.sites):
        if s.member not in members:
            problems.append(Problem(f"sites.{i}.member", f"unknown member {s.member!r}"))
        slurm = _slurm_site(f"sites.{i}", s, catalog, problems)
        sites[SiteId(s.id)] = Site(SiteId(s.id), MemberId(s.member), s.region, s.executor, slurm)
    nodes: dict[NodeId, Node] = {}
    calibration: list[Problem] = []
    for i, n in enumerate(doc.nodes):
        path = f"nodes.{i}"
        if n.site not in sites:
            problems.append(Problem(f"{path}.site", f"unknown site {n.site!r}"))
        model_id = _model(catalog, f"{path}.model", n.model, problems)
        problems += _check_topology(f"{path}.topology", n.topology, n.devices)
        if model_id is not None:
            acc = catalog.get(model_id)
            if n.devices % acc.alloc_unit:
                problems.append(
                    Problem(
                        f"{path}.devices",
                        f"{acc.id} devices come in groups of "
                        f"{acc.alloc_unit}; {n.devices} is not a multiple",
                    )
                )
            if acc.peak_tflops is None and n.calibrated_tflops is None:
                calibration.append(
                    Problem(
                        f"{path}.calibrated_tflops",
                        f"required: the catalog has no trustworthy peak figure for {acc.id}; "
                        "declare the measured dense BF16/FP16 TFLOPS per device",
                    )
                )
        names = [n.id] if n.count == 1 else [f"{n.id}-{k:02d}" for k in range(1, n.count + 1)]
        for name in names:
            if NodeId(name) in nodes:
                problems.append(Problem(f"{path}.id", f"duplicate node id {name!r}"))
            nodes[NodeId(name)] = Node(
                NodeId(name),
                SiteId(n.site),
                model_id or ModelId(n.model),
                n.devices,
                n.cpu,
                n.memory_gb,
                tuple(tuple(g) for g in n.topology),
                n.calibrated_tflops,
            )
    problems += _slurm_names(doc, nodes)
    limits: dict[tuple[MemberId, ModelId], ShareLimits] = {}
    for i, sh in enumerate(doc.shares):
        if sh.member not in members:
            problems.append(Problem(f"shares.{i}.member", f"unknown member {sh.member!r}"))
        mid = _model(catalog, f"shares.{i}.model", sh.model, problems)
        if mid is not None:
            key = (MemberId(sh.member), mid)
            if key in limits:
                problems.append(Problem(f"shares.{i}", "duplicate entry for member and model"))
            limits[key] = ShareLimits(sh.borrowing_limit, sh.lending_limit)
    grants = []
    for i, g in enumerate(doc.grants):
        if g.member not in members:
            problems.append(Problem(f"grants.{i}.member", f"unknown member {g.member!r}"))
        if g.donor is not None and g.donor not in members:
            problems.append(Problem(f"grants.{i}.donor", f"unknown member {g.donor!r}"))
        mid = _model(catalog, f"grants.{i}.model", g.model, problems)
        if mid is not None:
            grants.append(
                Grant(MemberId(g.member), mid, g.devices, MemberId(g.donor) if g.donor else None)
            )
    datasets = {}
    for i, d in enumerate(doc.datasets):
        for field, ref in (
            [("owner", d.owner)]
            + [(f"readers.{k}", r) for k, r in enumerate(d.readers)]
            + [(f"federated_with.{k}", r) for k, r in enumerate(d.federated_with)]
        ):
            if ref not in members:
                problems.append(Problem(f"datasets.{i}.{field}", f"unknown member {ref!r}"))
        for k, site in enumerate(d.residency.sites):
            if site not in sites:
                problems.append(
                    Problem(f"datasets.{i}.residency.sites.{k}", f"unknown site {site!r}")
                )
        for k, m in enumerate(d.residency.members):
            if m not in members:
                problems.append(
                    Problem(f"datasets.{i}.residency.members.{k}", f"unknown member {m!r}")
                )
        datasets[DatasetId(d.id)] = Dataset(
            DatasetId(d.id),
            MemberId(d.owner),
            frozenset(MemberId(r) for r in d.readers),
            frozenset(SiteId(x) for x in d.residency.sites),
            frozenset(MemberId(m) for m in d.residency.members),
            d.path or "",
            frozenset(MemberId(m) for m in d.federated_with),
        )
    alliance = Alliance(
        doc.alliance, catalog, members, sites, nodes, datasets, tuple(grants), limits
    )
    if not problems:
        for (member, model), share in alliance.shares().items():
            if share.nominal < 0:
                problems.append(
                    Problem(
                        "grants",
                        f"{member} grants away more {model} devices "
                        f"than it contributes ({share.nominal} left)",
                    )
                )
    if problems or calibration:
        if calibration and not problems:
            raise CalibrationRequiredError(calibration)
        raise ValidationError(problems + calibration)
    return alliance


def parse_alliance(data: Any, source: str = "", catalog: Catalog | None = None) -> Alliance:
    if not isinstance(data, dict):
        raise ValidationError([Problem("", "an alliance file is a YAML mapping")], source)
    try:
        doc = AllianceFile.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError(pydantic_problems(exc), source) from None
    try:
        return build_alliance(doc, catalog or load_catalog())
    except ValidationError as exc:
        exc.source = source
        raise type(exc)(exc.problems, source) from None


def load_alliance(path: Path, catalog: Catalog | None = None) -> Alliance:
    return parse_alliance(read_yaml(path), str(path), catalog)


def loads_alliance(text: str, catalog: Catalog | None = None) -> Alliance:
    return parse_alliance(parse_yaml(text, "<string>"), "<string>", catalog)
