"""What the CLI prints about a pool and a pass: plain data first, text second."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from suanli.model.alliance import Alliance
from suanli.sched.decision import Admit, Preempt
from suanli.sched.schedule import PassResult
from suanli.sched.snapshot import Snapshot
from suanli.text import table


def pool_text(alliance: Alliance) -> str:
    out = [
        f"Alliance {alliance.name}: {len(alliance.members)} members, "
        f"{len(alliance.sites)} sites, {len(alliance.nodes)} nodes, "
        f"{sum(n.devices for n in alliance.nodes.values())} accelerators",
        "",
    ]
    ent = alliance.entitlement_nu()
    contributed = alliance.contributed()
    out.append(
        table(
            ["member", "kind", "tier", "weight", "sites", "devices", "entitlement NU"],
            [
                [
                    m.id,
                    m.kind,
                    m.tier,
                    m.weight,
                    sum(1 for s in alliance.sites.values() if s.member == m.id),
                    sum(v for (mm, _), v in contributed.items() if mm == m.id),
                    f"{ent[m.id]:.3f}",
                ]
                for m in alliance.members.values()
            ],
        )
    )
    out.append("")
    by_model: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for n in alliance.nodes.values():
        acc = alliance.catalog.get(n.model)
        key = (acc.vendor, n.model, acc.stack)
        by_model[key][0] += 1
        by_model[key][1] += n.devices
    nu_total: dict[str, float] = defaultdict(float)
    for n in alliance.nodes.values():
        nu_total[n.model] += alliance.nu_per_device(n) * n.devices
    out.append(
        table(
            ["vendor", "model", "stack", "nodes", "devices", "NU"],
            [
                [v, m, s, c[0], c[1], f"{nu_total[m]:.3f}"]
                for (v, m, s), c in sorted(by_model.items())
            ],
        )
    )
    out.append("")
    out.append(
        table(
            ["member", "model", "nominal", "borrowing limit", "lending limit"],
            [
                [
                    s.member,
                    s.model,
                    s.nominal,
                    "-" if s.borrowing_limit is None else s.borrowing_limit,
                    "-" if s.lending_limit is None else s.lending_limit,
                ]
                for s in alliance.shares().values()
            ],
        )
    )
    return "\n".join(out)


def pass_json(snapshot: Snapshot, result: PassResult, policy: str) -> dict[str, Any]:
    decisions: list[dict[str, Any]] = []
    for d in result.decisions:
        if isinstance(d, Admit):
            decisions.append(
                {
                    "action": "admit",
                    "job": d.job,
                    "model": d.placement.model,
                    "placement": {n: list(devs) for n, devs in d.placement.assignments},
                    "reason": d.reason,
                }
            )
        elif isinstance(d, Preempt):
            decisions.append(
                {"action": "preempt", "job": d.job, "reason": d.reason, "grace_s": d.grace_s}
            )
    admitted = {d.job for d in result.admits}
    pending = [
        {"job": j, "member": q.member, "reason": result.reason(snapshot, j)}
        for j, q in snapshot.pending.items()
        if j not in admitted
    ]
    return {"policy": policy, "decisions": decisions, "pending": pending}


def pass_text(data: dict[str, Any]) -> str:
    rows = []
    for d in data["decisions"]:
        if d["action"] == "admit":
            where = ", ".join(f"{n}[{','.join(map(str, v))}]" for n, v in d["placement"].items())
            rows.append(["ADMIT", d["job"], f"{d['model']} on {where}", d["reason"]])
        else:
            rows.append(["PREEMPT", d["job"], f"grace {d['grace_s']:.0f}s", d["reason"]])
    out = [f"Policy {data['policy']}: {len(rows)} decision(s)", ""]
    out.append(table(["decision", "job", "where", "why"], rows) if rows else "(none)")
    out.append("")
    out.append(f"{len(data['pending'])} job(s) wait:")
    if data["pending"]:
        out.append(
            table(
                ["job", "member", "why it waits"],
                [[p["job"], p["member"], p["reason"]] for p in data["pending"]],
            )
        )
    return "\n".join(out)
