"""/sandbox/hardening: what the envelope resolved for this request, and a form to prove CSRF.

The counter is the "state" a cross-site form would try to change. It lives in
the process, which is all a demonstration needs.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from bastion.responses import NO_STORE
from bastion_example.forms import form_page
from bastion_example.guards import guard_sandbox
from bastion_example.templating import templates


def _counter(request: Request) -> int:
    value: int = getattr(request.app.state, "hardening_counter", 0)
    return value


async def page(request: Request) -> Response:
    """What the envelope resolved (GET and HEAD; only POST counts, see ``count``)."""
    await guard_sandbox(request)
    client = request.client.host if request.client else None
    context = {
        "client": client,
        "scheme": request.url.scheme,
        "host": request.headers.get("host", ""),
        "counter": _counter(request),
    }
    return templates.TemplateResponse(request, "sandbox_hardening.html", context)


async def count(request: Request) -> Response:
    await guard_sandbox(request)
    request.app.state.hardening_counter = _counter(request) + 1
    # Post/redirect/get: a reload does not post again.
    return RedirectResponse("/sandbox/hardening", status_code=303)


async def state(request: Request) -> Response:
    """The same facts as JSON, for scripts and tests."""
    await guard_sandbox(request)
    client = request.client.host if request.client else None
    return JSONResponse(
        {"client": client, "scheme": request.url.scheme, "counter": _counter(request)},
        headers=NO_STORE,
    )


routes = [
    form_page("/sandbox/hardening", page, count, name="sandbox_hardening"),
    Route("/api/sandbox/hardening", state, methods=["GET"]),
]
