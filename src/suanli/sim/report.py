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


def summary_table_rows(summaries: list[dict[str, Any]]) -> list[list[str]]:
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
                str(s["completed"]),
                f"{s['jct_mean_s'] / H:.1f}",
                f"{s['jct_median_s'] / H:.1f}",
                f"{s['jct_p99_s'] / H:.0f}",
                f"{s['queue_mean_s'] / H:.1f}",
                f"{s['makespan_s'] / H:.0f}",
                f"{s['utilization']:.3f}",
                str(s["preemptions"]),
                f"{s['work_lost_device_h']:.0f}",
                f"{s['guarantee_violation_s'] / H:.1f}",
                f"{s['jain_index']:.3f}",
                f"{max(ratios):.2f}" if ratios else "-",
                f"{s['wall_s']:.1f}",
            ]
        )
    return rows


def summary_table(summaries: list[dict[str, Any]]) -> str:
    """The policies side by side, for a terminal (the columns are explained in POLICY_COLUMNS)."""
    return table([h for h, _ in POLICY_COLUMNS], summary_table_rows(summaries))


def member_table(s: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """The members under one policy, for a terminal (columns explained in MEMBER_COLUMNS)."""
    rows = [cells for cells, _ in _member_rows(s, names or {})]
    return table([h for h, _ in MEMBER_COLUMNS], rows)


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


def _members(res: SimResult, names: dict[str, str]) -> str:
    """Small multiples: one panel per member (one colour cannot tell fifteen lines apart), its
    share of the pool against its entitlement (dashed)."""
    s = res.series
    pool = sum(n.devices * res.alliance.nu_per_device(n) for n in res.alliance.nodes.values())
    members = sorted(s.nu_by_member)
    cols = min(4, max(1, len(members)))
    rows = -(-len(members) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(2.9 * cols, 1.9 * rows), sharex=True, sharey=True, squeeze=False
    )
    days = [t / 86400 for t in s.t]
    top = max(
        [max((u / pool for u in s.nu_by_member[m]), default=0.0) for m in members]
        + [res.entitlement_nu.get(m, 0.0) / pool for m in members]
        + [0.01]
    )
    for k, ax in enumerate(axes.flat):
        if k >= len(members):
            ax.axis("off")
            continue
        m = members[k]
        ax.plot(days, [u / pool for u in s.nu_by_member[m]], lw=0.7, color="#0369a1")
        e = res.entitlement_nu.get(m, 0.0)
        if e > 0:
            ax.axhline(e / pool, color="#b91c1c", lw=0.8, ls="--")
        ax.set_title(_label(m, names), fontsize=8)
        ax.set_xlim(0, _horizon_days(res))
        ax.set_ylim(0, top * 1.1)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.supxlabel("day (to the 99th-percentile finish)", fontsize=8)
    fig.supylabel("share of the pool (dashed: entitlement)", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _plots(
    results: list[SimResult], summaries: list[dict[str, Any]], names: dict[str, str]
) -> list[tuple[str, str]]:
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
        out.append(
            (f"{res.policy}: each member's share against its entitlement", _members(res, names))
        )
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
        [_label(m, names) for m in contributors],
        rotation=45,
        fontsize=7,
    )
    ax.set_ylabel("JCT in pool / JCT alone")
    ax.legend(fontsize=7)
    out.append(("Sharing incentive: below 1 means the member gains by pooling", _png(fig)))
    return out


#: the policy table's columns: header, what it means (shown as the header's tooltip and below)
POLICY_COLUMNS = [
    ("policy", "the scheduling policy"),
    ("done", "jobs finished"),
    ("JCT mean (h)", "mean job completion time: from arrival to finish, in hours"),
    ("JCT median (h)", "median job completion time"),
    ("JCT p99 (h)", "99th-percentile job completion time"),
    ("queue (h)", "mean time from arrival to first start"),
    ("makespan (h)", "from the first arrival to the last finish"),
    ("utilization", "busy share of the pool's capacity in normalized units (NU) over the run"),
    ("preemptions", "runs stopped to give devices back"),
    ("lost device-h", "device-hours of work redone after preemptions (since the last checkpoint)"),
    (
        "violations (h)",
        "member-hours in which a job that fit its member's guarantee had waited past the grace "
        "period",
    ),
    ("Jain", "Jain's fairness index of members' use against their entitlement (1 = fair)"),
    ("worst vs alone", "the largest ratio of a member's mean JCT in the pool to its JCT alone"),
    ("wall (s)", "seconds the simulation took"),
]
MEMBER_COLUMNS = [
    ("member", "who"),
    ("tier", "contributor (guaranteed what it brings) or commons"),
    ("jobs", "its jobs in the trace"),
    ("entitled NU", "its guarantee, in normalized units"),
    ("JCT mean (h)", "its jobs' mean completion time"),
    ("vs alone", "its mean JCT in the pool over its mean JCT on its own devices (< 1: it gains)"),
    ("violations (h)", "hours a job of it fitting its guarantee waited past the grace period"),
]


def _label(member: str, names: dict[str, str]) -> str:
    return f"{names[member]} ({member})" if member in names else member


def _html_table(columns: list[tuple[str, str]], rows: list[tuple[list[str], list[str]]]) -> str:
    """An HTML table; each row is its cells and, per cell, a CSS class ("" for none)."""
    head = "".join(f"<th title='{html.escape(w)}'>{html.escape(h)}</th>" for h, w in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='{c}'>{html.escape(v)}</td>" for v, c in zip(cells, classes, strict=True)
        )
        + "</tr>"
        for cells, classes in rows
    )
    legend = "".join(f"<dt>{html.escape(h)}</dt><dd>{html.escape(w)}</dd>" for h, w in columns[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table><dl>{legend}</dl>"


def _policy_rows(summaries: list[dict[str, Any]]) -> list[tuple[list[str], list[str]]]:
    best = min(s["jct_mean_s"] for s in summaries)
    out = []
    for cells, s in zip(summary_table_rows(summaries), summaries, strict=True):
        classes = ["num"] * len(cells)
        classes[0] = ""
        if s["jct_mean_s"] == best:
            classes[2] = "num best"
        if s["guarantee_violation_s"] > 0:
            classes[10] = "num bad"
        out.append((cells, classes))
    return out


def _member_rows(s: dict[str, Any], names: dict[str, str]) -> list[tuple[list[str], list[str]]]:
    out = []
    for m, v in sorted(s["members"].items()):
        ratio, viol = v["jct_ratio_vs_alone"], v["guarantee_violation_s"]
        cells = [
            _label(m, names),
            v["tier"],
            str(v["jobs"]),
            f"{v['entitlement_nu']:.2f}",
            "-" if v["jct_mean_s"] is None else f"{v['jct_mean_s'] / H:.1f}",
            "-" if ratio is None else f"{ratio:.2f}",
            f"{viol / H:.1f}",
        ]
        classes = ["", "", "num", "num", "num", "num", "num"]
        if ratio is not None:
            classes[5] = "num bad" if ratio > 1.0 else "num good"
        if viol > 0:
            classes[6] = "num bad"
        out.append((cells, classes))
    return out


def story(summaries: list[dict[str, Any]], names: dict[str, str]) -> list[str]:
    """The results in words: which policy did best, and under each who gained by pooling, who
    lost, and whose guarantee was broken."""
    lines = []
    if len(summaries) > 1:
        ranked = sorted(summaries, key=lambda s: s["jct_mean_s"])
        others = ", ".join(f"{s['policy']} {s['jct_mean_s'] / H:.1f} h" for s in ranked[1:])
        lines.append(
            f"{ranked[0]['policy']} finished jobs soonest on average "
            f"({ranked[0]['jct_mean_s'] / H:.1f} h; {others})."
        )
    for s in summaries:
        ratios = {
            m: v["jct_ratio_vs_alone"]
            for m, v in s["members"].items()
            if v["jct_ratio_vs_alone"] is not None
        }
        gained = sorted((r, m) for m, r in ratios.items() if r < 1.0)
        lost = sorted(((r, m) for m, r in ratios.items() if r > 1.0), reverse=True)
        text = f"Under {s['policy']}: "
        if ratios:
            text += f"{len(gained)} of {len(ratios)} members finished sooner than alone"
            if gained:
                r, m = gained[0]
                text += f" (most: {_label(m, names)}, {r:.2f}x its time alone)"
            if lost:
                worse = "; ".join(f"{_label(m, names)} {r:.2f}x" for r, m in lost[:5])
                text += f"; worse off than alone: {worse}"
            text += ". "
        broken = sorted(
            (
                (v["guarantee_violation_s"], m)
                for m, v in s["members"].items()
                if v["guarantee_violation_s"] > 0
            ),
            reverse=True,
        )
        if broken:
            text += (
                "Guarantees broken: "
                + "; ".join(f"{_label(m, names)} {sec / H:.1f} h" for sec, m in broken[:5])
                + "."
            )
        else:
            text += "Every member got its guarantee whenever it had jobs waiting."
        lines.append(text)
    return lines


def _facts(meta: dict[str, Any]) -> str:
    """The scenario's facts (never a path of the machine that made the report)."""
    shown = {k: v for k, v in meta.items() if k not in ("name", "names", "description")}
    items = "".join(
        f"<dt>{html.escape(k.replace('_', ' '))}</dt><dd>{html.escape(_fact(v))}</dd>"
        for k, v in shown.items()
    )
    return f"<dl class=facts>{items}</dl>"


def _fact(value: Any) -> str:
    if isinstance(value, str) and value.startswith("/"):
        return Path(value).name
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
    return str(value)


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;color:#1f2937}"
    "table{border-collapse:collapse;margin:.5em 0}th,td{padding:4px 8px;border-bottom:1px solid"
    " #e5e7eb;text-align:left}th{background:#f3f4f6;font-size:13px;cursor:help}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}td.bad{background:#fee2e2;"
    "color:#991b1b;font-weight:600}td.good{color:#166534}td.best{font-weight:700}"
    "dl{font-size:13px;color:#4b5563;display:grid;grid-template-columns:max-content auto;"
    "gap:2px 12px}dt{font-weight:600}dd{margin:0}.story{background:#f0f9ff;border-left:4px solid"
    " #0369a1;padding:.6em 1em}img{max-width:100%}"
)


def write_html(
    directory: Path, results: list[SimResult], summaries: list[dict[str, Any]], meta: dict[str, Any]
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    names: dict[str, str] = dict(meta.get("names") or {})
    plots = _plots(results, summaries, names)
    name = html.escape(str(meta.get("name", "")))
    parts = [
        "<!doctype html><html lang=en><head><meta charset='utf-8'>",
        f"<title>suanli simulation: {name}</title><style>{STYLE}</style></head><body>",
        f"<h1>Scenario {name}</h1>",
    ]
    if meta.get("description"):
        parts.append(f"<p>{html.escape(str(meta['description']))}</p>")
    parts.append(_facts(meta))
    parts.append("<h2>In short</h2><div class=story>")
    parts += [f"<p>{html.escape(line)}</p>" for line in story(summaries, names)]
    parts.append("</div><h2>Policies</h2>")
    parts.append(_html_table(POLICY_COLUMNS, _policy_rows(summaries)))
    for title, png in plots:
        parts += [
            f"<h2>{html.escape(title)}</h2>",
            f"<img alt='{html.escape(title)}' src='data:image/png;base64,{png}'>",
        ]
    for s in summaries:
        parts.append(f"<h2>Members under {html.escape(s['policy'])}</h2>")
        parts.append(_html_table(MEMBER_COLUMNS, _member_rows(s, names)))
    parts.append("</body></html>")
    path = directory / "index.html"
    path.write_text("\n".join(parts))
    for res in results:
        write_jobs_csv(directory / f"jobs-{res.policy}.csv", res)
    write_json(directory / "summary.json", summaries, meta)
    return path
