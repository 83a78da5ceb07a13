"""The hub over the Hugging Face Hub's protocol, as its client (``huggingface_hub``) calls it
with ``HF_ENDPOINT`` set to this server: repo info by revision, the file tree, files by
``resolve`` (HEAD and GET, ETag, Range), refs, commits; repo creation, preupload and commits
with the files inline, branches, tags and settings. The same bearer tokens as the API; public
repos without one. Each route calls one function of :mod:`suanli.service.hub`, which holds the
rules; errors carry the ``X-Error-Code`` the client reads (``RepoNotFound``,
``RevisionNotFound``, ``EntryNotFound``).

Visibility from the client: ``private`` is private to the owning member, ``public`` is the
alliance (every user of it); the hub's own ``visibility`` (with ``members`` and ``public``
for anyone) is set through the settings route."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from suanli.api.deps import STATUS, MaybeWho, Svc, mapping_body
from suanli.errors import (
    NotFoundError,
    PayloadTooLargeError,
    Problem,
    SuanliError,
    ValidationError,
)
from suanli.hub import card
from suanli.hub import commit as commits
from suanli.hub.blobs import CHUNK, BlobStore
from suanli.hub.stores import Stores
from suanli.service import hub, lineage
from suanli.service.context import Service

#: the paths whose bodies stream to disk (see RequestLimits)
STREAMED = re.compile(r"^/api/(models|datasets)/[^/]+/[^/]+/commit/")
KINDS = {"models": "model", "datasets": "dataset"}
_CODES = {
    hub.RepoNotFound: "RepoNotFound",
    hub.RevisionNotFound: "RevisionNotFound",
    hub.EntryNotFound: "EntryNotFound",
}


def hub_error(exc: SuanliError) -> JSONResponse:
    """A domain error as the Hugging Face client reads one: the status, ``X-Error-Code`` and
    ``X-Error-Message``, and ``error`` in the body (with the API's ``problems``)."""
    status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 500)
    code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), None)
    problems = exc.problems if isinstance(exc, ValidationError) else []
    message = str(exc).replace("\n", "; ")
    printable = "".join(c if " " <= c <= "~" else "?" for c in message)  # (a header's text)
    headers = {"X-Error-Message": printable[:500]}
    if code:
        headers["X-Error-Code"] = code
    body = {
        "error": message,
        "message": message,
        "problems": [{"field": p.field, "message": p.message} for p in problems],
    }
    return JSONResponse(body, status_code=status, headers=headers)


def answering(to_response: Callable[[SuanliError], Response]) -> type[APIRoute]:
    """A route class whose domain errors are answered by ``to_response`` (each protocol has
    its own error body) instead of the API's."""

    class Answering(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def answer(request: Request) -> Response:
                try:
                    return await handler(request)
                except SuanliError as exc:
                    return to_response(exc)

            return answer

    return Answering


router = APIRouter(tags=["hub"], route_class=answering(hub_error))
Kinds = Annotated[str, "models or datasets"]


def _kind(kinds: str) -> str:
    if kinds not in KINDS:
        raise NotFoundError(f"no such path: /api/{kinds!r} is not models or datasets")
    return KINDS[kinds]


def store_of(svc: Service) -> Stores:
    if svc.hub is None:
        raise NotFoundError("this server keeps no hub")
    return svc.hub


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _info_json(view: hub.RepoView) -> dict[str, Any]:
    member = view.id.split("/", 1)[0]
    return {
        "id": view.id,
        "_id": view.id,
        "author": member,
        "sha": view.sha,
        "private": view.visibility not in {"public", "alliance"},
        "visibility": view.visibility,
        "sharedWith": view.shared_with,
        "residentSites": view.resident_sites,
        "createdAt": _iso(view.created_at),
        "lastModified": _iso(view.last_modified),
        "license": view.licence,
        "cardData": {"license": view.licence} if view.licence else {},
        "tags": [f"license:{view.licence}"] if view.licence else [],
        "siblings": [{"rfilename": f.path, "size": f.size} for f in view.files],
        "disabled": False,
        "gated": False,
        "downloads": 0,
        "likes": 0,
    }


@router.get("/api/{kinds}/{member}/{name}")
@router.get("/api/{kinds}/{member}/{name}/revision/{revision}")
def hub_repo_info(
    svc: Svc, who: MaybeWho, kinds: Kinds, member: str, name: str, revision: str = hub.MAIN
) -> dict[str, Any]:
    with svc.db.session() as s:
        view = hub.info(s, store_of(svc), who, _kind(kinds), f"{member}/{name}", revision)
    return _info_json(view)


@router.get("/api/{kinds}/{member}/{name}/tree/{revision}")
@router.get("/api/{kinds}/{member}/{name}/tree/{revision}/{path:path}")
def hub_tree(
    svc: Svc,
    who: MaybeWho,
    kinds: Kinds,
    member: str,
    name: str,
    revision: str,
    path: str = "",
    recursive: Annotated[bool, Query()] = False,
) -> list[dict[str, Any]]:
    with svc.db.session() as s:
        _, files, folders = hub.tree(
            s, who, _kind(kinds), f"{member}/{name}", revision, path.strip("/"), recursive
        )
    out: list[dict[str, Any]] = [
        {"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in folders
    ]
    out += [{"type": "file", "oid": f.sha1, "size": f.size, "path": f.path} for f in files]
    return sorted(out, key=lambda e: str(e["path"]))


@router.post("/api/{kinds}/{member}/{name}/paths-info/{revision}")
async def hub_paths_info(
    request: Request, svc: Svc, who: MaybeWho, kinds: Kinds, member: str, name: str, revision: str
) -> list[dict[str, Any]]:
    """The files and folders among ``paths`` (a form, as the client sends it, or JSON)."""
    raw = (await request.body()).decode("utf-8", errors="replace")
    if request.headers.get("content-type", "").startswith("application/json"):
        doc = await mapping_body(request, "paths")
        wanted = doc.get("paths")
    else:
        wanted = parse_qs(raw).get("paths")
    if not isinstance(wanted, list) or not all(isinstance(p, str) for p in wanted):
        raise ValidationError([Problem("paths", "a list of paths in the repo")])
    with svc.db.session() as s:
        files, folders = hub.paths(s, who, _kind(kinds), f"{member}/{name}", revision, wanted)
    out: list[dict[str, Any]] = [
        {"type": "directory", "oid": "0" * 40, "size": 0, "path": d} for d in folders
    ]
    return out + [{"type": "file", "oid": f.sha1, "size": f.size, "path": f.path} for f in files]


@router.get("/api/{kinds}/{member}/{name}/refs")
def hub_refs(svc: Svc, who: MaybeWho, kinds: Kinds, member: str, name: str) -> dict[str, Any]:
    with svc.db.session() as s:
        found = hub.refs(s, who, _kind(kinds), f"{member}/{name}")
    prefix = {"branch": "refs/heads/", "tag": "refs/tags/"}
    entry: Callable[[hub.RefView], dict[str, str]] = lambda r: {  # noqa: E731
        "name": r.name,
        "ref": prefix[r.kind] + r.name,
        "targetCommit": r.commit,
    }
    return {
        "branches": [entry(r) for r in found if r.kind == "branch"],
        "tags": [entry(r) for r in found if r.kind == "tag"],
        "converts": [],
    }


@router.get("/api/{kinds}/{member}/{name}/commits/{revision}")
def hub_commits(
    svc: Svc, who: MaybeWho, kinds: Kinds, member: str, name: str, revision: str
) -> list[dict[str, Any]]:
    with svc.db.session() as s:
        found = hub.history(s, who, _kind(kinds), f"{member}/{name}", revision)
    return [
        {
            "id": c.sha,
            "title": c.summary,
            "message": c.summary,
            "authors": [{"user": c.author}],
            "date": _iso(c.created_at),
            "job": c.job,
        }
        for c in found
    ]


class _Download(FileResponse):
    """A file read 1 MiB at a time (Starlette's 64 KiB pieces cost a thread hop each)."""

    chunk_size = 1 << 20


def download_response(found: hub.Resolved, path: str) -> FileResponse:
    """A file's bytes with what clients check: its git blob id as ETag, the revision's commit,
    its length; Range and HEAD answered."""
    headers = {"ETag": f'"{found.file.sha1}"', "X-Repo-Commit": found.commit}
    return _Download(
        found.blob,
        headers=headers,
        media_type="application/octet-stream",
        content_disposition_type="attachment",
        filename=path.rsplit("/", 1)[-1],
    )


def _resolve(
    svc: Svc, who: MaybeWho, kind: str, repo_id: str, revision: str, path: str
) -> FileResponse:
    with svc.db.session() as s:
        found = hub.file(s, store_of(svc), who, kind, repo_id, revision, path)
    return download_response(found, path)


@router.get("/datasets/{member}/{name}/resolve/{revision}/{path:path}")
def hub_dataset_file(
    svc: Svc, who: MaybeWho, member: str, name: str, revision: str, path: str
) -> FileResponse:
    return _resolve(svc, who, "dataset", f"{member}/{name}", revision, path)


@router.get("/{member}/{name}/resolve/{revision}/{path:path}")
def hub_model_file(
    svc: Svc, who: MaybeWho, member: str, name: str, revision: str, path: str
) -> FileResponse:
    return _resolve(svc, who, "model", f"{member}/{name}", revision, path)


@router.head("/datasets/{member}/{name}/resolve/{revision}/{path:path}", include_in_schema=False)
def hub_dataset_file_head(
    svc: Svc, who: MaybeWho, member: str, name: str, revision: str, path: str
) -> FileResponse:
    return _resolve(svc, who, "dataset", f"{member}/{name}", revision, path)


@router.head("/{member}/{name}/resolve/{revision}/{path:path}", include_in_schema=False)
def hub_model_file_head(
    svc: Svc, who: MaybeWho, member: str, name: str, revision: str, path: str
) -> FileResponse:
    """The file's headers (size, ETag, commit) without its bytes."""
    return _resolve(svc, who, "model", f"{member}/{name}", revision, path)


@router.post("/api/repos/create")
async def hub_create(request: Request, svc: Svc, who: MaybeWho) -> dict[str, Any]:
    doc = await mapping_body(request, "a repo")
    kind = str(doc.get("type") or "model")
    repo_id = str(doc.get("name", ""))
    if doc.get("organization"):
        repo_id = f"{doc['organization']}/{repo_id}"
    wanted = doc.get("visibility") or ("private" if doc.get("private", True) else "public")
    visibility = {"public": "alliance"}.get(str(wanted), str(wanted))
    with svc.db.session() as s:
        view = hub.create(s, who, kind, repo_id, visibility, svc.clock())
    base = str(request.base_url).rstrip("/")
    url = f"{base}/{view.id}" if kind == "model" else f"{base}/{kind}s/{view.id}"
    return {"url": url, "name": view.id, "id": view.id}


@router.put("/api/{kinds}/{member}/{name}/settings")
async def hub_settings(
    request: Request, svc: Svc, who: MaybeWho, kinds: Kinds, member: str, name: str
) -> dict[str, Any]:
    """Who may read the repo (``visibility`` with ``sharedWith``, or the client's
    ``private``) and, for a dataset, the sites it is resident at (``residentSites``)."""
    doc = await mapping_body(request, "the settings")
    visibility = doc.get("visibility")
    if visibility is None and "private" in doc:
        visibility = "private" if doc["private"] else "alliance"
    shared = _strings(doc, "sharedWith", doc.get("shared_with", []))
    sites = _strings(doc, "residentSites", None) if "residentSites" in doc else None
    if visibility is None and sites is None:
        problem = Problem("visibility", "settings change visibility (or private), residentSites")
        raise ValidationError([problem])
    repo_id, kind = f"{member}/{name}", _kind(kinds)
    stores, moved = store_of(svc), []
    with svc.db.session() as s:
        if sites is not None:
            moved = hub.set_residency(s, stores, who, kind, repo_id, sites, svc.clock())
        if visibility is not None:
            hub.set_visibility(s, stores, who, kind, repo_id, str(visibility), shared, svc.clock())
    if moved:
        with svc.db.session() as s:
            hub.prune(s, stores, moved)
    return {
        "id": repo_id,
        "visibility": visibility,
        "sharedWith": sorted(set(shared)),
        "residentSites": sites,
    }


def _strings(doc: dict[str, Any], key: str, default: Any) -> list[str]:
    value = doc.get(key, default)
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise ValidationError([Problem(key, "a list of ids")])
    return value


@router.post("/api/{kinds}/{member}/{name}/preupload/{revision}")
async def hub_preupload(
    request: Request, svc: Svc, who: MaybeWho, kinds: Kinds, member: str, name: str, revision: str
) -> dict[str, Any]:
    doc = await mapping_body(request, "a preupload")
    files = doc.get("files")
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and isinstance(f.get("path"), str) for f in files
    ):
        raise ValidationError([Problem("files", "a list of {path, size, sample}")])
    paths = [f["path"] for f in files]
    with svc.db.session() as s:
        oids = hub.preupload(s, who, _kind(kinds), f"{member}/{name}", revision, paths)
    return {
        "files": [
            {"path": p, "uploadMode": "regular", "shouldIgnore": False, "oid": oids[p]}
            for p in paths
        ],
        "commitOid": None,
    }


@router.post("/api/{kinds}/{member}/{name}/commit/{revision}")
async def hub_commit(
    request: Request,
    svc: Svc,
    who: MaybeWho,
    kinds: Kinds,
    member: str,
    name: str,
    revision: str,
    create_pr: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    kind, repo_id, stores = _kind(kinds), f"{member}/{name}", store_of(svc)
    if create_pr not in (None, "", "0", "false"):
        raise ValidationError([Problem("create_pr", "the hub takes no pull requests")])
    with svc.db.session() as s:
        sites = hub.check_writable(s, who, kind, repo_id)  # before a byte of the body is kept
    into = stores.homes(sites)[0]  # (a resident dataset's body never lands elsewhere)
    spool = await _spool(request, into, 2 * svc.hub_max_file)
    try:
        ops = await run_in_threadpool(commits.read, _chunks(spool), into, svc.hub_max_file)
    finally:
        spool.unlink(missing_ok=True)

    def land() -> str:
        with svc.db.session() as s:
            sha = hub.commit(s, stores, who, kind, repo_id, revision, ops, svc.clock())
        with svc.db.session() as s:  # (where residency changed while the body streamed in)
            hub.prune(s, stores, sorted({b.sha256 for b in ops.added.values()}))
        return sha

    sha = await run_in_threadpool(land)
    base = str(request.base_url).rstrip("/")
    where = repo_id if kind == "model" else f"{kind}s/{repo_id}"
    return {"commitUrl": f"{base}/{where}/commit/{sha}", "commitOid": sha, "pullRequestUrl": None}


async def _spool(request: Request, store: BlobStore, limit: int) -> Path:
    """The body, streamed to a file of the hub's (at most ``limit`` bytes)."""
    fd, name = tempfile.mkstemp(dir=store.incoming, suffix=".commit")
    size = 0
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLargeError(f"a commit is at most {limit} bytes")
                f.write(chunk)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _new_ref(
    svc: Service, who: MaybeWho, kinds: str, repo_id: str, ref_kind: str, ref: str, start: str
) -> dict[str, Any]:
    with svc.db.session() as s:
        made = hub.create_ref(
            s, store_of(svc), who, _kind(kinds), repo_id, ref_kind, ref, start, svc.clock()
        )
    return {"name": made.name, "targetCommit": made.commit}


@router.post("/api/{kinds}/{member}/{name}/branch/{branch}")
async def hub_create_branch(
    request: Request, svc: Svc, who: MaybeWho, kinds: Kinds, member: str, name: str, branch: str
) -> dict[str, Any]:
    doc = await mapping_body(request, "a branch") if await request.body() else {}
    start = str(doc.get("startingPoint") or hub.MAIN)
    return _new_ref(svc, who, kinds, f"{member}/{name}", "branch", branch, start)


@router.post("/api/{kinds}/{member}/{name}/tag/{revision}")
async def hub_create_tag(
    request: Request, svc: Svc, who: MaybeWho, kinds: Kinds, member: str, name: str, revision: str
) -> dict[str, Any]:
    doc = await mapping_body(request, "a tag")
    tag = doc.get("tag")
    if not isinstance(tag, str):
        raise ValidationError([Problem("tag", "the tag's name, a string")])
    return _new_ref(svc, who, kinds, f"{member}/{name}", "tag", tag, revision)


@router.delete("/api/{kinds}/{member}/{name}/{ref_kind}/{ref}")
def hub_delete_ref(
    svc: Svc, who: MaybeWho, kinds: Kinds, member: str, name: str, ref_kind: str, ref: str
) -> dict[str, Any]:
    """Delete a branch (``ref_kind`` branch) or a tag (tag)."""
    if ref_kind not in ("branch", "tag"):
        raise NotFoundError(f"no such path: {ref_kind!r} is not branch or tag")
    with svc.db.session() as s:
        hub.delete_ref(s, who, _kind(kinds), f"{member}/{name}", ref_kind, ref, svc.clock())
    return {"deleted": ref}


@router.get("/api/{kinds}")
def hub_list(
    svc: Svc,
    who: MaybeWho,
    kinds: Kinds,
    author: Annotated[str | None, Query(max_length=64)] = None,
    search: Annotated[str | None, Query(max_length=96)] = None,
) -> list[dict[str, Any]]:
    with svc.db.session() as s:
        found = hub.repos(s, who, _kind(kinds), author)
    return [_info_json(v) for v in found if not search or search.lower() in v.id.lower()]


@router.get("/api/v1/hub/{kinds}/{member}/{name}/lineage")
def hub_lineage(
    svc: Svc,
    who: MaybeWho,
    kinds: Kinds,
    member: str,
    name: str,
    revision: Annotated[str, Query(max_length=128)] = hub.MAIN,
) -> dict[str, Any]:
    """What made a revision: its commits, and the jobs whose runs committed them with what
    they read, ran on and used (NU-hours from the ledger)."""
    with svc.db.session() as s:
        found = lineage.lineage(s, who, _kind(kinds), f"{member}/{name}", revision)
    return {
        "repo": found.repo,
        "kind": found.kind,
        "revision": found.revision,
        "sha": found.sha,
        "commits": [
            {
                "id": c.sha,
                "parent": c.parent,
                "summary": c.summary,
                "author": c.author,
                "date": _iso(c.created_at),
                "job": c.job,
            }
            for c in found.commits
        ],
        "jobs": [asdict(j) for j in found.jobs],
    }


@router.post("/api/validate-yaml")
async def hub_validate_card(request: Request) -> JSONResponse:
    """A card's front matter checked (the client asks before it uploads a README.md)."""
    doc = await mapping_body(request, "a card")
    content = doc.get("content")
    if not isinstance(content, str):
        raise ValidationError([Problem("content", "the card's text, a string")])
    errors, warnings = card.check(content)
    body = {
        "errors": [{"message": m} for m in errors],
        "warnings": [{"message": m} for m in warnings],
    }
    return JSONResponse(body, status_code=400 if errors else 200)
