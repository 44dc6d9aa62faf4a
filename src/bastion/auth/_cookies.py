"""The session and pending cookies: HttpOnly and SameSite=Lax; Secure and ``__Host-`` over https.

The pending cookie holds a sign-in that passed its password and awaits its
second factor (:mod:`bastion.auth._pending`). It has a name of its own, so
nothing that reads the session cookie can ever take it for a session.

"Over https" means the scheme the envelope resolved through trusted proxies,
so a TLS-terminating proxy still gets Secure cookies.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.responses import Response

from bastion.auth._pending import PENDING_COOKIE, PENDING_TTL, SECURE_PENDING_COOKIE
from bastion.auth._sessions import COOKIE_NAME, SECURE_COOKIE_NAME


def _is_https(request: HTTPConnection) -> bool:
    return request.url.scheme in ("https", "wss")


def cookie_name(request: HTTPConnection) -> str:
    return SECURE_COOKIE_NAME if _is_https(request) else COOKIE_NAME


def read_session_cookie(request: HTTPConnection) -> str | None:
    return request.cookies.get(cookie_name(request))


def set_session_cookie(
    response: Response, request: HTTPConnection, token: str, max_age: int
) -> None:
    _set(response, request, cookie_name(request), token, max_age)


def clear_session_cookie(response: Response, request: HTTPConnection) -> None:
    _clear(response, request, cookie_name(request))


def pending_cookie_name(request: HTTPConnection) -> str:
    return SECURE_PENDING_COOKIE if _is_https(request) else PENDING_COOKIE


def read_pending_cookie(request: HTTPConnection) -> str | None:
    return request.cookies.get(pending_cookie_name(request))


def set_pending_cookie(response: Response, request: HTTPConnection, token: str) -> None:
    """The pending sign-in's cookie, for as long as the pending sign-in lives (five minutes)."""
    _set(response, request, pending_cookie_name(request), token, int(PENDING_TTL.total_seconds()))


def clear_pending_cookie(response: Response, request: HTTPConnection) -> None:
    _clear(response, request, pending_cookie_name(request))


def _set(response: Response, request: HTTPConnection, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=_is_https(request),
        httponly=True,
        samesite="lax",
    )


def _clear(response: Response, request: HTTPConnection, name: str) -> None:
    response.delete_cookie(name, path="/", secure=_is_https(request), httponly=True, samesite="lax")


#: Sent with every sign-out: the browser drops what the signed-in pages left
#: behind (cached pages, cookies, local storage) for this origin. Browsers
#: honour it only over https (a secure context).
CLEAR_SITE_DATA = {"Clear-Site-Data": '"cache", "cookies", "storage"'}
