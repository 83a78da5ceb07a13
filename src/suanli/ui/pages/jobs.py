"""The jobs pages: the list, and one job with its log followed live."""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from suanli.errors import NotFoundError
from suanli.model.job import Phase
from suanli.service import jobs
from suanli.service.auth import Principal
from suanli.ui.html import e, facts, pill, table, url, when
from suanli.ui.session import render, service_of, who_of
from suanli.ui.svg import line_chart

router = APIRouter(include_in_schema=False)
#: jobs per page
PAGE_SIZE = 200
#: how much of a job's log its page keeps (its end)
LOG_PAGE_CHARS = 256 * 1024
#: the largest ``after`` a link may carry (a 63-bit database integer)
MAX_SEQ = 1 << 62


@router.get("/ui/jobs")
def jobs_page(request: Request, member: str = "", phase: str = "", after: int = 0) -> HTMLResponse:
    who = who_of(request)
    phases = {phase} if phase in {p.value for p in Phase} else None
    after = min(max(0, after), MAX_SEQ)
    with service_of(request).db.session() as s:
        pg = jobs.list_jobs(s, who, {member} if member else None, phases, after, PAGE_SIZE)
        rows = [
            [
                f'<a href="/ui/jobs/{e(j.id)}">{e(j.id)}</a>',
                e(j.name or ""),
                e(j.member),
                pill(j.phase),
                str(j.attempt),
                e(when(j.submitted_at)),
                f"<span class=muted>{e(j.reason or '')}</span>",
            ]
            for j in pg.items
        ]
    options = "".join(
        f"<option {'selected' if p.value == phase else ''}>{p.value}</option>" for p in Phase
    )
    form = (
        "<form class=inline method=get>"
        f'<input name=member placeholder=member value="{e(member)}">'
        f"<select name=phase><option value=''>any phase</option>{options}</select>"
        "<button>Show</button></form>"
    )
    more = (
        f'<p><a href="{e(url("/ui/jobs", member=member, phase=phase, after=pg.next_after))}">'
        "next page</a></p>"
        if pg.next_after
        else ""
    )
    tbl = table(
        ["Job", "Name", "Member", "Phase", "Attempt", "Submitted", "Reason"], rows, {4}, "jobs"
    )
    body = f"{form}<p class=muted>{pg.total:,} jobs</p>{tbl}{more}"
    return render("Jobs", "/ui/jobs", who, body)


def _yaml(spec: dict[str, Any]) -> str:
    """The spec as a person writes it (YAML, in its own order)."""
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=96).rstrip()


def _placement(placement: dict[str, Any] | None) -> str:
    """Where the job runs: one row per node with its devices."""
    if not placement:
        return "-"
    rows = [
        [e(node), e(", ".join(str(d) for d in devices))]
        for node, devices in placement.get("assignments", [])
    ]
    return f"{e(placement.get('model', ''))}" + table(["Node", "Devices"], rows)


def _federated(s: Session, who: Principal, run: jobs.JobView) -> str:
    """A federated run's participants (their parts, linked) and its rounds, with a plot of
    the loss per round."""
    rows = []
    for p in run.spec.get("participants", []):
        try:
            part = jobs.get(s, who, p["part"])
        except NotFoundError:
            continue
        node = part.placement["assignments"][0][0] if part.placement else "-"
        link = f'<a href="{url("/ui/jobs/" + part.id)}">{e(part.id)}</a>'
        rows.append([link, e(p["member"]), e(p["dataset"]), pill(part.phase), e(node)])
    out = "<h2>Participants</h2>" + table(
        ["Part", "Member", "Dataset", "Phase", "Node"], rows, table_id="participants"
    )
    progress = run.progress or {}
    rounds = progress.get("rounds") or []
    if not rounds:
        return out + "<p class=muted>No round reported yet.</p>"
    xs = [float(r["round"]) for r in rounds]
    series = [
        (label, [float((r.get(part) or {}).get(key, 0.0)) for r in rounds])
        for label, part, key in (
            ("train loss", "train", "train_loss"),
            ("held-out loss", "evaluate", "eval_loss"),
        )
    ]
    out += "<h2>Rounds</h2>" + line_chart("Loss per round", xs, series, "round", "nats/byte")
    out += table(
        ["Round", "Participants", "Train loss", "Held-out loss"],
        [
            [
                str(r["round"]),
                _num((r.get("train") or {}).get("participants"), "{:.0f}"),
                _num((r.get("train") or {}).get("train_loss"), "{:.4f}"),
                _num((r.get("evaluate") or {}).get("eval_loss"), "{:.4f}"),
            ]
            for r in rounds
        ],
        {1, 2, 3},
        "rounds",
    )
    model = progress.get("model")
    if model:
        out += (
            f"<p>Model: <code>{e(model['file'])}</code> "
            f"sha256 <code>{e(model['sha256'])}</code></p>"
        )
    return out


def _num(value: object, fmt: str) -> str:
    return "-" if not isinstance(value, int | float) else fmt.format(value)


@router.get("/ui/jobs/{job_id}")
def job_page(request: Request, job_id: str) -> HTMLResponse:
    who = who_of(request)
    with service_of(request).db.session() as s:
        try:
            row = jobs.get(s, who, job_id)
        except NotFoundError:
            page = render("Not found", "/ui/jobs", who, f"<p>No job {e(job_id)}.</p>")
            page.status_code = 404
            return page
        info = [
            ("Member", e(row.member)),
            ("Phase", pill(row.phase)),
            ("Reason", e(row.reason or "")),
            ("Attempt", str(row.attempt)),
            ("Preemptions", str(row.preemptions)),
            ("Placement", _placement(row.placement)),
            ("Submitted", e(when(row.submitted_at)) + f" by {e(row.submitted_by)}"),
            ("Started", e(when(row.started_at))),
            ("Finished", e(when(row.finished_at))),
            ("Exit code", "-" if row.exit_code is None else e(row.exit_code)),
            ("Spec", f"<pre class=spec>{e(_yaml(row.spec))}</pre>"),
        ]
        readable = jobs.logs_readable(who, row)
        if row.run:
            info.insert(1, ("Part of", f'<a href="{url("/ui/jobs/" + row.run)}">{e(row.run)}</a>'))
        federated = _federated(s, who, row) if row.kind == "federated" else ""
    details = facts(info, table_id="job") + federated
    if not readable:
        return render(f"Job {job_id}", "/ui/jobs", who, details)
    body = (
        f"{details}<h2>Log <span class=muted id=logstate>following…</span></h2>"
        "<pre class=log id=log></pre>"
    )
    # the page shows the log's tail and follows it: a huge log is never loaded whole (the last
    # LOG_PAGE_CHARS stay on the page; the CLI's ``suanli logs`` prints all of it)
    script = (
        f"const jid={json.dumps(job_id)};const keep={LOG_PAGE_CHARS};let off=null;"
        "const el=document.getElementById('log');const st=document.getElementById('logstate');"
        "async function tick(){try{const q=off===null?'tail='+keep:'offset='+off;"
        "const r=await fetch('/api/v1/jobs/'+encodeURIComponent(jid)+'/logs?'+q,"
        "{credentials:'same-origin'});if(r.ok){const t=await r.text();"
        "off=parseInt(r.headers.get('X-Next-Offset')||off||0);if(t){let s=el.textContent+t;"
        "if(s.length>keep){s=s.slice(s.length-keep);st.dataset.cut='1';}el.textContent=s;"
        "el.scrollTop=el.scrollHeight;}const size=parseInt(r.headers.get('X-Log-Size')||'0');"
        "const cut=st.dataset.cut||size>keep?' (only its end; suanli logs prints all)':'';"
        "if(r.headers.get('X-Job-Done')==='true'){st.textContent='(ended)'+cut;return;}"
        "st.textContent='following…'+cut;if(off<size){setTimeout(tick,0);return;}}}catch(x){}"
        "setTimeout(tick,1000);}tick();"
    )
    return render(f"Job {job_id}", "/ui/jobs", who, body, script)
