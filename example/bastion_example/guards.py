"""Who may see what: the sandbox is open in development and admin-only in production."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

from bastion.config import Settings
from bastion_example.accounts import current_user


async def guard_sandbox(request: Request) -> None:
    """Everyone else gets 404, not 403: production should not advertise a sandbox."""
    settings: Settings = request.app.state.settings
    if not settings.is_production:
        return
    user = await current_user(request)
    if user is None or not user.is_admin:
        raise HTTPException(404, "not found")
