"""Share: a member's entitlement on one accelerator model, and grants that add to it."""

from __future__ import annotations

from dataclasses import dataclass

from suanli.model.ids import MemberId, ModelId


@dataclass(frozen=True, slots=True)
class Grant:
    """Devices of ``model`` granted to ``member``, out of ``donor``'s contribution if a donor
    is named (the donor's nominal drops by as much), or from the alliance's unassigned
    capacity otherwise."""

    member: MemberId
    model: ModelId
    devices: int
    donor: MemberId | None = None


@dataclass(frozen=True, slots=True)
class Share:
    """A member's entitlement on one model, in devices, with Kueue's cohort semantics.

    ``nominal``: guaranteed; derived from what the member contributed plus grants.
    ``borrowing_limit``: how far above nominal it may go with others' idle capacity
    (None: no limit). ``lending_limit``: how much of its unused nominal others may borrow
    (None: all of it).
    """

    member: MemberId
    model: ModelId
    nominal: int
    borrowing_limit: int | None = None
    lending_limit: int | None = None
