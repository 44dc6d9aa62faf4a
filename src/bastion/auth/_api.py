"""The JSON endpoints: POST sign-up, sign-in, sign-out and GET session under /api/auth.

They take JSON or an urlencoded form, so the same endpoint serves scripts and
plain HTML forms. A failed sign-in uses one body for every reason. A sign-up
whose password the policy refuses (:mod:`bastion.auth._policy`) is a
:class:`~bastion.body.BadRequest` named for the rule, which the app answers
as ``{"error": <sentence>, "reason": "too_short"}`` (:meth:`BadRequest.as_json`). A 429 is
answered like every refusal of bastion (:mod:`bastion.responses`: for a JSON
client ``{"error", "reason": "RATE_LIMITED", "hint"}``) with Retry-After
and the RateLimit headers.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.auth._cookies import clear_session_cookie, read_session_cookie, set_session_cookie
from bastion.auth._emails import InvalidEmail, normalise_email
from bastion.auth._passwords import MAX_PASSWORD
from bastion.auth._policy import TOO_LONG, InvalidPassword, PasswordRule
from bastion.auth._service import AuthService, EmailTaken, SignInResult, SignUpLimited
from bastion.body import BadRequest, read_form, read_json
from bastion.body._media import media_type
from bastion.db._models import User
from bastion.guard import Client, FailReason, rate_limited
from bastion.ratelimit import rate_limit_headers
from bastion.responses import NO_STORE, RefusalResponse

MAX_AUTH_BODY = 8 * 1024
FAILED_SIGN_IN = "invalid email or password"


def client_of(request: Request) -> Client:
    """The resolved client IP (the envelope rewrote scope["client"]) and user agent."""
    ip = request.client.host if request.client else None
    return Client(ip=ip, user_agent=request.headers.get("user-agent"))


async def read_credentials(request: Request) -> tuple[str, str]:
    """Email and password from JSON or a form; 400 with a reason for anything odd.

    The body readers have already refused what no field may hold (lone
    surrogates, NUL, duplicate names, deep nesting), so only the shape and
    the two values are checked here.
    """
    kind, _ = media_type(request.headers)
    body: Any
    if kind == "application/x-www-form-urlencoded":
        body = await read_form(request, MAX_AUTH_BODY)
    else:
        body = await read_json(request, MAX_AUTH_BODY)
    if not isinstance(body, dict):
        raise BadRequest('body must be {"email": ..., "password": ...}')
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str):
        raise BadRequest("email and password must be strings")
    if len(password) > MAX_PASSWORD:
        raise BadRequest(TOO_LONG, name=PasswordRule.TOO_LONG)
    try:
        return normalise_email(email), password
    except InvalidEmail as exc:
        raise BadRequest(str(exc)) from None


def user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "admin": user.is_admin}


def sign_in_failure(result: SignInResult) -> Response:
    if result.reason is FailReason.RATE_LIMITED:
        return RefusalResponse(rate_limited(result.decision), rate_limit_headers(result.decision))
    return JSONResponse({"error": FAILED_SIGN_IN}, status_code=401, headers=NO_STORE)


def auth_routes(service: AuthService, max_age: int) -> list[Route]:
    """Routes to mount in any Starlette or FastAPI app (the envelope must wrap the app)."""

    async def sign_up(request: Request) -> Response:
        email, password = await read_credentials(request)
        try:
            user, token = await service.sign_up(email, password, client_of(request))
        except InvalidPassword as exc:
            raise BadRequest(str(exc), name=exc.reason) from None
        except EmailTaken as exc:
            return JSONResponse({"error": str(exc)}, status_code=409, headers=NO_STORE)
        except SignUpLimited as exc:
            refusal = rate_limited(exc.decision, str(exc))
            return RefusalResponse(refusal, rate_limit_headers(exc.decision))
        # The account and its first session are made together: a 201 always signs in.
        response = JSONResponse({"user": user_json(user)}, status_code=201, headers=NO_STORE)
        set_session_cookie(response, request, token, max_age)
        return response

    async def sign_in(request: Request) -> Response:
        email, password = await read_credentials(request)
        result = await service.sign_in(email, password, client_of(request))
        if not result.ok or result.user is None or result.token is None:
            return sign_in_failure(result)
        headers = {**NO_STORE, **rate_limit_headers(result.decision)}
        response = JSONResponse({"user": user_json(result.user)}, headers=headers)
        set_session_cookie(response, request, result.token, max_age)
        return response

    async def sign_out(request: Request) -> Response:
        await service.sign_out(read_session_cookie(request), client_of(request))
        response = JSONResponse({"signed_out": True}, headers=NO_STORE)
        clear_session_cookie(response, request)
        return response

    async def session(request: Request) -> Response:
        user = await service.current(read_session_cookie(request))
        return JSONResponse({"user": user_json(user) if user else None}, headers=NO_STORE)

    return [
        Route("/api/auth/sign-up", sign_up, methods=["POST"]),
        Route("/api/auth/sign-in", sign_in, methods=["POST"]),
        Route("/api/auth/sign-out", sign_out, methods=["POST"]),
        Route("/api/auth/session", session, methods=["GET"]),
    ]
