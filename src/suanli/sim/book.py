"""A simulation's ledger book: the runs of a simulated schedule as ledger records, in a book of
their own (``sim/SCENARIO/POLICY/seedN``), never the real one.

Simulated time starts at 0; the book places it at ``epoch`` (Unix seconds) so that statements
for a month read it like the real book. Each run of a job is one usage record per member whose
nodes it ran on; each member's capacity is one record per model over the whole simulation.
"""

from __future__ import annotations

from collections import defaultdict

from suanli.ledger.record import Kind, Record, units_of
from suanli.sim.simulator import SimResult


def book_name(scenario: str, policy: str, seed: int) -> str:
    return f"sim/{scenario}/{policy}/seed{seed}"


def book_records(result: SimResult, book: str, epoch: float) -> list[Record]:
    alliance = result.alliance
    out: list[Record] = []
    for jid, rec in sorted(result.records.items()):
        member = str(rec.job.spec.member)
        for attempt, run in enumerate(rec.runs, start=1):
            if run.end is None or run.end <= run.start:
                continue
            devices: dict[str, int] = defaultdict(int)
            units: dict[str, float] = defaultdict(float)
            for node_id, devs in run.assignments:
                node = alliance.nodes[node_id]
                provider = str(alliance.owner(node))
                devices[provider] += len(devs)
                units[provider] += units_of(
                    len(devs), alliance.nu_per_device(node), run.end - run.start
                )
            for provider in sorted(devices):
                out.append(
                    Record(
                        book,
                        Kind.USAGE,
                        member,
                        provider,
                        str(run.model),
                        devices[provider],
                        epoch + run.start,
                        epoch + run.end,
                        units[provider],
                        str(jid),
                        attempt,
                    )
                )
    capacity: dict[tuple[str, str], tuple[int, float]] = {}
    for node in alliance.nodes.values():
        key = (str(alliance.owner(node)), str(node.model))
        d, u = capacity.get(key, (0, 0.0))
        capacity[key] = (
            d + node.devices,
            u + units_of(node.devices, alliance.nu_per_device(node), result.end_time),
        )
    for (m, model), (d, u) in sorted(capacity.items()):
        out.append(Record(book, Kind.CAPACITY, m, m, model, d, epoch, epoch + result.end_time, u))
    return out
