"""The ledger: statements and the chain's check."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from suanli.api.deps import Svc, Who
from suanli.api.models import VerifyOut
from suanli.service import ledger
from suanli.service.ledger import Verification

router = APIRouter(prefix="/api/v1/ledger", tags=["ledger"])


@router.get("/statement", responses={200: {"content": {"text/csv": {}}}})
def ledger_statement(
    svc: Svc,
    who: Who,
    member: Annotated[str, Query(max_length=64)],
    period: Annotated[str, Query(max_length=16, description="a month: 2026-11")],
    book: Annotated[str, Query(max_length=128)] = "real",
    format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
) -> Any:
    with svc.db.session() as s:
        st = ledger.statement(s, who, member, period, book)
    if format == "csv":
        return Response(ledger.statement_csv(st), media_type="text/csv")
    return st.to_json()


@router.get("/verify", response_model=VerifyOut)
def ledger_verify(
    svc: Svc, who: Who, book: Annotated[str, Query(max_length=128)] = "real"
) -> Verification:
    with svc.db.session() as s:
        return ledger.check(s, who, book)
