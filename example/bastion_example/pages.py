"""Pages that explain the envelope: what it does and which features are on."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from bastion.cache import get_cache
from bastion.config import Settings
from bastion_example.templating import templates


async def index(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    database = "PostgreSQL" if settings.DATABASE_URL.startswith("postg") else "SQLite"
    features = [
        ("Cache (Valkey)", get_cache().enabled, "VALKEY_URL"),
        ("Shared sign-in rate limit (Valkey)", get_cache().enabled, "VALKEY_URL"),
        ("Prometheus metrics at /api/metrics", settings.METRICS_ENABLED, "METRICS_ENABLED"),
        (f"Database: {database}", True, "DATABASE_URL"),
        ("Production mode (sandbox admin-only)", settings.is_production, "APP_ENV"),
    ]
    return templates.TemplateResponse(
        request,
        "index.html",
        {"settings": settings, "features": features, "sandbox_open": not settings.is_production},
    )
