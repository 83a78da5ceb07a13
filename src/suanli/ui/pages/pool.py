"""The pool page: nodes, devices and use by vendor, model and site."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from suanli.model.node import NodeHealth
from suanli.service import dashboard
from suanli.service.dashboard import NodeLine, PoolRow
from suanli.ui.html import bar, card, e, pill, table
from suanli.ui.session import render, service_of, who_of

router = APIRouter(include_in_schema=False)


@router.get("/ui/")
def pool_page(request: Request) -> HTMLResponse:
    who = who_of(request)
    with service_of(request).db.session() as s:
        overview = dashboard.pool(s, who)
        counts = dashboard.job_counts(s, who)
    groups, nodes = overview.groups, overview.nodes
    body = (
        f"<div class=cards>{_cards(groups, nodes, counts)}</div>"
        f"<h2>By vendor</h2>{_by_vendor(groups)}"
        f"<h2>By vendor, model and site</h2>{_by_model_and_site(groups)}"
        f"<details><summary>All {len(nodes):,} nodes</summary>{_nodes(nodes)}</details>"
    )
    return render("Pool", "/ui/", who, body)


def _cards(groups: list[PoolRow], nodes: list[NodeLine], counts: dict[str, int]) -> str:
    devices = sum(g.devices for g in groups)
    busy = sum(g.busy for g in groups)
    return "".join(
        [
            card(f"{len(nodes):,}", "nodes"),
            card(f"{devices:,}", "devices"),
            card(f"{busy / devices:.0%}" if devices else "-", "in use"),
            card(f"{counts.get('RUNNING', 0):,}", "jobs running"),
            card(f"{counts.get('PENDING', 0):,}", "jobs waiting"),
            card(f"{sum(g.down for g in groups):,}", "nodes down"),
        ]
    )


def _by_vendor(groups: list[PoolRow]) -> str:
    totals: dict[str, list[int]] = {}
    for g in groups:
        v = totals.setdefault(g.vendor, [0, 0])
        v[0] += g.devices
        v[1] += g.busy
    return table(
        ["Vendor", "Devices", "Busy", "Utilization"],
        [
            [e(v), f"{d:,}", f"{b:,}", bar(b / d if d else 0)]
            for v, (d, b) in sorted(totals.items())
        ],
        {1, 2},
        "vendors",
    )


def _by_model_and_site(groups: list[PoolRow]) -> str:
    headers = ["Vendor", "Model", "Site", "Member", "Nodes", "Devices", "Busy", "Utilization"]
    return table(
        [*headers, "Down", "Draining"],
        [
            [
                e(g.vendor),
                e(g.model),
                e(g.site),
                e(g.member),
                str(g.nodes),
                f"{g.devices:,}",
                f"{g.busy:,}",
                bar(g.busy / g.devices if g.devices else 0),
                str(g.down),
                str(g.draining),
            ]
            for g in groups
        ],
        {4, 5, 6, 8, 9},
        "pool",
    )


def _health(line: NodeLine) -> str:
    n = line.node
    why = n.health_reason if n.health_reason and n.health != NodeHealth.UP.value else ""
    return pill(n.health) + (f" <span class=muted>{e(why)}</span>" if why else "")


def _nodes(nodes: list[NodeLine]) -> str:
    return table(
        ["Node", "Vendor", "Model", "Site", "Member", "Devices", "Busy", "State", "Health"],
        [
            [
                e(line.node.id),
                e(line.vendor),
                e(line.node.model),
                e(line.node.site),
                e(line.member),
                str(line.node.devices),
                str(line.busy),
                pill(line.node.state),
                _health(line),
            ]
            for line in nodes
        ],
        {5, 6},
        "nodes",
    )
