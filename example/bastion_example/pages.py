"""Pages that explain the envelope: what it does and which features are on."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from bastion.cache import get_cache
from bastion.config import Settings
from bastion_example.templating import templates


async def index(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    features = [
        ("Cache (Valkey)", get_cache().enabled, "VALKEY_URL"),
        ("Metrics", settings.METRICS_ENABLED, "METRICS_ENABLED"),
    ]
    return templates.TemplateResponse(
        request,
        "index.html",
        {"settings": settings, "features": features, "sandbox_open": not settings.is_production},
    )
