"""Site: one member's cluster at one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from suanli.model.ids import MemberId, ModelId, NodeId, SiteId


@dataclass(frozen=True, slots=True)
class SlurmSite:
    """How the pool reaches a member's Slurm cluster (docs/operations.md, "A Slurm site").

    ``command``: the prefix Slurm's commands run through (``["ssh", "hpc-login"]``; empty:
    they run on the control plane's machine). ``gres``: a catalog model's generic resource
    at this site (``npu:ascend910b``); a model left out gets the default of
    :func:`suanli.executors.slurm.default_gres`. ``names``: a node's name in Slurm where it
    differs from its id in the pool. ``run_dir``: where the runs' scripts, logs and exit
    codes go, a directory the cluster's nodes and the control plane share (empty: the
    server's state directory).
    """

    partition: str = ""
    account: str = ""
    qos: str = ""
    command: tuple[str, ...] = ()
    gres: Mapping[ModelId, str] = field(default_factory=dict)
    names: Mapping[NodeId, str] = field(default_factory=dict)
    run_dir: str = ""


@dataclass(frozen=True, slots=True)
class Site:
    """A member's cluster. ``executor`` is the address of its Ray cluster (empty: none yet),
    ``slurm`` how to reach it when it is a Slurm cluster instead;
    ``region`` names the fabric a site sits on: sites that declare the same region share it,
    and a multi-node gang may span them (members' racks in one datacenter). Empty: the site
    is a region of its own."""

    id: SiteId
    member: MemberId
    region: str = ""
    executor: str = ""
    slurm: SlurmSite | None = None
