"""What a person looks at: a terminal table, JSON, a per-job CSV and an HTML report."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from suanli.sim.metrics import job_rows
from suanli.sim.simulator import SimResult
from suanli.text import table

H = 3600.0


def summary_table(summaries: list[dict[str, Any]]) -> str:
    rows = []
    for s in summaries:
        ratios = [
            m["jct_ratio_vs_alone"]
            for m in s["members"].values()
            if m["jct_ratio_vs_alone"] is not None
        ]
        rows.append(
            [
                s["policy"],
                s["completed"],
                f"{s['jct_mean_s'] / H:.1f}",
                f"{s['jct_median_s'] / H:.1f}",
                f"{s['jct_p99_s'] / H:.0f}",
                f"{s['queue_mean_s'] / H:.1f}",
                f"{s['makespan_s'] / H:.0f}",
                f"{s['utilization']:.3f}",
                s["preemptions"],
                f"{s['work_lost_device_h']:.0f}",
                f"{s['guarantee_violation_s'] / H:.1f}",
                f"{s['jain_index']:.3f}",
                f"{max(ratios):.2f}" if ratios else "-",
                f"{s['wall_s']:.1f}",
            ]
        )
    return table(
        [
            "policy",
            "done",
            "JCT mean h",
            "median h",
            "p99 h",
            "queue h",
            "makespan h",
            "util NU",
            "preempt",
            "lost GPU-h",
            "viol h",
            "Jain",
            "worst ratio",
            "wall s",
        ],
        rows,
    )


def member_table(s: dict[str, Any]) -> str:
    rows = [
        [
            m,
            v["tier"],
            v["jobs"],
            f"{v['entitlement_nu']:.2f}",
            "-" if v["jct_mean_s"] is None else f"{v['jct_mean_s'] / H:.1f}",
            "-" if v["jct_ratio_vs_alone"] is None else f"{v['jct_ratio_vs_alone']:.2f}",
            f"{v['guarantee_violation_s'] / H:.1f}",
        ]
        for m, v in sorted(s["members"].items())
    ]
    return table(["member", "tier", "jobs", "entitled NU", "JCT h", "vs alone", "viol h"], rows)


def write_json(path: Path, summaries: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    doc: Any = (
        summaries[0] | {"scenario": meta}
        if len(summaries) == 1
        else {"scenario": meta, "policies": summaries}
    )
    path.write_text(json.dumps(doc, indent=2, default=float))


def write_jobs_csv(path: Path, res: SimResult) -> None:
    rows = job_rows(res.records)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _horizon_days(res: SimResult) -> float:
    """The time 99 % of jobs had finished by: a few very long jobs would flatten the plots."""
    ends = sorted(r.finished_at or 0.0 for r in res.records.values())
    return ends[int(0.99 * (len(ends) - 1))] / 86400 * 1.05 if ends else 1.0


def _plots(results: list[SimResult], summaries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for res in results:
        jct = sorted((r.finished_at or 0) - r.job.arrival for r in res.records.values())
        ys = [(i + 1) / len(jct) for i in range(len(jct))]
        ax.plot([x / H for x in jct], ys, label=res.policy)
    ax.set_xscale("log")
    ax.set_xlabel("JCT (hours, log)")
    ax.set_ylabel("fraction of jobs")
    ax.legend()
    ax.grid(alpha=0.3)
    out.append(("JCT CDF per policy", _png(fig)))
    for res in results:
        s = res.series
        fig, ax = plt.subplots(figsize=(7, 3))
        dev: dict[str, int] = {}
        for n in res.alliance.nodes.values():
            dev[n.model] = dev.get(n.model, 0) + n.devices
        for model, busy in sorted(s.busy_by_model.items()):
            ax.plot([t / 86400 for t in s.t], [b / dev[model] for b in busy], label=model, lw=0.8)
        ax.set_ylim(0, 1.05)
        ax.set_xlim(0, _horizon_days(res))
        ax.set_xlabel("day (to the 99th-percentile finish)")
        ax.set_ylabel("busy fraction")
        ax.legend(fontsize=7)
        out.append((f"{res.policy}: utilization over time by chip model", _png(fig)))
        fig, ax = plt.subplots(figsize=(7, 3.5))
        pool = sum(n.devices * res.alliance.nu_per_device(n) for n in res.alliance.nodes.values())
        for m, nu in sorted(s.nu_by_member.items()):
            e = res.entitlement_nu.get(m, 0.0)
            (line,) = ax.plot([t / 86400 for t in s.t], [u / pool for u in nu], lw=0.7, label=m)
            if e > 0:
                ax.axhline(e / pool, color=line.get_color(), lw=0.5, ls="--")
        ax.set_xlim(0, _horizon_days(res))
        ax.set_xlabel("day (to the 99th-percentile finish)")
        ax.set_ylabel("share of pool NU (dashed: entitlement)")
        ax.legend(fontsize=6, ncol=3)
        out.append((f"{res.policy}: each member's share against its entitlement", _png(fig)))
    fig, ax = plt.subplots(figsize=(8, 3.5))
    contributors = sorted(
        m for m, v in summaries[0]["members"].items() if v["jct_ratio_vs_alone"] is not None
    )
    width = 0.8 / max(len(summaries), 1)
    for i, summ in enumerate(summaries):
        ys = [summ["members"][m]["jct_ratio_vs_alone"] or 0 for m in contributors]
        ax.bar([k + i * width for k in range(len(contributors))], ys, width, label=summ["policy"])
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks(
        [k + width * (len(summaries) - 1) / 2 for k in range(len(contributors))],
        contributors,
        rotation=45,
        fontsize=7,
    )
    ax.set_ylabel("JCT in pool / JCT alone")
    ax.legend(fontsize=7)
    out.append(("Sharing incentive: below 1 means the member gains by pooling", _png(fig)))
    return out


def write_html(
    directory: Path, results: list[SimResult], summaries: list[dict[str, Any]], meta: dict[str, Any]
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    plots = _plots(results, summaries)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>suanli simulation: {html.escape(str(meta.get('name', '')))}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "pre{background:#f6f6f6;padding:1em;overflow-x:auto}img{max-width:100%}</style>",
        "</head><body>",
        f"<h1>Scenario {html.escape(str(meta.get('name', '')))}</h1>",
        f"<p>{html.escape(json.dumps(meta, default=str))}</p>",
        "<h2>Policies</h2><pre>",
        html.escape(summary_table(summaries)),
        "</pre>",
    ]
    for title, png in plots:
        parts += [
            f"<h2>{html.escape(title)}</h2>",
            f"<img alt='{html.escape(title)}' src='data:image/png;base64,{png}'>",
        ]
    for s in summaries:
        parts += [
            f"<h2>Members under {html.escape(s['policy'])}</h2><pre>",
            html.escape(member_table(s)),
            "</pre>",
        ]
    parts.append("</body></html>")
    path = directory / "index.html"
    path.write_text("\n".join(parts))
    for res in results:
        write_jobs_csv(directory / f"jobs-{res.policy}.csv", res)
    write_json(directory / "summary.json", summaries, meta)
    return path
