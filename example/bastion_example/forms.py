"""Pages that show a form on GET and take it on POST, dispatched on the method explicitly.

Starlette answers HEAD with the endpoint of any route that allows GET. A
handler written as "GET shows the page, anything else submits it" therefore
submits on HEAD too, and HEAD is a safe method, which the envelope lets
through without a CSRF check: a HEAD with a form body once created accounts
and signed people in. Here only POST submits; GET and HEAD show the page (the
server sends HEAD's headers without the body), and nothing else gets in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["Endpoint", "form_page"]

Endpoint = Callable[[Request], Awaitable[Response]]


def form_page(path: str, show: Endpoint, submit: Endpoint, *, name: str) -> Route:
    """A route: POST runs ``submit``; GET and HEAD run ``show``, which must change nothing."""

    async def endpoint(request: Request) -> Response:
        if request.method == "POST":
            return await submit(request)
        if request.method in ("GET", "HEAD"):
            return await show(request)
        raise HTTPException(405)  # the route allows no other method; never reached

    return Route(path, endpoint, methods=["GET", "POST"], name=name)
