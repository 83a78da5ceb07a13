"""The FastAPI application: the routers of every noun, the dashboard, and the one map from
domain errors to status codes (:data:`suanli.api.deps.STATUS`). Routes are thin: a payload in,
one service function (which authorizes the caller and holds the rules), a response model
out."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from suanli import __version__
from suanli.api.deps import RequestLimits, error_response
from suanli.api.models import ErrorOut
from suanli.api.routes import docs, hub, jobs, ledger, modelscope, pool, service, users
from suanli.errors import Problem, SuanliError, ValidationError
from suanli.service.context import Service
from suanli.ui.pages import SignInRequired, sign_in_redirect
from suanli.ui.pages import router as dashboard


async def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SuanliError)
    return error_response(exc)


async def _request(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        Problem(".".join(str(x) for x in e["loc"] if x != "body"), e["msg"]) for e in exc.errors()
    ]
    return error_response(ValidationError(problems, "request"))


def create_app(svc: Service) -> FastAPI:
    app = FastAPI(
        title="suanli",
        version=__version__,
        description="The control plane of an alliance's pooled accelerators.",
        docs_url=None,  # served from local assets (routes/docs.py)
        redoc_url=None,
        # (described here: Python 3.13 renamed 422 "Unprocessable Content", after RFC 9110,
        # and the published document must not depend on the Python that made it)
        responses={
            401: {"model": ErrorOut, "description": "Unauthorized"},
            403: {"model": ErrorOut, "description": "Forbidden"},
            404: {"model": ErrorOut, "description": "Not Found"},
            422: {"model": ErrorOut, "description": "Unprocessable Content"},
        },
    )
    app.state.service = svc
    app.add_exception_handler(SuanliError, _domain)
    app.add_exception_handler(RequestValidationError, _request)
    app.add_exception_handler(SignInRequired, sign_in_redirect)
    for module in (service, users, pool, jobs, ledger):
        app.include_router(module.router)
    app.include_router(dashboard)
    app.include_router(docs.router)
    app.mount(docs.ASSETS, docs.assets(), name="docs-assets")
    app.include_router(modelscope.router)
    app.include_router(hub.router)  # (last: its Hugging Face paths begin with any name)
    app.add_middleware(RequestLimits, streamed=hub.STREAMED, streamed_max=2 * svc.hub_max_file)
    svc.metrics.watch_database(lambda: svc.db.session())  # noqa: PLW0108 - late: no db yet for the OpenAPI document
    return app


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI document (published as ``schemas/openapi.json``); it does not depend
    on the state behind the app."""
    return create_app(Service(None, None, None)).openapi()  # type: ignore[arg-type]
