"""Ledger records and their hash chain (pure).

A record is one of:

- ``usage``: ``member`` used ``devices`` devices of ``model`` on nodes of ``provider`` (the
  member itself, or a lender) for the job ``job`` (attempt ``attempt``) from ``start`` to
  ``end`` (Unix seconds);
- ``capacity``: ``member``'s nodes of ``model`` offered ``devices`` devices from ``start`` to
  ``end``, used or not (``provider`` is the member);
- ``release``: ``member`` released a revision of a repo of the hub at ``start`` (``model`` is
  ``KIND:REPO``, no devices, no units); ``detail`` holds the repo, the tag, the revision's
  commit, its licence and the jobs that produced it (the chain covers it).

``units`` is the amount in the normalized unit: NU-hours (``devices x NU per device x
hours``). Records of one *book* (``real`` for the service's executions, ``sim/...`` for a
simulation) form a chain: each record's hash is ``sha256(previous hash, canonical JSON of its
fields)``, the first one's previous hash is 64 zeros. Changing, removing or reordering any
record breaks every hash after it, which :func:`verify_chain` finds. A record without
``detail`` hashes as it always did (the key is left out of its payload).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

GENESIS = "0" * 64
SECONDS_PER_HOUR = 3600.0


class Kind(StrEnum):
    """What a record says: a member's use of devices, or a member's offer of them."""

    USAGE = "usage"
    CAPACITY = "capacity"
    RELEASE = "release"


@dataclass(frozen=True, slots=True)
class Record:
    book: str
    #: a :class:`Kind` (a string in the chain's payload: the hash is over ``"usage"``)
    kind: Kind
    member: str
    provider: str
    model: str
    devices: int
    start: float
    end: float
    units: float
    job: str | None = None
    attempt: int | None = None
    #: what a release record says of the release (JSON's types only)
    detail: dict[str, Any] | None = None

    def payload(self) -> bytes:
        """The canonical bytes the hash covers (sorted keys, no spaces, floats as repr)."""
        fields = asdict(self)
        if fields["detail"] is None:
            del fields["detail"]
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def units_of(devices: int, nu_per_device: float, seconds: float) -> float:
    return devices * nu_per_device * seconds / SECONDS_PER_HOUR


def chain_hash(prev: str, record: Record) -> str:
    h = hashlib.sha256(prev.encode())
    h.update(record.payload())
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class ChainCheck:
    records: int
    ok: bool
    #: the sequence number of the first record that does not check, and why
    first_bad: int | None = None
    reason: str | None = None


def verify_chain(rows: Iterable[tuple[int, Record, str, str]]) -> ChainCheck:
    """Check ``(seq, record, prev, hash)`` rows of one book in sequence order."""
    expected_prev = GENESIS
    n = 0
    for seq, record, prev, digest in rows:
        n += 1
        if prev != expected_prev:
            return ChainCheck(
                n, False, seq, "its previous hash is not the hash of the record before"
            )
        if chain_hash(prev, record) != digest:
            return ChainCheck(n, False, seq, "its hash does not match its contents")
        expected_prev = digest
    return ChainCheck(n, True)
