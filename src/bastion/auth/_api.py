"""The JSON endpoints under /api/auth: sign-up, sign-in, sign-out, session, sessions, passwords.

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

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.auth._cookies import (
    CLEAR_SITE_DATA,
    clear_pending_cookie,
    clear_session_cookie,
    read_pending_cookie,
    read_session_cookie,
    set_pending_cookie,
    set_session_cookie,
)
from bastion.auth._emails import InvalidEmail, normalise_email
from bastion.auth._passkeys import MAX_CREDENTIAL_BODY, MAX_NAME, PasskeyRefused
from bastion.auth._passwords import MAX_PASSWORD
from bastion.auth._policy import TOO_LONG, InvalidPassword, PasswordRule
from bastion.auth._resets import ResetRefused
from bastion.auth._service import (
    AuthService,
    EmailTaken,
    EndSession,
    NotSignedIn,
    PasskeyLimited,
    PasswordChangeLimited,
    PendingGone,
    ResetLimited,
    SecondFactorOutcome,
    SignInResult,
    SignUpLimited,
    TotpConflict,
    WrongCode,
    WrongPassword,
)
from bastion.body import BadRequest, read_form, read_json
from bastion.body._media import media_type
from bastion.db._models import Passkey, User, UserSession
from bastion.guard import Client, FailReason, rate_limited
from bastion.ratelimit import Decision, rate_limit_headers
from bastion.responses import NO_STORE, Refusal, RefusalResponse, render

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
        if result.pending_token is not None:
            # A right password that owes its second factor: a pending cookie, no session.
            body = {"second_factor": "required", "methods": list(result.second_factor)}
            headers = {**NO_STORE, **rate_limit_headers(result.decision)}
            response = JSONResponse(body, headers=headers)
            set_pending_cookie(response, request, result.pending_token)
            return response
        if not result.ok or result.user is None or result.token is None:
            return sign_in_failure(result)
        headers = {**NO_STORE, **rate_limit_headers(result.decision)}
        response = JSONResponse({"user": user_json(result.user)}, headers=headers)
        set_session_cookie(response, request, result.token, max_age)
        return response

    async def sign_out(request: Request) -> Response:
        await service.sign_out(read_session_cookie(request), client_of(request))
        response = JSONResponse({"signed_out": True}, headers={**NO_STORE, **CLEAR_SITE_DATA})
        clear_session_cookie(response, request)
        return response

    async def session(request: Request) -> Response:
        # No cookie: an anonymous visitor, 200 {"user": null}. A cookie that names
        # no live session (ended elsewhere, expired, its user deactivated): 401.
        token = read_session_cookie(request)
        user = await service.current(token)
        if token and user is None:
            return not_signed_in(request, token)
        return JSONResponse({"user": user_json(user) if user else None}, headers=NO_STORE)

    return [
        Route("/api/auth/sign-up", sign_up, methods=["POST"]),
        Route("/api/auth/sign-in", sign_in, methods=["POST"]),
        Route("/api/auth/sign-out", sign_out, methods=["POST"]),
        Route("/api/auth/session", session, methods=["GET"]),
        *session_routes(service),
        *password_routes(service, max_age),
        *passkey_routes(service, max_age),
        *second_factor_routes(service, max_age),
    ]


# -- sessions you can see and end -------------------------------------------------------------

NO_SUCH_SESSION = Refusal(
    404,
    "Not Found",
    "NO_SUCH_SESSION",
    "no session of yours has this id",
    "list your sessions with GET /api/auth/sessions",
)


SESSION_ENDED = Refusal(
    401,
    "Unauthorized",
    "SESSION_ENDED",
    "this session has ended (signed out, ended from another device, or expired)",
    "sign in again",
)
NOT_SIGNED_IN = Refusal(401, "Unauthorized", "NOT_SIGNED_IN", "you are not signed in", "sign in")


def json_refusal(refusal: Refusal) -> Response:
    """``refusal`` as bastion's JSON refusals read (``{"error", "reason", "hint"}``), always.

    These endpoints speak only JSON, and a ``fetch`` or a script asking for
    one sends ``Accept: */*`` and no body: negotiating would hand it text.
    """
    body, content_type = render(refusal, "json")
    return Response(body, refusal.status, NO_STORE, content_type.decode())


def not_signed_in(request: Request, token: str | None) -> Response:
    """401 for a caller with no live session; a stale cookie is cleared on the way."""
    if not token:
        return json_refusal(NOT_SIGNED_IN)
    response = json_refusal(SESSION_ENDED)
    clear_session_cookie(response, request)
    return response


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC to the second, ``Z``-suffixed: ``2026-01-31T12:00:00Z``."""
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def session_json(row: UserSession, current: UserSession) -> dict[str, Any]:
    """One entry of the list: the public id and what the user recognises, never the token."""
    return {
        "id": row.public_id,
        "created_at": iso_utc(row.created_at),
        "last_seen_at": iso_utc(row.last_seen_at),
        "expires_at": iso_utc(row.expires_at),
        "ip": row.ip,
        "user_agent": row.user_agent,
        "current": row.id == current.id,
    }


def session_routes(service: AuthService) -> list[Route]:
    """``GET /api/auth/sessions``, ``DELETE /api/auth/sessions/{id}``, ``POST .../revoke-others``.

    All for the signed-in user alone: any other caller gets a 401. An id that
    is not one of the caller's sessions is a 404 whether or not it exists.
    """

    async def list_sessions(request: Request) -> Response:
        token = read_session_cookie(request)
        found = await service.list_sessions(token)
        if found is None:
            return not_signed_in(request, token)
        current, rows = found
        body = {"sessions": [session_json(row, current) for row in rows]}
        return JSONResponse(body, headers=NO_STORE)

    async def end_session(request: Request) -> Response:
        token = read_session_cookie(request)
        outcome = await service.end_session(token, request.path_params["id"], client_of(request))
        if outcome is EndSession.NOT_SIGNED_IN:
            return not_signed_in(request, token)
        if outcome is EndSession.NOT_FOUND:
            return json_refusal(NO_SUCH_SESSION)
        if outcome is EndSession.SIGNED_OUT:
            response = Response(status_code=204, headers={**NO_STORE, **CLEAR_SITE_DATA})
            clear_session_cookie(response, request)
            return response
        return Response(status_code=204, headers=NO_STORE)

    async def revoke_others(request: Request) -> Response:
        token = read_session_cookie(request)
        ended = await service.end_other_sessions(token, client_of(request))
        if ended is None:
            return not_signed_in(request, token)
        return JSONResponse({"revoked": ended}, headers=NO_STORE)

    return [
        Route("/api/auth/sessions", list_sessions, methods=["GET"]),
        Route("/api/auth/sessions/revoke-others", revoke_others, methods=["POST"]),
        Route("/api/auth/sessions/{id}", end_session, methods=["DELETE"]),
    ]


# -- passwords: change and reset --------------------------------------------------------------


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
        session_token = read_session_cookie(request)
        try:
            token = await service.change_password(session_token, current, new, client_of(request))
        except NotSignedIn:
            return not_signed_in(request, session_token)
        except WrongPassword as exc:
            return JSONResponse({"error": str(exc)}, status_code=401, headers=NO_STORE)
        except PasswordChangeLimited as exc:
            refusal = rate_limited(exc.decision, str(exc))
            return RefusalResponse(refusal, rate_limit_headers(exc.decision))
        except InvalidPassword as exc:
            raise BadRequest(str(exc), name=exc.reason) from None
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
            raise BadRequest(str(exc), name=exc.reason) from None
        response = JSONResponse({"status": "reset"}, headers=NO_STORE)
        clear_session_cookie(response, request)
        return response

    return [
        Route("/api/auth/password", change, methods=["POST"]),
        Route("/api/auth/password-reset", reset, methods=["POST"]),
        Route("/api/auth/password-reset/confirm", confirm, methods=["POST"]),
    ]


# -- passkeys ----------------------------------------------------------------------------------

NO_SUCH_PASSKEY = Refusal(
    404,
    "Not Found",
    "NO_SUCH_PASSKEY",
    "no passkey of yours has this id",
    "list your passkeys with GET /api/auth/passkeys",
)


async def read_credential(request: Request) -> tuple[dict[str, Any], str | None]:
    """The browser's credential (``PublicKeyCredential.toJSON()``) and its optional ``name``.

    The credential is the body itself; ``name`` sits beside its members. What
    is inside it is for :mod:`bastion.auth._passkeys` to judge.
    """
    body = await read_json(request, MAX_CREDENTIAL_BODY)
    if not isinstance(body, dict):
        raise BadRequest("body must be a WebAuthn credential in its JSON form", name="malformed")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name.strip()) > MAX_NAME):
        raise BadRequest(f"name must be a string of at most {MAX_NAME} characters", name="name")
    return body, (name.strip() or None) if isinstance(name, str) else None


def too_many(decision: Decision, detail: str) -> Response:
    """The 429 of a sign-in limit, with its RateLimit headers."""
    return RefusalResponse(rate_limited(decision, detail), rate_limit_headers(decision))


def passkey_refused(exc: PasskeyRefused) -> Response:
    body = {"error": str(exc), "reason": exc.reason.value}
    return JSONResponse(body, status_code=400, headers=NO_STORE)


def passkey_json(passkey: Passkey) -> dict[str, Any]:
    return {
        "id": passkey.public_id,
        "name": passkey.name,
        "created_at": iso_utc(passkey.created_at),
        "last_used_at": iso_utc(passkey.last_used_at) if passkey.last_used_at else None,
    }


def passkey_routes(service: AuthService, max_age: int) -> list[Route]:
    """``/api/auth/passkeys``: register (options, credential), sign in (options, assertion),
    list and remove.

    - register options: ``{"password"}`` from a signed-in user: 200 the
      creation options (the ``publicKey`` member of what
      ``navigator.credentials.create`` takes, binary fields base64url); 401
      when not signed in or the password is wrong, 429 over the sign-in limit.
    - register: the credential (``PublicKeyCredential.toJSON()``), with an
      optional ``"name"``: 201 ``{"id", "name", "created_at"}``.
    - sign-in options: 200 the request options; while the pending cookie is
      held, for that account's passkeys only.
    - sign-in: the assertion: 200 ``{"user"}`` and a session cookie (the
      pending cookie cleared); 429 over the sign-in limit.
    - A refused credential or assertion: 400 ``{"error", "reason"}``, the
      reason one of :class:`~bastion.auth._passkeys.Reason`'s (``origin``,
      ``rp_id``, ``challenge``, ``sign_count``, ...).
    - list: ``{"passkeys": [{"id", "name", "created_at", "last_used_at"}]}``;
      remove: 204, 404 for an id that is not one of the caller's passkeys.
    """

    async def register_options(request: Request) -> Response:
        (password,) = await read_fields(request, "password")
        if len(password) > MAX_PASSWORD:
            raise BadRequest(f"password must be at most {MAX_PASSWORD} characters")
        token = read_session_cookie(request)
        try:
            options = await service.passkey_registration_options(
                token, password, client_of(request)
            )
        except NotSignedIn:
            return not_signed_in(request, token)
        except WrongPassword as exc:
            return JSONResponse({"error": str(exc)}, status_code=401, headers=NO_STORE)
        except PasswordChangeLimited as exc:
            return too_many(exc.decision, str(exc))
        return JSONResponse(options, headers=NO_STORE)

    async def register(request: Request) -> Response:
        credential, name = await read_credential(request)
        token = read_session_cookie(request)
        try:
            passkey = await service.register_passkey(token, credential, name, client_of(request))
        except NotSignedIn:
            return not_signed_in(request, token)
        except PasskeyRefused as exc:
            return passkey_refused(exc)
        body = {key: passkey_json(passkey)[key] for key in ("id", "name", "created_at")}
        return JSONResponse(body, status_code=201, headers=NO_STORE)

    async def sign_in_options(request: Request) -> Response:
        options = await service.passkey_sign_in_options(read_pending_cookie(request))
        return JSONResponse(options, headers=NO_STORE)

    async def sign_in(request: Request) -> Response:
        credential, _ = await read_credential(request)
        pending = read_pending_cookie(request)
        try:
            user, token = await service.passkey_sign_in(credential, pending, client_of(request))
        except PasskeyRefused as exc:
            return passkey_refused(exc)
        except PasskeyLimited as exc:
            return too_many(exc.decision, str(exc))
        except PendingGone:
            body = {"error": "this sign-in was completed or has ended; sign in again"}
            response = JSONResponse(body, status_code=401, headers=NO_STORE)
            clear_pending_cookie(response, request)
            return response
        response = JSONResponse({"user": user_json(user)}, headers=NO_STORE)
        set_session_cookie(response, request, token, max_age)
        if pending:
            clear_pending_cookie(response, request)
        return response

    async def list_passkeys(request: Request) -> Response:
        token = read_session_cookie(request)
        passkeys = await service.list_passkeys(token)
        if passkeys is None:
            return not_signed_in(request, token)
        return JSONResponse({"passkeys": [passkey_json(p) for p in passkeys]}, headers=NO_STORE)

    async def remove(request: Request) -> Response:
        token = read_session_cookie(request)
        try:
            removed = await service.remove_passkey(
                token, request.path_params["id"], client_of(request)
            )
        except NotSignedIn:
            return not_signed_in(request, token)
        if not removed:
            return json_refusal(NO_SUCH_PASSKEY)
        return Response(status_code=204, headers=NO_STORE)

    return [
        Route("/api/auth/passkeys", list_passkeys, methods=["GET"]),
        Route("/api/auth/passkeys/register/options", register_options, methods=["POST"]),
        Route("/api/auth/passkeys/register", register, methods=["POST"]),
        Route("/api/auth/passkeys/sign-in/options", sign_in_options, methods=["POST"]),
        Route("/api/auth/passkeys/sign-in", sign_in, methods=["POST"]),
        Route("/api/auth/passkeys/{id}", remove, methods=["DELETE"]),
    ]


# -- the second factor: TOTP, backup codes, and the sign-in's second step --------------------

NO_PENDING_SIGN_IN = Refusal(
    401,
    "Unauthorized",
    "NO_PENDING_SIGN_IN",
    "no sign-in is waiting for a second factor: none was started here, it expired (after "
    "five minutes), took five wrong codes, or was already completed",
    "sign in again with your email and password",
)
WRONG_SECOND_FACTOR = Refusal(
    401,
    "Unauthorized",
    "WRONG_CODE",
    "the code is wrong or was already used",
    "enter the code your authenticator app shows now, or an unused backup code",
)
SECOND_FACTOR_ENDED = Refusal(
    401,
    "Unauthorized",
    "TOO_MANY_CODES",
    "the code is wrong, and that was the fifth wrong code: this sign-in has ended",
    "sign in again with your email and password",
)
#: Longer than any code or backup code typed with spaces and dashes.
MAX_CODE_FIELD = 64


async def read_second_factor(request: Request) -> tuple[str | None, str | None]:
    """``(code, None)`` or ``(None, backup_code)``: exactly one of them, a short string; 400
    otherwise."""
    kind, _ = media_type(request.headers)
    body: Any
    if kind == "application/x-www-form-urlencoded":
        body = await read_form(request, MAX_AUTH_BODY)
    else:
        body = await read_json(request, MAX_AUTH_BODY)
    if not isinstance(body, dict):
        raise BadRequest('body must be {"code": ...} or {"backup_code": ...}')
    names = ("code", "backup_code")
    given = {name: body[name] for name in names if body.get(name) not in (None, "")}
    if len(given) != 1:
        raise BadRequest('give exactly one of "code" and "backup_code"')
    ((name, value),) = given.items()
    if not isinstance(value, str) or len(value) > MAX_CODE_FIELD:
        raise BadRequest(f"{name} must be a string of at most {MAX_CODE_FIELD} characters")
    return (value, None) if name == "code" else (None, value)


async def read_password_proof(request: Request) -> str:
    """The ``password`` that proves a signed-in user is still the account's owner."""
    (password,) = await read_fields(request, "password")
    if len(password) > MAX_PASSWORD:
        raise BadRequest(f"password must be at most {MAX_PASSWORD} characters")
    return password


def totp_refusal(request: Request, token: str | None, exc: Exception) -> Response:
    """The answer to what a TOTP management call raised (re-raised if it is none of ours)."""
    if isinstance(exc, NotSignedIn):
        return not_signed_in(request, token)
    if isinstance(exc, WrongPassword):
        return JSONResponse({"error": "the password is wrong"}, status_code=401, headers=NO_STORE)
    if isinstance(exc, PasswordChangeLimited):
        refusal = rate_limited(exc.decision, str(exc))
        return RefusalResponse(refusal, rate_limit_headers(exc.decision))
    if isinstance(exc, TotpConflict):
        body = {"error": str(exc), "reason": exc.reason}
        return JSONResponse(body, status_code=409, headers=NO_STORE)
    if isinstance(exc, WrongCode):
        raise BadRequest(str(exc), name=exc.reason) from None
    raise exc


TOTP_REFUSALS = (NotSignedIn, WrongPassword, PasswordChangeLimited, TotpConflict, WrongCode)


def second_factor_routes(service: AuthService, max_age: int) -> list[Route]:
    """TOTP for the signed-in user, and the second step of a password sign-in.

    - ``POST /api/auth/totp/enroll`` ``{"password"}`` → ``{"secret", "otpauth_uri",
      "qr_svg"}``, shown this once; 409 ``totp_enabled`` while TOTP is on.
    - ``POST /api/auth/totp/confirm`` ``{"code"}`` → ``{"backup_codes": [10]}``; 400
      ``wrong_code``; 409 ``totp_not_enrolled`` or ``totp_enabled``.
    - ``POST /api/auth/totp/backup-codes`` ``{"password"}`` → ``{"backup_codes": [10]}``
      (the old ones stop working); 409 ``totp_disabled``.
    - ``DELETE /api/auth/totp`` ``{"password"}`` → 204; 409 ``totp_disabled``.

    Each needs a session (401 as the sessions' endpoints otherwise); a wrong
    password is 401 ``{"error"}`` and a failed sign-in, 429 over the sign-in
    limits.

    ``POST /api/auth/sign-in/second-factor`` ``{"code"}`` or ``{"backup_code"}``
    with the pending cookie → ``{"user"}``, a session cookie, the pending cookie
    cleared. 401 ``NO_PENDING_SIGN_IN``, ``WRONG_CODE`` or ``TOO_MANY_CODES`` (the
    fifth wrong one); 429 over the sign-in limits, as a password.
    """

    async def enroll(request: Request) -> Response:
        password = await read_password_proof(request)
        token = read_session_cookie(request)
        try:
            enrolment = await service.totp_enroll(token, password, client_of(request))
        except TOTP_REFUSALS as exc:
            return totp_refusal(request, token, exc)
        body = {
            "secret": enrolment.secret,
            "otpauth_uri": enrolment.otpauth_uri,
            "qr_svg": enrolment.qr_svg,
        }
        return JSONResponse(body, headers=NO_STORE)

    async def confirm(request: Request) -> Response:
        (code,) = await read_fields(request, "code")
        if len(code) > MAX_CODE_FIELD:
            raise BadRequest(f"code must be at most {MAX_CODE_FIELD} characters")
        token = read_session_cookie(request)
        try:
            codes = await service.totp_confirm(token, code, client_of(request))
        except TOTP_REFUSALS as exc:
            return totp_refusal(request, token, exc)
        return JSONResponse({"backup_codes": codes}, headers=NO_STORE)

    async def backup_codes(request: Request) -> Response:
        password = await read_password_proof(request)
        token = read_session_cookie(request)
        try:
            codes = await service.replace_backup_codes(token, password, client_of(request))
        except TOTP_REFUSALS as exc:
            return totp_refusal(request, token, exc)
        return JSONResponse({"backup_codes": codes}, headers=NO_STORE)

    async def disable(request: Request) -> Response:
        password = await read_password_proof(request)
        token = read_session_cookie(request)
        try:
            await service.totp_disable(token, password, client_of(request))
        except TOTP_REFUSALS as exc:
            return totp_refusal(request, token, exc)
        return Response(status_code=204, headers=NO_STORE)

    async def second_factor(request: Request) -> Response:
        code, backup_code = await read_second_factor(request)
        result = await service.sign_in_second_factor(
            read_pending_cookie(request), client_of(request), code=code, backup_code=backup_code
        )
        if result.outcome is SecondFactorOutcome.RATE_LIMITED and result.decision is not None:
            refusal = rate_limited(result.decision)
            return RefusalResponse(refusal, rate_limit_headers(result.decision))
        if result.outcome is SecondFactorOutcome.WRONG:
            return json_refusal(WRONG_SECOND_FACTOR)
        if result.user is None or result.token is None:
            gone = result.outcome is SecondFactorOutcome.ENDED
            response = json_refusal(SECOND_FACTOR_ENDED if gone else NO_PENDING_SIGN_IN)
            clear_pending_cookie(response, request)
            return response
        response = JSONResponse({"user": user_json(result.user)}, headers=NO_STORE)
        clear_pending_cookie(response, request)
        set_session_cookie(response, request, result.token, max_age)
        return response

    return [
        Route("/api/auth/totp/enroll", enroll, methods=["POST"]),
        Route("/api/auth/totp/confirm", confirm, methods=["POST"]),
        Route("/api/auth/totp/backup-codes", backup_codes, methods=["POST"]),
        Route("/api/auth/totp", disable, methods=["DELETE"]),
        Route("/api/auth/sign-in/second-factor", second_factor, methods=["POST"]),
    ]
