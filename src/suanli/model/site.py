"""Site: one member's cluster at one place."""

from __future__ import annotations

from dataclasses import dataclass

from suanli.model.ids import MemberId, SiteId


@dataclass(frozen=True, slots=True)
class Site:
    """A member's cluster. ``executor`` is the address of its Ray cluster (empty: none yet);
    ``region`` is free text used by residency rules and reports (for example ``cn-beijing``)."""

    id: SiteId
    member: MemberId
    region: str = ""
    executor: str = ""
