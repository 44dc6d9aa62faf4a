"""The one Jinja2 environment of the example app (autoescaping on)."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.templating import Jinja2Templates

from bastion.auth import read_session_cookie


def _navigation(request: Request) -> dict[str, object]:
    """Whether the navigation offers "Account" or "Sign in" and "Sign up".

    From the session cookie's presence alone, so that rendering a page costs
    no database query: a cookie that outlived its session shows "Account"
    once, and the account page then clears it on its way to the sign-in page.
    """
    return {"signed_in": read_session_cookie(request) is not None}


templates = Jinja2Templates(
    directory=Path(__file__).parent / "templates", context_processors=[_navigation]
)
