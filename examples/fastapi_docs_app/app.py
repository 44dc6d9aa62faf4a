"""FastAPI's ``/docs`` (Swagger UI) and ``/redoc`` behind the envelope, with no CDN.

    uvicorn --factory examples.fastapi_docs_app.app:create_app

FastAPI's own docs pages load Swagger UI and ReDoc from a CDN, which the
default Content-Security-Policy refuses (and an air-gapped network cannot
reach). ``fastapi-offline`` serves the same files from the app itself
(``/static-offline-docs/``); what is left is the CSP of the two pages:

- ``/docs`` runs one inline ``<script>`` (Swagger UI's configuration): it is
  allowed by its SHA-256 hash, computed from the very page FastAPI renders,
  not by ``'unsafe-inline'``. ``/docs/oauth2-redirect`` (the OAuth2 pop-up)
  has an inline script of its own, allowed the same way.
- ``/redoc`` needs ``'unsafe-inline'`` for styles only (ReDoc writes its
  styles into ``<style>`` elements at run time) and ``worker-src blob:``
  (its search runs in a worker made from a blob). ReDoc's bundle also shows
  Redocly's logo from Redocly's CDN, with no option to turn it off; this app
  serves ReDoc's page itself, with the bundle fastapi-offline ships and that
  one image URL pointed at an empty image, so that nothing is asked of
  another origin (and nothing is refused).

Everything else keeps bastion's defaults (``default-src 'none'``, frames
refused, nothing from another origin).
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp

from bastion import Bastion

__all__ = ["add_redoc", "create_app", "docs_headers"]

#: What both pages share: the defaults, less what the page needs.
_BASE = (
    "default-src 'none'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


#: Where fastapi-offline serves Swagger UI, ReDoc and a favicon (its default).
STATIC = "/static-offline-docs"
#: ReDoc's bundle, as this app serves it (see :func:`_redoc_bundle`).
REDOC_JS = "/redoc/redoc.standalone.js"
_REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
_EMPTY_IMAGE = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"


class Item(BaseModel):
    name: str
    price: float


def _script_hashes(html: str) -> str:
    """The CSP sources for each inline ``<script>`` of ``html``: ``'sha256-...'``."""
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    return " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in scripts
    )


def docs_headers(
    api: FastAPI, docs: str = "/docs", redoc: str = "/redoc"
) -> dict[str, dict[str, str | None]]:
    """``path_headers`` for ``protect()``: the CSP that lets ``api``'s docs pages render.

    The hash is of the script FastAPI writes into the page, which depends on
    the OpenAPI URL, the OAuth2 redirect URL and ``swagger_ui_parameters``:
    computed here from the app itself, so it follows them. (Behind a
    ``root_path``, the page names URLs with it: pass the same URLs.)
    """
    page = get_swagger_ui_html(
        openapi_url=api.openapi_url or "",
        title="",
        oauth2_redirect_url=api.swagger_ui_oauth2_redirect_url,
        swagger_ui_parameters=api.swagger_ui_parameters,
    )
    redirect = get_swagger_ui_oauth2_redirect_html()
    scripts = (
        _script_hashes(bytes(page.body).decode())
        + " "
        + _script_hashes(bytes(redirect.body).decode())
    )
    return {
        docs: {
            "Content-Security-Policy": f"{_BASE}; script-src 'self' {scripts}; style-src 'self'"
        },
        redoc: {
            "Content-Security-Policy": (
                f"{_BASE}; script-src 'self'; style-src 'self' 'unsafe-inline'; worker-src blob:"
            )
        },
    }


@cache
def _redoc_bundle() -> bytes:
    """fastapi-offline's ReDoc, with Redocly's CDN logo replaced by an empty image."""
    bundle = files("fastapi_offline").joinpath("static/redoc.standalone.js").read_text("utf-8")
    return bundle.replace(_REDOCLY_LOGO, _EMPTY_IMAGE).encode()


def add_redoc(api: FastAPI, path: str = "/redoc") -> None:
    """ReDoc's page at ``path``, and its bundle, served by ``api`` itself."""

    @api.get(path, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=api.openapi_url or "",
            title=f"{api.title} - ReDoc",
            redoc_js_url=REDOC_JS,
            redoc_favicon_url=f"{STATIC}/favicon.png",
            with_google_fonts=False,
        )

    @api.get(REDOC_JS, include_in_schema=False)
    async def redoc_js() -> Response:
        return Response(
            _redoc_bundle(),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=3600"},
        )


def create_app() -> ASGIApp:
    security = Bastion()
    # validatorUrl None: Swagger UI would otherwise show a badge from validator.swagger.io.
    # redoc_url None: this app serves ReDoc itself (add_redoc), without Redocly's CDN logo.
    api = FastAPIOffline(
        title="Shop",
        redoc_url=None,
        lifespan=security.lifespan,
        swagger_ui_parameters={"validatorUrl": None},
    )
    add_redoc(api)

    @api.get("/items/{item_id}")
    async def read_item(item_id: int) -> Item:
        """One item of the shop."""
        return Item(name=f"item {item_id}", price=1.5)

    @api.post("/items")
    async def create_item(item: Item) -> Item:
        """Add an item (a JSON body: scripts send ``Origin``, as every unsafe request must)."""
        return item

    return security.protect(api, path_headers=docs_headers(api))
