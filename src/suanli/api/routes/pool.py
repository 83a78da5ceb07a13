"""The pool: members, sites, nodes, datasets, shares, and pool-wide drains."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from suanli.api.deps import DOCUMENT_BODY, Svc, Who, mapping_body
from suanli.api.models import (
    DatasetOut,
    DrainIn,
    DrainOut,
    MemberOut,
    NodeOut,
    ShareLimitsIn,
    ShareOut,
    SiteOut,
)
from suanli.service import pool
from suanli.service.auth import Principal
from suanli.service.context import Service
from suanli.service.pool import (
    DatasetView,
    DrainReport,
    MemberView,
    NodeView,
    ShareView,
    SiteView,
)

router = APIRouter(prefix="/api/v1", tags=["pool"])
T = TypeVar("T")


@router.get("/members", response_model=list[MemberOut])
def members(svc: Svc, who: Who) -> list[MemberView]:
    with svc.db.session() as s:
        return pool.members(s, who, svc.clock())


@router.get("/sites", response_model=list[SiteOut])
def sites(svc: Svc, who: Who) -> list[SiteView]:
    with svc.db.session() as s:
        return pool.sites(s, who)


@router.get("/nodes", response_model=list[NodeOut])
def nodes(svc: Svc, who: Who) -> list[NodeView]:
    with svc.db.session() as s:
        return pool.nodes(s, who, svc.clock())


@router.post("/nodes", status_code=201, response_model=NodeOut, openapi_extra=DOCUMENT_BODY)
async def nodes_register(svc: Svc, who: Who, request: Request) -> NodeView:
    doc = await mapping_body(request, "a node")
    return await run_in_threadpool(_in_session, svc, pool.register_node, who, doc)


@router.post("/nodes/{node_id}/drain", response_model=NodeOut)
def nodes_drain(node_id: str, svc: Svc, who: Who) -> NodeView:
    with svc.db.session() as s:
        return pool.drain_node(s, who, node_id, True, svc.clock())


@router.post("/nodes/{node_id}/undrain", response_model=NodeOut)
def nodes_undrain(node_id: str, svc: Svc, who: Who) -> NodeView:
    with svc.db.session() as s:
        return pool.drain_node(s, who, node_id, False, svc.clock())


@router.delete("/nodes/{node_id}", status_code=204)
def nodes_remove(node_id: str, svc: Svc, who: Who) -> Response:
    with svc.db.session() as s:
        pool.remove_node(s, who, node_id, svc.clock())
    return Response(status_code=204)


@router.post("/pool/drain", response_model=DrainOut)
def pool_drain(body: DrainIn, svc: Svc, who: Who) -> DrainReport:
    with svc.db.session() as s:
        return pool.drain_many(s, who, body.vendor, body.model, svc.policy.grace_s, svc.clock())


@router.get("/datasets", response_model=list[DatasetOut])
def datasets(svc: Svc, who: Who) -> list[DatasetView]:
    with svc.db.session() as s:
        return pool.datasets(s, who)


@router.post("/datasets", status_code=201, response_model=DatasetOut, openapi_extra=DOCUMENT_BODY)
async def datasets_create(svc: Svc, who: Who, request: Request) -> DatasetView:
    doc = await mapping_body(request, "a dataset")
    return await run_in_threadpool(_in_session, svc, pool.create_dataset, who, doc)


def _in_session(
    svc: Service,
    fn: Callable[[Session, Principal, dict[str, Any], float], T],
    who: Principal,
    doc: dict[str, Any],
) -> T:
    """One service function on a document, in a transaction, off the event loop."""
    with svc.db.session() as s:
        return fn(s, who, doc, svc.clock())


@router.get("/shares", response_model=list[ShareOut])
def shares(svc: Svc, who: Who) -> list[ShareView]:
    with svc.db.session() as s:
        return pool.shares(s, who, svc.clock())


@router.put("/shares/{member}/{model}", response_model=ShareOut)
def shares_set(member: str, model: str, body: ShareLimitsIn, svc: Svc, who: Who) -> ShareView:
    with svc.db.session() as s:
        return pool.set_share_limits(
            s, who, member, model, body.borrowing_limit, body.lending_limit, svc.clock()
        )
