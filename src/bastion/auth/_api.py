"""The JSON endpoints under /api/auth: sign-up, sign-in, sign-out, session, and passwords.

They take JSON or an urlencoded form, so the same endpoint serves scripts and
plain HTML forms. A failed sign-in uses one body for every reason. A 429 is
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
from bastion.auth._resets import ResetRefused
from bastion.auth._service import (
    AuthService,
    EmailTaken,
    InvalidPassword,
    NotSignedIn,
    PasswordChangeLimited,
    ResetLimited,
    SignInResult,
    SignUpLimited,
    WrongPassword,
)
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


async def read_fields(request: Request, *names: str) -> list[str]:
    """The string fields ``names`` of a JSON object or an urlencoded form; 400 otherwise.

    The body readers have already refused what no field may hold (lone
    surrogates, NUL, duplicate names, deep nesting), so only the shape is
    checked here; each endpoint checks its values.
    """
    kind, _ = media_type(request.headers)
    body: Any
    if kind == "application/x-www-form-urlencoded":
        body = await read_form(request, MAX_AUTH_BODY)
    else:
        body = await read_json(request, MAX_AUTH_BODY)
    if not isinstance(body, dict):
        raise BadRequest("body must be {" + ", ".join(f'"{name}": ...' for name in names) + "}")
    values = [body.get(name) for name in names]
    if not all(isinstance(value, str) for value in values):
        raise BadRequest(" and ".join(names) + " must be strings")
    return [str(value) for value in values]


async def read_credentials(request: Request) -> tuple[str, str]:
    """Email and password from JSON or a form; 400 with a reason for anything odd."""
    email, password = await read_fields(request, "email", "password")
    if len(password) > MAX_PASSWORD:
        raise BadRequest(f"password must be at most {MAX_PASSWORD} characters")
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
            raise BadRequest(str(exc)) from None
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
        *password_routes(service, max_age),
    ]


# -- passwords: change and reset --------------------------------------------------------------

NOT_SIGNED_IN = "not signed in"


def password_reason(exc: InvalidPassword, password: str) -> str:
    """The rule a refused new password broke, as the stable ``reason`` a JSON client reads.

    The password policy names it on the exception; a plain length refusal
    is ``too_short`` or ``too_long``.
    """
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    return "too_long" if len(password) > MAX_PASSWORD else "too_short"


def password_refused(exc: InvalidPassword, password: str) -> Response:
    body = {"error": str(exc), "reason": password_reason(exc, password)}
    return JSONResponse(body, status_code=400, headers=NO_STORE)


async def read_email(request: Request) -> str:
    """The normalised ``email`` of a reset request; 400 for a missing or malformed one."""
    (email,) = await read_fields(request, "email")
    try:
        return normalise_email(email)
    except InvalidEmail as exc:
        raise BadRequest(str(exc)) from None


def password_routes(service: AuthService, max_age: int) -> list[Route]:
    """``POST /api/auth/password``, ``/api/auth/password-reset`` and ``.../confirm``.

    - change: 200 ``{"status": "changed"}`` and a new session cookie; 401
      ``{"error"}`` when not signed in or the current password is wrong; 429
      over the sign-in limit; 400 ``{"error", "reason"}`` for a refused new
      password.
    - reset request: 202 ``{"status": "sent"}`` for any well-formed email,
      known or not; 429 past ``PASSWORD_RESET_RATE_LIMIT``.
    - reset confirmation: 200 ``{"status": "reset"}``, and this browser's
      session cookie cleared (every session of the account has ended); 400
      ``{"error", "reason"}`` with ``reason`` ``invalid``, ``used`` or
      ``expired`` for the token, or the password rule's.
    """

    async def change(request: Request) -> Response:
        current, new = await read_fields(request, "current_password", "new_password")
        if len(current) > MAX_PASSWORD:
            raise BadRequest(f"current_password must be at most {MAX_PASSWORD} characters")
        try:
            token = await service.change_password(
                read_session_cookie(request), current, new, client_of(request)
            )
        except NotSignedIn:
            return JSONResponse({"error": NOT_SIGNED_IN}, status_code=401, headers=NO_STORE)
        except WrongPassword as exc:
            return JSONResponse({"error": str(exc)}, status_code=401, headers=NO_STORE)
        except PasswordChangeLimited as exc:
            refusal = rate_limited(exc.decision, str(exc))
            return RefusalResponse(refusal, rate_limit_headers(exc.decision))
        except InvalidPassword as exc:
            return password_refused(exc, new)
        response = JSONResponse({"status": "changed"}, headers=NO_STORE)
        set_session_cookie(response, request, token, max_age)
        return response

    async def reset(request: Request) -> Response:
        email = await read_email(request)
        try:
            await service.request_password_reset(email, client_of(request))
        except ResetLimited as exc:
            refusal = rate_limited(exc.decision, str(exc))
            return RefusalResponse(refusal, rate_limit_headers(exc.decision))
        return JSONResponse({"status": "sent"}, status_code=202, headers=NO_STORE)

    async def confirm(request: Request) -> Response:
        token, password = await read_fields(request, "token", "password")
        try:
            await service.confirm_password_reset(token, password, client_of(request))
        except ResetRefused as exc:
            body = {"error": str(exc), "reason": exc.reason}
            return JSONResponse(body, status_code=400, headers=NO_STORE)
        except InvalidPassword as exc:
            return password_refused(exc, password)
        response = JSONResponse({"status": "reset"}, headers=NO_STORE)
        clear_session_cookie(response, request)
        return response

    return [
        Route("/api/auth/password", change, methods=["POST"]),
        Route("/api/auth/password-reset", reset, methods=["POST"]),
        Route("/api/auth/password-reset/confirm", confirm, methods=["POST"]),
    ]
