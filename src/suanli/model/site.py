"""Site: one member's cluster at one place."""

from __future__ import annotations

from dataclasses import dataclass

from suanli.model.ids import MemberId, SiteId


@dataclass(frozen=True, slots=True)
class Site:
    """A member's cluster. ``executor`` is the address of its Ray cluster (empty: none yet);
    ``region`` names the fabric a site sits on: sites that declare the same region share it,
    and a multi-node gang may span them (members' racks in one datacenter). Empty: the site
    is a region of its own."""

    id: SiteId
    member: MemberId
    region: str = ""
    executor: str = ""
