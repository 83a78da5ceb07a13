"""The alliance's hub from the command line: ``hub ls | show | create | visibility | upload |
download``. Code that already uses ``huggingface_hub`` needs none of this: point it at the
server with ``HF_ENDPOINT`` and a token (see docs/hub.md)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import click

from suanli.cli.client import api, as_json_option, connection
from suanli.model.job import CodeRevision
from suanli.sdk.client import Client
from suanli.text import table

KIND = click.option(
    "--kind", type=click.Choice(["model", "dataset"]), default="model", show_default=True
)


@click.group("hub")
def hub_cmd() -> None:
    """The alliance's hub: models and datasets, their revisions and who may read them."""


@hub_cmd.command("ls")
@KIND
@click.option("--member", help="only this member's repos")
@as_json_option
@connection
def hub_ls(
    kind: str, member: str | None, as_json: bool, url: str | None, token: str | None
) -> None:
    """The repos you may read."""
    repos = api(lambda c: c.hub_repos(kind, member), url, token)
    if as_json:
        click.echo(json.dumps(repos, indent=2))
        return
    rows = [[r["id"], r["visibility"], r["sha"][:12], r["lastModified"][:19]] for r in repos]
    click.echo(table(["REPO", "VISIBILITY", "MAIN", "CHANGED (UTC)"], rows))


@hub_cmd.command("show")
@click.argument("repo")
@KIND
@click.option("--revision", default="main", show_default=True)
@as_json_option
@connection
def hub_show(
    repo: str, kind: str, revision: str, as_json: bool, url: str | None, token: str | None
) -> None:
    """A repo at a revision: its files, branches, tags and last commits."""

    def read(c: Client) -> dict[str, Any]:
        return {
            "repo": c.hub_repo(repo, kind, revision),
            "refs": c.hub_refs(repo, kind),
            "commits": c.hub_commits(repo, kind, revision)[:10],
        }

    found = api(read, url, token)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    info, refs = found["repo"], found["refs"]
    shared = f" with {', '.join(info['sharedWith'])}" if info["sharedWith"] else ""
    click.echo(f"{info['id']} ({kind}) at {revision}: commit {info['sha']}")
    click.echo(f"visibility {info['visibility']}{shared}; licence {info['license'] or '(none)'}")
    click.echo(table(["FILE", "BYTES"], [[f["rfilename"], f["size"]] for f in info["siblings"]]))
    heads = [[r["name"], "branch", r["targetCommit"][:12]] for r in refs["branches"]]
    heads += [[r["name"], "tag", r["targetCommit"][:12]] for r in refs["tags"]]
    click.echo(table(["REF", "KIND", "COMMIT"], heads))
    log = [
        [c["id"][:12], c["date"][:19], c["authors"][0]["user"], c["title"]]
        for c in found["commits"]
    ]
    click.echo(table(["COMMIT", "DATE (UTC)", "BY", "SUMMARY"], log))


@hub_cmd.command("card")
@click.argument("repo")
@KIND
@click.option("--revision", default="main", show_default=True)
@connection
def hub_card(repo: str, kind: str, revision: str, url: str | None, token: str | None) -> None:
    """Print REPO's card (its README.md: front matter, then text)."""
    out = io.BytesIO()
    api(lambda c: c.hub_download(repo, "README.md", out, kind, revision), url, token)
    click.echo(out.getvalue().decode("utf-8", errors="replace"), nl=False)


@hub_cmd.command("lineage")
@click.argument("repo")
@KIND
@as_json_option
@connection
def hub_lineage(repo: str, kind: str, as_json: bool, url: str | None, token: str | None) -> None:
    """What made REPO[@REVISION]: its commits, and each job that committed (what it read,
    the chips it ran on, its NU-hours in the ledger)."""
    name, _, revision = repo.partition("@")
    found = api(lambda c: c.hub_lineage(name, kind, revision or "main"), url, token)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    click.echo(f"{found['repo']}@{found['revision']}: commit {found['sha']}")
    log = [
        [c["id"][:12], c["date"][:19], c["author"], c["job"] or "", c["summary"]]
        for c in found["commits"]
    ]
    click.echo(table(["COMMIT", "DATE (UTC)", "BY", "JOB", "SUMMARY"], log))
    rows = [
        [
            j["job"],
            j["member"],
            ", ".join(j["datasets"]),
            j["model"] or "",
            ", ".join(j["nodes"]),
            CodeRevision(**j["code"]).label() if j.get("code") else "",
            f"{j['nu_hours']:.4f}",
        ]
        if j["shown"]
        else [j["job"], j["member"], "(another member's job)", "", "", "", ""]
        for j in found["jobs"]
    ]
    if rows:
        click.echo(table(["JOB", "MEMBER", "DATASETS", "MODEL", "NODES", "CODE", "NU-H"], rows))


@hub_cmd.command("create")
@click.argument("repo")
@KIND
@click.option(
    "--visibility",
    type=click.Choice(["private", "members", "alliance", "public"]),
    default="private",
    show_default=True,
)
@connection
def hub_create(repo: str, kind: str, visibility: str, url: str | None, token: str | None) -> None:
    """Create REPO (MEMBER/NAME), owned by MEMBER."""
    api(lambda c: c.hub_create(repo, kind, visibility), url, token)
    click.echo(f"created {kind} {repo} ({visibility})")


@hub_cmd.command("visibility")
@click.argument("repo")
@click.argument("visibility", type=click.Choice(["private", "members", "alliance", "public"]))
@click.option("--share-with", multiple=True, help="a member (with visibility 'members')")
@KIND
@connection
def hub_visibility(
    repo: str,
    visibility: str,
    share_with: tuple[str, ...],
    kind: str,
    url: str | None,
    token: str | None,
) -> None:
    """Who may read REPO (any but private needs a licence in its card)."""
    api(lambda c: c.hub_visibility(repo, visibility, list(share_with), kind), url, token)
    click.echo(f"{repo}: {visibility}" + (f" with {', '.join(share_with)}" if share_with else ""))


@hub_cmd.command("residency")
@click.argument("repo")
@click.argument("sites", nargs=-1)
@connection
def hub_residency(repo: str, sites: tuple[str, ...], url: str | None, token: str | None) -> None:
    """Keep the dataset REPO's files at SITES (its member's): they go only to its member's
    users and to runs placed there. No SITES lifts the rule."""
    api(lambda c: c.hub_residency(repo, list(sites)), url, token)
    click.echo(f"{repo}: resident at {', '.join(sites)}" if sites else f"{repo}: not resident")


@hub_cmd.command("upload")
@click.argument("repo")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@KIND
@click.option("--to", "prefix", default="", help="the folder in the repo to put them in")
@click.option("-m", "--message", default="upload", show_default=True)
@click.option("--revision", default="main", show_default=True, help="the branch")
@connection
def hub_upload(
    repo: str,
    paths: tuple[Path, ...],
    kind: str,
    prefix: str,
    message: str,
    revision: str,
    url: str | None,
    token: str | None,
) -> None:
    """Upload files (a folder: every file under it) to REPO as one commit."""
    files: dict[str, Path] = {}
    for p in paths:
        found = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in found:
            inside = f.relative_to(p).as_posix() if p.is_dir() else f.name
            files["/".join(x for x in (prefix.strip("/"), inside) if x)] = f
    sha = api(lambda c: c.hub_upload(repo, files, kind, message, revision), url, token)
    click.echo(f"{repo}@{revision}: commit {sha} ({len(files)} files)")


@hub_cmd.command("download")
@click.argument("repo")
@click.argument("path")
@KIND
@click.option("--revision", default="main", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), help="default: the file's name")
@connection
def hub_download(
    repo: str,
    path: str,
    kind: str,
    revision: str,
    output: Path | None,
    url: str | None,
    token: str | None,
) -> None:
    """Download one file of REPO at a revision."""
    dest = output or Path(path.rsplit("/", 1)[-1])
    partial = dest.with_name(dest.name + ".part")
    try:
        with partial.open("wb") as f:
            api(lambda c: c.hub_download(repo, path, f, kind, revision), url, token)
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)
    click.echo(f"{dest} ({dest.stat().st_size} bytes)")
