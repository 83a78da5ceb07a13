"""The dashboard's pages (``/ui/...``), one module per page, behind the service's sessions and
roles: every page calls the same service functions as the API, with the signed-in principal,
and holds no rule of its own."""

from __future__ import annotations

from fastapi import APIRouter

from suanli.ui import session
from suanli.ui.pages import hub, jobs, ledger, members, pool, queue, reports
from suanli.ui.session import SignInRequired, sign_in_redirect

__all__ = ["SignInRequired", "router", "sign_in_redirect"]

router = APIRouter(include_in_schema=False)
for _module in (session, pool, queue, jobs, members, ledger, hub, reports):
    router.include_router(_module.router)
