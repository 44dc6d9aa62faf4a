"""The session cookie: HttpOnly and SameSite=Lax always; Secure and ``__Host-`` over https.

"Over https" means the scheme the envelope resolved through trusted proxies,
so a TLS-terminating proxy still gets Secure cookies.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.responses import Response

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
    response.set_cookie(
        cookie_name(request),
        token,
        max_age=max_age,
        path="/",
        secure=_is_https(request),
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, request: HTTPConnection) -> None:
    response.delete_cookie(
        cookie_name(request), path="/", secure=_is_https(request), httponly=True, samesite="lax"
    )


#: Sent with every sign-out: the browser drops what the signed-in pages left
#: behind (cached pages, cookies, local storage) for this origin. Browsers
#: honour it only over https (a secure context).
CLEAR_SITE_DATA = {"Clear-Site-Data": '"cache", "cookies", "storage"'}
