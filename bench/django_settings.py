"""Django as the brief's comparison configures it: ASGI, no database, its security middleware.

The middleware is Django's default ``startproject`` stack minus sessions, auth
and messages (which need apps and a database bastion's plain routes do not use):

- ``SecurityMiddleware``: ``X-Content-Type-Options``, ``Referrer-Policy`` and
  ``Cross-Origin-Opener-Policy`` on every response (its defaults).
- ``CommonMiddleware``: kept because it is what makes Django check the Host
  against ``ALLOWED_HOSTS`` on *every* request (it calls ``get_host()``);
  without it a GET would never be checked, which bastion always does.
- ``CsrfViewMiddleware``: Origin check plus the csrftoken cookie and token.
- ``XFrameOptionsMiddleware``: ``X-Frame-Options: DENY``, as bastion sends.

Settings lean Django's way where they cost it nothing in protection: no i18n,
no database, no installed apps.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

_URL = os.environ.get("BENCH_APP_URL", "http://127.0.0.1:8000")

SECRET_KEY = "bench-secret-key-not-for-production-0123456789abcdef"
DEBUG = False
ALLOWED_HOSTS = [urlsplit(_URL).hostname or "127.0.0.1"]
CSRF_TRUSTED_ORIGINS = [_URL]
ROOT_URLCONF = "bench.django_urls"
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
