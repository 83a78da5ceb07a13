"""The hub's pages: the repos you may read, and one repo (its card rendered, its files with
download links, branches, tags and commits)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from suanli.errors import NotFoundError, ValidationError
from suanli.hub import card
from suanli.service import hub, lineage
from suanli.ui.html import e, facts, table, when
from suanli.ui.markdown import render as markdown
from suanli.ui.session import render, service_of, who_of

router = APIRouter(include_in_schema=False)


@router.get("/ui/hub")
def hub_page(request: Request) -> HTMLResponse:
    who = who_of(request)
    parts = []
    with service_of(request).db.session() as s:
        for kind in ("model", "dataset"):
            rows = [
                [
                    f'<a href="/ui/hub/{kind}/{e(r.id)}">{e(r.id)}</a>',
                    e(r.visibility)
                    + (f" ({e(', '.join(r.shared_with))})" if r.shared_with else ""),
                    f"<code>{e(r.sha[:12])}</code>",
                    e(when(r.last_modified)),
                ]
                for r in hub.repos(s, who, kind, None)
            ]
            parts.append(
                f"<h2>{kind.capitalize()}s</h2>"
                + table(["Repo", "Visibility", "main", "Changed (UTC)"], rows, None, f"{kind}s")
            )
    hint = (
        "<p class=muted>Any Hugging Face client works against this server: "
        "<code>HF_ENDPOINT=this server's URL</code> and <code>HF_TOKEN=</code>your token.</p>"
    )
    return render("Hub", "/ui/hub", who, hint + "".join(parts))


@router.get("/ui/hub/{kind}/{member}/{name}")
def repo_page(
    request: Request, kind: str, member: str, name: str, revision: str = hub.MAIN
) -> HTMLResponse:
    who = who_of(request)
    svc = service_of(request)
    repo_id = f"{member}/{name}"
    try:
        if svc.hub is None:
            raise NotFoundError("this server keeps no hub")
        with svc.db.session() as s:
            view = hub.info(s, svc.hub, who, kind, repo_id, revision)
            refs = hub.refs(s, who, kind, repo_id)
            commits = hub.history(s, who, kind, repo_id, revision, limit=20)
            text = hub.card_text(s, svc.hub, who, kind, repo_id, revision)
            made = lineage.lineage(s, who, kind, repo_id, revision)
    except (NotFoundError, ValidationError) as exc:
        page = render("Not found", "/ui/hub", who, f"<p>{e(exc)}</p>")
        page.status_code = 404
        return page
    base = repo_id if kind == "model" else f"datasets/{repo_id}"
    about = facts(
        [
            ("Revision", f"{e(revision)} (<code>{e(view.sha)}</code>)"),
            ("Visibility", e(view.visibility) + "".join(f" {e(m)}" for m in view.shared_with)),
            ("Licence", e(view.licence or "none")),
            ("Created", f"{e(when(view.created_at))} by {e(view.created_by)}"),
        ],
        "about",
    )
    files = [
        [f'<a href="/{e(base)}/resolve/{e(view.sha)}/{e(f.path)}">{e(f.path)}</a>', f"{f.size:,}"]
        for f in view.files
    ]
    ref_rows = [
        [
            f'<a href="?revision={e(r.name)}">{e(r.name)}</a>',
            e(r.kind),
            f"<code>{e(r.commit[:12])}</code>",
        ]
        for r in refs
    ]
    log = [
        [
            f"<code>{e(c.sha[:12])}</code>",
            e(when(c.created_at)),
            e(c.author),
            e(c.job or ""),
            e(c.summary),
        ]
        for c in commits
    ]
    jobs = _lineage_rows(made)
    body = (
        about
        + (f"<div class=plot id=card>{markdown(card.body(text))}</div>" if text else "")
        + "<h2>Files</h2>"
        + table(["Path", "Bytes"], files, {1}, "files")
        + "<h2>Branches and tags</h2>"
        + table(["Name", "Kind", "Commit"], ref_rows, None, "refs")
        + "<h2>Commits</h2>"
        + table(["Commit", "When (UTC)", "By", "Job", "Summary"], log, None, "commits")
        + "<h2>Lineage: the jobs that made this revision</h2>"
        + table(
            ["Job", "Member", "Datasets", "Chips", "Code", "NU-hours (ledger)"],
            jobs,
            {5},
            "lineage",
        )
    )
    return render(f"{kind.capitalize()} {repo_id}", "/ui/hub", who, body)


def _lineage_rows(made: lineage.Lineage) -> list[list[str]]:
    return [
        [
            e(j.job),
            e(j.member),
            e(", ".join(j.datasets))
            if j.shown
            else "<span class=muted>another member's job</span>",
            e(j.model or "") + (f" x{j.devices} on {e(', '.join(j.nodes))}" if j.nodes else ""),
            f"<code>{e(j.code.label())}</code>" if j.code else "",
            f"{j.nu_hours:.4f}" if j.shown else "",
        ]
        for j in made.jobs
    ]
