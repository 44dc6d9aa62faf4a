"""Django as the brief's comparison configures it: ASGI, no database, its security middleware.

Django's ``startproject`` middleware minus sessions, auth and messages (they need
apps and a database the plain routes do not use); ``CommonMiddleware`` stays
because it is what makes Django check the Host on *every* request, as bastion
does. RESULTS.md (*What each contender does*) says what each one adds.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import get_token
from django.urls import path

_URL = os.environ.get("BENCH_APP_URL", "http://127.0.0.1:8000")

SECRET_KEY = "bench-secret-key-not-for-production-0123456789abcdef"
DEBUG = False
ALLOWED_HOSTS = [urlsplit(_URL).hostname or "127.0.0.1"]
CSRF_TRUSTED_ORIGINS = [_URL]
ROOT_URLCONF = __name__  # the routes are at the end of this module
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
USE_I18N = False
USE_TZ = True
# Django logs every refused request at WARNING or ERROR; the harness provokes
# those on purpose in its checks, and nothing else in the run logs per request.
LOGGING_CONFIG = None


# --- routes: async views, so that Django serves them without a thread hop --------------
async def json_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


async def submit_view(request: HttpRequest) -> JsonResponse:
    # Django's ASGI handler has already read the whole body; touching it keeps
    # the view equal to the others, which all drain the body.
    request.body  # noqa: B018
    return JsonResponse({"ok": True})


async def csrf_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"token": get_token(request)})


urlpatterns = [
    path("json", json_view),
    path("submit", submit_view),
    path("csrf", csrf_view),
]
