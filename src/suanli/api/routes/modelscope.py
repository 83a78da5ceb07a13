"""The hub over ModelScope's protocol, for reading, as its client (``modelscope``, with
``MODELSCOPE_ENDPOINT`` or ``MODELSCOPE_DOMAIN`` set to this server) calls it: a repo's file
list (models: ``repo/files``; datasets: ``repo/tree``, paged), a file by revision and path
(``repo?Revision=&FilePath=``, with Range), and the revisions. ModelScope's default revision
is ``master``: where a repo has no branch of that name it is the hub's ``main``. Answers are
ModelScope's envelope (``Code``, ``Message``, ``Data``, ``Success``); the same tokens and rules
as every hub route (:mod:`suanli.service.hub`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from suanli.api.deps import STATUS, MaybeWho, Svc
from suanli.api.routes.hub import answering, download_response, store_of
from suanli.errors import NotFoundError, SuanliError
from suanli.service import hub

KINDS = {"models": "model", "datasets": "dataset"}
MASTER = "master"


def modelscope_error(exc: SuanliError) -> JSONResponse:
    status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 500)
    body = {"Code": status, "Message": str(exc), "Success": False, "Data": None}
    return JSONResponse(body, status_code=status)


router = APIRouter(tags=["hub"], route_class=answering(modelscope_error))


def _kind(kinds: str) -> str:
    if kinds not in KINDS:
        raise NotFoundError(f"no such path: {kinds!r} is not models or datasets")
    return KINDS[kinds]


def _revision(svc: Svc, who: MaybeWho, kind: str, repo_id: str, revision: str) -> str:
    """ModelScope's ``master`` is the hub's ``main`` unless the repo has a ``master``."""
    if revision != MASTER:
        return revision
    with svc.db.session() as s:
        names = {r.name for r in hub.refs(s, who, kind, repo_id)}
    return MASTER if MASTER in names else hub.MAIN


def _ok(data: Any) -> dict[str, Any]:
    return {"Code": 200, "Message": "success", "Success": True, "Data": data}


def _entries(
    svc: Svc, who: MaybeWho, kind: str, repo_id: str, revision: str, root: str, recursive: bool
) -> list[dict[str, Any]]:
    rev = _revision(svc, who, kind, repo_id, revision)
    with svc.db.session() as s:
        sha, files, folders = hub.tree(s, who, kind, repo_id, rev, root.strip("/"), recursive)
    out: list[dict[str, Any]] = [
        {"Name": d.rsplit("/", 1)[-1], "Path": d, "Type": "tree", "Size": 0, "Revision": sha}
        for d in folders
    ]
    out += [
        {
            "Name": f.path.rsplit("/", 1)[-1],
            "Path": f.path,
            "Type": "blob",
            "Size": f.size,
            "Sha256": f.sha256,
            "Id": f.sha1,
            "Revision": sha,
            "IsLFS": False,
        }
        for f in files
    ]
    return out


@router.get("/api/v1/{kinds}/{member}/{name}/repo/files")
def modelscope_files(
    svc: Svc,
    who: MaybeWho,
    kinds: str,
    member: str,
    name: str,
    revision: Annotated[str, Query(alias="Revision", max_length=128)] = MASTER,
    recursive: Annotated[str, Query(alias="Recursive", max_length=8)] = "False",
    root: Annotated[str, Query(alias="Root", max_length=1024)] = "",
) -> dict[str, Any]:
    deep = recursive.lower() == "true"
    files = _entries(svc, who, _kind(kinds), f"{member}/{name}", revision, root, deep)
    return _ok({"Files": files})


@router.get("/api/v1/datasets/{member}/{name}/repo/tree")
def modelscope_dataset_tree(
    svc: Svc,
    who: MaybeWho,
    member: str,
    name: str,
    revision: Annotated[str, Query(alias="Revision", max_length=128)] = MASTER,
    recursive: Annotated[str, Query(alias="Recursive", max_length=8)] = "False",
    root: Annotated[str, Query(alias="Root", max_length=1024)] = "/",
    page: Annotated[int, Query(alias="PageNumber", ge=1, le=1 << 20)] = 1,
    size: Annotated[int, Query(alias="PageSize", ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    deep = recursive.lower() == "true"
    found = _entries(svc, who, "dataset", f"{member}/{name}", revision, root, deep)
    return _ok({"Files": found[(page - 1) * size : page * size], "TotalCount": len(found)})


@router.get("/api/v1/{kinds}/{member}/{name}/revisions")
def modelscope_revisions(
    svc: Svc, who: MaybeWho, kinds: str, member: str, name: str
) -> dict[str, Any]:
    with svc.db.session() as s:
        refs = hub.refs(s, who, _kind(kinds), f"{member}/{name}")
    branches = [{"Revision": r.name, "CommitId": r.commit} for r in refs if r.kind == "branch"]
    tags = [{"Revision": r.name, "CommitId": r.commit} for r in refs if r.kind == "tag"]
    return _ok({"RevisionMap": {"Branches": branches, "Tags": tags}})


@router.get("/api/v1/{kinds}/{member}/{name}/repo")
def modelscope_file(
    svc: Svc,
    who: MaybeWho,
    kinds: str,
    member: str,
    name: str,
    path: Annotated[str, Query(alias="FilePath", max_length=1024)],
    revision: Annotated[str, Query(alias="Revision", max_length=128)] = MASTER,
) -> Response:
    kind, repo_id = _kind(kinds), f"{member}/{name}"
    rev = _revision(svc, who, kind, repo_id, revision)
    with svc.db.session() as s:
        found = hub.file(s, store_of(svc), who, kind, repo_id, rev, path.lstrip("/"))
    return download_response(found, path)
