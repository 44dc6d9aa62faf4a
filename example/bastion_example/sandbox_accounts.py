"""/sandbox/accounts: what the password policy says about a password, before anyone signs up.

The verdict comes from the same :meth:`AuthService.check_new_password` that
sign-up, ``bastion createuser`` and every other place a password is chosen
call, so the page cannot disagree with them. The JSON API is a contract::

    POST /api/sandbox/accounts/password-verdict  {"password": "...", "email": "..."}
      -> {"ok": true, "reason": null}
      -> {"ok": false, "reason": "common", "error": "this password is one of ..."}

``reason`` is one of ``too_short``, ``too_long``, ``common`` and
``contains_context``, as in the sign-up's 400. Nothing is stored, hashed,
logged or audited: a verdict is a set lookup and a few substring tests. The
page's form works without JavaScript (POST to the page, which shows the
verdict); ``accounts.js`` asks the API instead and leaves the form as typed.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.auth import InvalidPassword, PasswordRule
from bastion.body import BadRequest, read_form, read_json
from bastion.responses import NO_STORE
from bastion_example.accounts import auth_service
from bastion_example.forms import form_page
from bastion_example.guards import guard_sandbox
from bastion_example.sandbox_outbox import outbox_context
from bastion_example.templating import templates

__all__ = ["routes", "verdict"]

#: As the auth endpoints: a password is at most 1,024 characters, an email 254.
MAX_BODY = 8 * 1024


def verdict(request: Request, password: str, email: str) -> dict[str, object]:
    """``{"ok", "reason"}`` (and the refusal's ``error`` sentence) for a candidate password."""
    try:
        auth_service(request).check_new_password(password, email)
    except InvalidPassword as exc:
        reason: PasswordRule = exc.reason
        return {"ok": False, "reason": reason.value, "error": str(exc)}
    return {"ok": True, "reason": None}


def _fields(body: object) -> tuple[str, str]:
    if not isinstance(body, dict):
        raise BadRequest('body must be {"password": ..., "email": ...}')
    password, email = body.get("password"), body.get("email", "")
    if not isinstance(password, str) or not isinstance(email, str):
        raise BadRequest("password and email must be strings")
    return password, email


async def api_verdict(request: Request) -> Response:
    await guard_sandbox(request)
    password, email = _fields(await read_json(request, MAX_BODY))
    return JSONResponse(verdict(request, password, email), headers=NO_STORE)


async def _render(request: Request, checked: dict[str, object] | None = None) -> Response:
    policy = auth_service(request).password_policy
    context: dict[str, object] = {"policy": policy, "verdict": checked, **outbox_context(request)}
    return templates.TemplateResponse(request, "sandbox_accounts.html", context, headers=NO_STORE)


async def page(request: Request) -> Response:
    await guard_sandbox(request)
    return await _render(request)


async def check(request: Request) -> Response:
    """The form without JavaScript: the same verdict, on the page (the password is not echoed)."""
    await guard_sandbox(request)
    password, email = _fields(await read_form(request, MAX_BODY))
    return await _render(request, {**verdict(request, password, email), "email": email})


routes = [
    form_page("/sandbox/accounts", page, check, name="sandbox_accounts"),
    Route("/api/sandbox/accounts/password-verdict", api_verdict, methods=["POST"]),
]
