"""Node: a host at a site with N accelerators of one model."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from suanli.model.ids import ModelId, NodeId, SiteId


class NodeState(StrEnum):
    """What its member wants of a node: ``active`` takes jobs; ``draining`` keeps its running
    jobs and takes no new ones."""

    ACTIVE = "active"
    DRAINING = "draining"


class NodeHealth(StrEnum):
    """What the executor last said of a node: ``down`` (its Ray node died, its site has been
    silent past the timeout) takes no jobs until it is ``up`` again."""

    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Node:
    """A host. Devices are numbered ``0 .. devices-1``.

    ``topology`` lists groups of device indexes that communicate fast with each other (an
    Ascend HCCS ring of 4, an NVLink island). Groups are disjoint and cover every device; an
    empty tuple means one group of all devices. A job that fits in one group is placed inside
    one. ``calibrated_tflops`` is a measured per-device peak that overrides the catalog figure,
    and is required where the catalog has none.
    """

    id: NodeId
    site: SiteId
    model: ModelId
    devices: int
    cpu: float
    memory_gb: float
    topology: tuple[tuple[int, ...], ...] = ()
    calibrated_tflops: float | None = None

    @property
    def groups(self) -> tuple[tuple[int, ...], ...]:
        return self.topology or (tuple(range(self.devices)),)
