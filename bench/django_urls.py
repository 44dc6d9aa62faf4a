"""The Django contender's routes: async views, so that Django serves them without a thread hop.

``GET /csrf`` is how the harness gets a token, once, as a browser would from a
form page: ``get_token`` sets the ``csrftoken`` cookie and returns the masked
token that goes in ``X-CSRFToken``.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import get_token
from django.urls import path


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
