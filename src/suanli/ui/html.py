"""HTML building blocks: escaping, the page layout, tables and bars. No template engine: every
value goes through :func:`e` (escaping) on its way into the page."""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence
from urllib.parse import urlencode

STYLE = """
:root { --fg:#1d2330; --muted:#667085; --line:#e4e7ec; --accent:#2f6fdb; --bg:#f7f8fa;
        --ok:#1a7f37; --warn:#b54708; --bad:#b42318; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color:var(--fg); background:var(--bg); }
header { background:#111827; color:#fff; padding:10px 24px; display:flex; gap:22px;
         align-items:center; }
header a { color:#d1d5db; text-decoration:none; } header a.on, header a:hover { color:#fff; }
header .brand { font-weight:700; color:#fff; margin-right:12px; }
header .who { margin-left:auto; color:#9ca3af; }
main { padding:20px 24px; max-width:1400px; }
h1 { font-size:20px; margin:0 0 14px; } h2 { font-size:16px; margin:22px 0 8px; }
table { border-collapse:collapse; background:#fff; border:1px solid var(--line);
        width:100%; margin-bottom:12px; }
th, td { text-align:left; padding:5px 9px; border-bottom:1px solid var(--line);
         vertical-align:top; overflow-wrap:anywhere; }
th, td.num { white-space:nowrap; }
th { background:#f2f4f7; font-weight:600; font-size:12px; color:#344054; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
td.reason { white-space:normal; color:var(--muted); }
table.facts > tbody > tr > th { width:1%; font-size:13px; }
.bar { display:inline-block; width:120px; height:10px; background:#e4e7ec; border-radius:5px;
       vertical-align:middle; overflow:hidden; margin-right:6px; }
.bar > i { display:block; height:100%; background:var(--accent); }
.pill { display:inline-block; padding:0 7px; border-radius:9px; font-size:12px;
        background:#eef2f6; }
.pill.RUNNING, .pill.SUCCEEDED, .pill.up { background:#dcfae6; color:var(--ok); }
.pill.PENDING, .pill.ADMITTED, .pill.draining { background:#fef0c7; color:var(--warn); }
.pill.FAILED, .pill.down, .pill.CANCELLED { background:#fee4e2; color:var(--bad); }
.cards { display:flex; gap:12px; flex-wrap:wrap; margin-bottom:14px; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px 14px;
        min-width:150px; }
.card b { display:block; font-size:20px; } .card span { color:var(--muted); font-size:12px; }
.plots { display:grid; grid-template-columns:repeat(auto-fill, minmax(420px, 1fr)); gap:12px; }
.plot { background:#fff; border:1px solid var(--line); border-radius:8px; padding:8px 12px; }
pre.spec { background:#f8fafc; border:1px solid var(--line); border-radius:6px; padding:8px;
           margin:0; white-space:pre-wrap; overflow-wrap:anywhere; font-size:13px; }
pre.log { background:#0b1020; color:#d6deeb; padding:12px; border-radius:8px; min-height:120px;
          max-height:520px; overflow:auto; white-space:pre-wrap; }
form.inline { display:flex; gap:8px; align-items:center; margin-bottom:12px; }
input, select, button { font:inherit; padding:4px 8px; }
.muted { color:var(--muted); } a { color:var(--accent); }
button.link { background:none; border:0; color:#d1d5db; cursor:pointer; padding:0; }
button.link:hover { color:#fff; }
"""

NAV = [
    ("/ui/", "Pool"),
    ("/ui/queue", "Queue"),
    ("/ui/jobs", "Jobs"),
    ("/ui/members", "Members"),
    ("/ui/ledger", "Ledger"),
    ("/ui/hub", "Hub"),
    ("/ui/reports", "Reports"),
]


def e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def url(path: str, **params: object) -> str:
    clean = {k: v for k, v in params.items() if v not in (None, "")}
    return path + ("?" + urlencode(clean) if clean else "")


def page(title: str, here: str, who: str, body: str, script: str = "", csrf: str = "") -> str:
    nav = "".join(
        f'<a href="{p}" class="{"on" if p == here else ""}">{e(label)}</a>' for p, label in NAV
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · suanli</title><style>{STYLE}</style></head><body>"
        '<header><span class=brand title="算力: computing power">suanli</span>'
        f"{nav}<span class=who>{e(who)} · "
        '<form method=post action="/ui/logout" style="display:inline">'
        f'<input type=hidden name=csrf value="{e(csrf)}">'
        "<button class=link type=submit>sign out</button></form></span></header>"
        f"<main><h1>{e(title)}</h1>{body}</main>"
        f"{f'<script>{script}</script>' if script else ''}</body></html>"
    )


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric: set[int] | None = None,
    table_id: str = "",
) -> str:
    """``rows`` hold HTML already (each cell escaped by the caller with :func:`e`)."""
    numeric = numeric or set()
    head = "".join(
        f'<th class="{"num" if i in numeric else ""}">{e(h)}</th>' for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if i in numeric else ""}">{c}</td>' for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    ident = f' id="{e(table_id)}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def facts(rows: Iterable[tuple[str, str]], table_id: str = "") -> str:
    """A two-column table of facts: a label (plain text, escaped here, never wrapped) and its
    value (HTML already)."""
    body = "".join(f"<tr><th scope=row>{e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    ident = f' id="{e(table_id)}"' if table_id else ""
    return f"<table class=facts{ident}><tbody>{body}</tbody></table>"


def bar(fraction: float) -> str:
    pct = max(0.0, min(1.0, fraction)) * 100
    return f'<span class=bar><i style="width:{pct:.1f}%"></i></span>{pct:.0f}%'


def pill(text: str) -> str:
    return f'<span class="pill {e(text)}">{e(text)}</span>'


def card(value: str, label: str) -> str:
    return f"<div class=card><b>{e(value)}</b><span>{e(label)}</span></div>"


def when(t: float | None) -> str:
    return "" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
