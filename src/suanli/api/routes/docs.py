"""The API's interactive documentation, Swagger UI at ``/docs`` and ReDoc at ``/redoc``, from
assets shipped in a package (``fastapi-offline``'s static files, MIT): no CDN, so they work on
a machine with no internet, as an alliance's servers often are."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

router = APIRouter(include_in_schema=False)
#: where the assets are served
ASSETS = "/docs-assets"


def assets() -> StaticFiles:
    return StaticFiles(directory=Path(str(resources.files("fastapi_offline") / "static")))


@router.get("/docs")
def swagger() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="suanli API",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
    )


@router.get("/redoc")
def redoc() -> HTMLResponse:
    return get_redoc_html(
        openapi_url="/openapi.json",
        title="suanli API",
        redoc_js_url=f"{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS}/favicon.png",
        with_google_fonts=False,
    )
