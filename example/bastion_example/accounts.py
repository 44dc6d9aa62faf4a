"""Pages for people: /sign-in, /sign-up, /account (and its sessions), /sign-out and /admin/audit.

Plain HTML forms posting to their own page: same-origin, so the envelope's
CSRF check passes on Sec-Fetch-Site with no token in the form. Only POST
submits a form (see :mod:`bastion_example.forms`).

A page that needs a signed-in visitor sends an anonymous one to
``/sign-in?next=<the page>``; the sign-in and sign-up forms carry ``next`` in
their action and, once the visitor is in, go there, but only if
:func:`bastion.redirects.safe_next` says it is a path on this site.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bastion.audit import count, recent
from bastion.auth import (
    CLEAR_SITE_DATA,
    AuthService,
    EmailTaken,
    EndSession,
    Enrolment,
    InvalidPassword,
    NotSignedIn,
    PasswordChangeLimited,
    ResetLimited,
    ResetRefused,
    SecondFactorOutcome,
    SignUpLimited,
    TotpConflict,
    WrongCode,
    WrongPassword,
    classify_device,
    clear_pending_cookie,
    clear_session_cookie,
    client_of,
    read_credentials,
    read_email,
    read_fields,
    read_pending_cookie,
    read_second_factor,
    read_session_cookie,
    set_pending_cookie,
    set_session_cookie,
)
from bastion.body import BadRequest
from bastion.config import Settings
from bastion.db import User
from bastion.guard import FailReason
from bastion.ratelimit import rate_limit_headers
from bastion.redirects import next_for, safe_next
from bastion.responses import NO_STORE
from bastion_example.forms import form_page
from bastion_example.templating import templates

AUDIT_PAGE_SIZE = 25
#: Where a visitor lands after signing in or up when no (acceptable) ``next`` came along.
DEFAULT_LANDING = "/account"


def auth_service(request: Request) -> AuthService:
    service: AuthService = request.app.state.auth
    return service


async def current_user(request: Request) -> User | None:
    return await auth_service(request).current(read_session_cookie(request))


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _next(request: Request) -> str | None:
    """The page to return to, from the query string; None unless it is one of ours."""
    target = safe_next(request.query_params.get("next"), default="")
    return target or None


def _next_query(request: Request) -> str:
    """``?next=...`` to carry the way back from one form to the next; empty without one."""
    target = _next(request)
    return "?" + urlencode({"next": target}) if target else ""


def _form_context(request: Request) -> dict[str, object]:
    """What the sign-in and sign-up templates need besides the error and the email."""
    return {"error": None, "email": "", "next": _next(request), "next_query": _next_query(request)}


def require_sign_in(request: Request) -> Response:
    """Turn an anonymous visitor away to the sign-in page, with the way back.

    A session cookie that led to no user (expired, signed out elsewhere) is
    cleared on the way, so the navigation stops offering "Account".
    """
    response = RedirectResponse(
        "/sign-in?" + urlencode({"next": next_for(request)}), status_code=303
    )
    if read_session_cookie(request) is not None:
        clear_session_cookie(response, request)
    return response


async def sign_in_page(request: Request) -> Response:
    return templates.TemplateResponse(request, "sign_in.html", _form_context(request))


async def sign_in(request: Request) -> Response:
    context = _form_context(request)
    try:
        email, password = await read_credentials(request)
    except BadRequest as exc:
        context["error"] = exc.reason
        return templates.TemplateResponse(request, "sign_in.html", context, status_code=400)
    context["email"] = email
    result = await auth_service(request).sign_in(email, password, client_of(request))
    if result.pending_token is not None:
        # A right password on an account with a second factor: the second step, no session yet.
        response = RedirectResponse(
            "/sign-in/second-factor" + _next_query(request), status_code=303
        )
        set_pending_cookie(response, request, result.pending_token)
        return response
    if result.ok and result.token:
        response = RedirectResponse(_next(request) or DEFAULT_LANDING, status_code=303)
        set_session_cookie(response, request, result.token, _settings(request).SESSION_MAX_AGE)
        return response
    if result.reason is FailReason.RATE_LIMITED:
        wait = max(1, result.decision.reset_after)
        context["error"] = f"Too many sign-in attempts. Try again in {wait} seconds."
        context["rate_limited"] = True
        return templates.TemplateResponse(
            request,
            "sign_in.html",
            context,
            status_code=429,
            headers=rate_limit_headers(result.decision),
        )
    context["error"] = "Wrong email or password."
    return templates.TemplateResponse(request, "sign_in.html", context, status_code=401)


def _sign_up_context(request: Request) -> dict[str, object]:
    """The sign-in form's context and the password policy, which the form states up front."""
    return {**_form_context(request), "policy": auth_service(request).password_policy}


async def sign_up_page(request: Request) -> Response:
    return templates.TemplateResponse(request, "sign_up.html", _sign_up_context(request))


async def sign_up(request: Request) -> Response:
    context = _sign_up_context(request)
    service = auth_service(request)
    try:
        email, password = await read_credentials(request)
        context["email"] = email
        _, token = await service.sign_up(email, password, client_of(request))
    except SignUpLimited as exc:
        context["error"] = "Too many sign-ups from this address. Try again later."
        return templates.TemplateResponse(
            request,
            "sign_up.html",
            context,
            status_code=429,
            headers=rate_limit_headers(exc.decision),
        )
    except (BadRequest, InvalidPassword, EmailTaken) as exc:
        context["error"] = exc.reason if isinstance(exc, BadRequest) else str(exc)
        status = 409 if isinstance(exc, EmailTaken) else 400
        return templates.TemplateResponse(request, "sign_up.html", context, status_code=status)
    response = RedirectResponse(_next(request) or DEFAULT_LANDING, status_code=303)
    set_session_cookie(response, request, token, _settings(request).SESSION_MAX_AGE)
    return response


async def sign_out(request: Request) -> Response:
    await auth_service(request).sign_out(read_session_cookie(request), client_of(request))
    response = RedirectResponse("/", status_code=303, headers=CLEAR_SITE_DATA)
    clear_session_cookie(response, request)
    return response


async def account(request: Request) -> Response:
    user = await current_user(request)
    if user is None:
        return require_sign_in(request)
    context = {
        "user": user,
        **await sessions_context(request),
        **await passkeys_context(request),
        **await totp_context(request, user),
    }
    return templates.TemplateResponse(request, "account.html", context)


async def admin_audit(request: Request) -> Response:
    user = await current_user(request)
    if user is None:
        return require_sign_in(request)
    if not user.is_admin:
        raise HTTPException(403, "administrators only")
    page_text = request.query_params.get("page", "1")
    page = int(page_text) if page_text.isdigit() and 0 < len(page_text) < 7 else 1
    action = request.query_params.get("action") or None
    if action is not None and len(action) > 64:
        raise HTTPException(400, "action filter is too long")
    if action is not None and not action.isprintable():
        # A NUL or another control character names no action, and PostgreSQL refuses NUL.
        raise HTTPException(400, "action filter must be printable text")
    async with auth_service(request).database.session() as db:
        total = await count(db, action=action)
        rows = await recent(
            db, limit=AUDIT_PAGE_SIZE, offset=(page - 1) * AUDIT_PAGE_SIZE, action=action
        )
    pages = max(1, -(-total // AUDIT_PAGE_SIZE))
    context = {"rows": rows, "page": page, "pages": pages, "total": total, "action": action}
    return templates.TemplateResponse(request, "admin_audit.html", context)


# -- the sessions block of /account (account_sessions.html) ------------------------------------


async def sessions_context(request: Request) -> dict[str, object]:
    """Each live session as the page shows it: browser and system, IP, last seen, this device."""
    found = await auth_service(request).list_sessions(read_session_cookie(request))
    if found is None:
        return {"sessions": []}
    current, rows = found
    sessions = [
        {
            "id": row.public_id,
            "device": classify_device(row.user_agent).label(),
            "ip": row.ip or "unknown",
            "last_seen": row.last_seen_at.strftime("%Y-%m-%d %H:%M UTC"),
            "signed_in": row.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            "current": row.id == current.id,
        }
        for row in rows
    ]
    return {"sessions": sessions}


async def end_session(request: Request) -> Response:
    """POST /account/sessions/{id}/end: end one session; ending this one signs out."""
    token = read_session_cookie(request)
    outcome = await auth_service(request).end_session(
        token, request.path_params["id"], client_of(request)
    )
    if outcome is EndSession.NOT_SIGNED_IN:
        return require_sign_in(request)
    if outcome is EndSession.NOT_FOUND:
        raise HTTPException(404, "no session of yours has this id")
    if outcome is EndSession.SIGNED_OUT:
        response = RedirectResponse("/", status_code=303, headers=CLEAR_SITE_DATA)
        clear_session_cookie(response, request)
        return response
    return RedirectResponse("/account", status_code=303)


async def end_other_sessions(request: Request) -> Response:
    """POST /account/sessions/end-others: every session but this one ends."""
    ended = await auth_service(request).end_other_sessions(
        read_session_cookie(request), client_of(request)
    )
    if ended is None:
        return require_sign_in(request)
    return RedirectResponse("/account", status_code=303)


routes = [
    form_page("/sign-in", sign_in_page, sign_in, name="sign_in"),
    form_page("/sign-up", sign_up_page, sign_up, name="sign_up"),
    Route("/sign-out", sign_out, methods=["POST"], name="sign_out"),
    Route("/account", account, name="account"),
    Route("/admin/audit", admin_audit, name="admin_audit"),
    Route(
        "/account/sessions/end-others",
        end_other_sessions,
        methods=["POST"],
        name="end_other_sessions",
    ),
    Route("/account/sessions/{id}/end", end_session, methods=["POST"], name="end_session"),
]


# -- passwords: change on /account, and reset by email (issue 20) ---------------------------

#: What the reset pages answer with besides no-store: the token is in the page's URL, and
#: the envelope's "same-origin" would still send that URL as the Referer of the page's own
#: stylesheet and script requests (and so into any log that records it).
RESET_PAGE_HEADERS = {"Referrer-Policy": "no-referrer", **NO_STORE}


async def change_password(request: Request) -> Response:
    """The /account form: POST only. Success comes back to /account with the new cookie;
    a refusal renders /account again, with the error, under the refusal's status."""
    service = auth_service(request)
    headers: dict[str, str] = {}
    try:
        current, new = await read_fields(request, "current_password", "new_password")
        token = await service.change_password(
            read_session_cookie(request), current, new, client_of(request)
        )
    except NotSignedIn:
        return RedirectResponse("/sign-in?" + urlencode({"next": "/account"}), status_code=303)
    except (BadRequest, InvalidPassword) as exc:
        error, status = (exc.reason if isinstance(exc, BadRequest) else str(exc)), 400
    except WrongPassword:
        error, status = "Your current password is wrong.", 401
    except PasswordChangeLimited as exc:
        wait = max(1, exc.decision.reset_after)
        error, status = f"Too many password attempts. Try again in {wait} seconds.", 429
        headers = rate_limit_headers(exc.decision)
    else:
        response = RedirectResponse("/account?password=changed", status_code=303)
        set_session_cookie(response, request, token, _settings(request).SESSION_MAX_AGE)
        return response
    request.state.password_error = error[:1].upper() + error[1:]
    page = await account(request)
    if page.status_code != 200:  # not signed in after all: keep the way to /sign-in as it is
        return page
    page.status_code = status
    page.headers.update(headers)
    return page


def _forgot_context(**values: object) -> dict[str, object]:
    return {"sent": False, "error": None, "email": "", **values}


async def forgot_password_page(request: Request) -> Response:
    return templates.TemplateResponse(request, "forgot_password.html", _forgot_context())


async def forgot_password(request: Request) -> Response:
    """The same page and status for any well-formed address, as the JSON endpoint's 202."""
    ttl_minutes = max(1, _settings(request).PASSWORD_RESET_TTL // 60)
    try:
        email = await read_email(request)
        await auth_service(request).request_password_reset(email, client_of(request))
    except BadRequest as exc:
        context = _forgot_context(error=exc.reason)
        return templates.TemplateResponse(request, "forgot_password.html", context, 400)
    except ResetLimited as exc:
        context = _forgot_context(error="Too many reset requests. Try again later.")
        headers = rate_limit_headers(exc.decision)
        return templates.TemplateResponse(
            request, "forgot_password.html", context, 429, headers=headers
        )
    context = _forgot_context(sent=True, email=email, ttl_minutes=ttl_minutes)
    return templates.TemplateResponse(request, "forgot_password.html", context)


def _reset_page(
    request: Request,
    token: str,
    *,
    problem: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    context = {"token": token, "problem": problem, "error": error}
    return templates.TemplateResponse(
        request, "reset_password.html", context, status, headers=RESET_PAGE_HEADERS
    )


async def reset_password_page(request: Request) -> Response:
    """The emailed link's page: says at once when the link no longer works."""
    token = request.query_params.get("token", "")
    reason = await auth_service(request).reset_token_problem(token)
    if reason is not None:
        return _reset_page(request, "", problem=_sentence(str(ResetRefused(reason))), status=400)
    return _reset_page(request, token)


async def reset_password(request: Request) -> Response:
    try:
        token, password = await read_fields(request, "token", "password")
    except BadRequest as exc:
        return _reset_page(request, "", problem=exc.reason, status=400)
    try:
        await auth_service(request).confirm_password_reset(token, password, client_of(request))
    except ResetRefused as exc:
        return _reset_page(request, "", problem=_sentence(str(exc)), status=400)
    except InvalidPassword as exc:
        return _reset_page(request, token, error=_sentence(str(exc)), status=400)
    response = RedirectResponse("/sign-in?reset=done", status_code=303)
    clear_session_cookie(response, request)  # every session of the account has ended
    return response


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


routes += [
    Route("/account/password", change_password, methods=["POST"], name="change_password"),
    form_page("/forgot-password", forgot_password_page, forgot_password, name="forgot_password"),
    form_page("/reset-password", reset_password_page, reset_password, name="reset_password"),
]


# -- the passkeys block of /account (account_passkeys.html; issue 24) ------------------------
# Adding one takes the browser's WebAuthn dialog, so static/passkeys.js does it over the JSON
# API; removing one is a plain form.


async def passkeys_context(request: Request) -> dict[str, object]:
    """The signed-in user's passkeys as the page shows them."""
    found = await auth_service(request).list_passkeys(read_session_cookie(request))
    stamp = "%Y-%m-%d %H:%M UTC"
    passkeys = [
        {
            "id": passkey.public_id,
            "name": passkey.name,
            "created": passkey.created_at.strftime(stamp),
            "last_used": passkey.last_used_at.strftime(stamp) if passkey.last_used_at else None,
        }
        for passkey in found or []
    ]
    return {"passkeys": passkeys}


async def remove_passkey(request: Request) -> Response:
    """POST /account/passkeys/{id}/remove."""
    try:
        removed = await auth_service(request).remove_passkey(
            read_session_cookie(request), request.path_params["id"], client_of(request)
        )
    except NotSignedIn:
        return require_sign_in(request)
    if not removed:
        raise HTTPException(404, "no passkey of yours has this id")
    return RedirectResponse("/account?passkey=removed", status_code=303)


routes += [
    Route("/account/passkeys/{id}/remove", remove_passkey, methods=["POST"], name="remove_passkey"),
]


# -- the second factor: the sign-in's second step, and TOTP on /account (issue 24) ----------


async def second_factor_page(request: Request) -> Response:
    """GET /sign-in/second-factor: the code form, for a browser holding a pending sign-in."""
    methods = await auth_service(request).pending_methods(read_pending_cookie(request))
    if methods is None:
        return RedirectResponse("/sign-in" + _next_query(request), 303)
    return _second_factor_form(request, methods=methods)


def _second_factor_form(
    request: Request, error: str | None = None, status: int = 200, **extra: object
) -> Response:
    context = {**_form_context(request), "error": error, **extra}
    return templates.TemplateResponse(
        request, "sign_in_second_factor.html", context, status_code=status, headers=NO_STORE
    )


async def second_factor(request: Request) -> Response:
    """POST /sign-in/second-factor: a code or a backup code; a session and on to ``next``."""
    try:
        code, backup_code = await read_second_factor(request)
    except BadRequest as exc:
        return _second_factor_form(request, exc.reason, 400)
    result = await auth_service(request).sign_in_second_factor(
        read_pending_cookie(request), client_of(request), code=code, backup_code=backup_code
    )
    if result.outcome is SecondFactorOutcome.SIGNED_IN and result.token is not None:
        response = RedirectResponse(_next(request) or DEFAULT_LANDING, status_code=303)
        clear_pending_cookie(response, request)
        set_session_cookie(response, request, result.token, _settings(request).SESSION_MAX_AGE)
        return response
    if result.outcome is SecondFactorOutcome.RATE_LIMITED and result.decision is not None:
        wait = max(1, result.decision.reset_after)
        page = _second_factor_form(
            request, f"Too many sign-in attempts. Try again in {wait} seconds.", 429
        )
        page.headers.update(rate_limit_headers(result.decision))
        return page
    if result.outcome is SecondFactorOutcome.WRONG:
        return _second_factor_form(request, "That code is wrong or was already used.", 401)
    ended = (
        "That was the fifth wrong code, so this sign-in has ended."
        if result.outcome is SecondFactorOutcome.ENDED
        else "This sign-in has expired or ended."
    )
    page = _second_factor_form(request, ended + " Sign in again.", 401, ended=True)
    clear_pending_cookie(page, request)
    return page


async def totp_context(request: Request, user: User) -> dict[str, object]:
    """The TOTP block of /account: its state, and what a form just produced (shown once)."""
    enrolment: Enrolment | None = getattr(request.state, "totp_enrolment", None)
    return {
        "totp": await auth_service(request).totp_state(user),
        "totp_enrolment": enrolment,
        "totp_backup_codes": getattr(request.state, "totp_backup_codes", None),
        "totp_error": getattr(request.state, "totp_error", None),
    }


async def _totp_form(
    request: Request, field: str, act: Callable[[str, str | None], Awaitable[object]]
) -> Response:
    """Run one /account TOTP form: ``act(value, session token)``, then /account again.

    The secret and the backup codes are shown in the answer to the form
    itself, never stored for a later page; a refusal shows /account with the
    error under the refusal's status.
    """
    headers: dict[str, str] = {}
    try:
        (value,) = await read_fields(request, field)
        if len(value) > 1024:
            raise BadRequest(f"{field} is too long")
        await act(value, read_session_cookie(request))
    except NotSignedIn:
        return RedirectResponse("/sign-in?" + urlencode({"next": "/account"}), status_code=303)
    except BadRequest as exc:
        error, status = exc.reason, 400
    except WrongPassword:
        error, status = "Your password is wrong.", 401
    except WrongCode as exc:
        error, status = str(exc), 400
    except TotpConflict as exc:
        error, status = str(exc), 409
    except PasswordChangeLimited as exc:
        wait = max(1, exc.decision.reset_after)
        error, status = f"Too many password attempts. Try again in {wait} seconds.", 429
        headers = rate_limit_headers(exc.decision)
    else:
        if getattr(request.state, "totp_done", None):
            return RedirectResponse(f"/account?totp={request.state.totp_done}#totp", 303)
        page = await account(request)
        page.headers.update(NO_STORE)
        return page
    request.state.totp_error = error[:1].upper() + error[1:]
    page = await account(request)
    if page.status_code != 200:  # not signed in after all: the way to sign in, as it is
        return page
    page.status_code = status
    page.headers.update({**headers, **NO_STORE})
    return page


async def totp_enroll(request: Request) -> Response:
    async def act(password: str, token: str | None) -> None:
        service = auth_service(request)
        request.state.totp_enrolment = await service.totp_enroll(
            token, password, client_of(request)
        )

    return await _totp_form(request, "password", act)


async def totp_confirm(request: Request) -> Response:
    async def act(code: str, token: str | None) -> None:
        service = auth_service(request)
        request.state.totp_backup_codes = await service.totp_confirm(
            token, code, client_of(request)
        )

    return await _totp_form(request, "code", act)


async def totp_backup_codes(request: Request) -> Response:
    async def act(password: str, token: str | None) -> None:
        service = auth_service(request)
        request.state.totp_backup_codes = await service.replace_backup_codes(
            token, password, client_of(request)
        )

    return await _totp_form(request, "password", act)


async def totp_disable(request: Request) -> Response:
    async def act(password: str, token: str | None) -> None:
        await auth_service(request).totp_disable(token, password, client_of(request))
        request.state.totp_done = "off"

    return await _totp_form(request, "password", act)


routes += [
    form_page(
        "/sign-in/second-factor", second_factor_page, second_factor, name="sign_in_second_factor"
    ),
    Route("/account/totp/enroll", totp_enroll, methods=["POST"], name="totp_enroll"),
    Route("/account/totp/confirm", totp_confirm, methods=["POST"], name="totp_confirm"),
    Route(
        "/account/totp/backup-codes", totp_backup_codes, methods=["POST"], name="totp_backup_codes"
    ),
    Route("/account/totp/disable", totp_disable, methods=["POST"], name="totp_disable"),
]
