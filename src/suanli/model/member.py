"""Member: an organization in the alliance."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from suanli.model.ids import MemberId


class MemberKind(StrEnum):
    ENTERPRISE = "enterprise"
    STARTUP = "startup"
    UNIVERSITY = "university"
    INSTITUTE = "institute"


class Tier(StrEnum):
    """``contributor``: has nodes in the pool and is guaranteed what it contributed.

    ``commons``: contributes nothing (or too little to count); guaranteed only what grants give
    it, and otherwise borrows idle capacity at the commons' fair-share weight.
    """

    CONTRIBUTOR = "contributor"
    COMMONS = "commons"


@dataclass(frozen=True, slots=True)
class Member:
    """An organization. ``weight`` (> 0) scales its fair share of borrowed capacity."""

    id: MemberId
    name: str
    kind: MemberKind
    tier: Tier
    weight: float = 1.0
