"""GET /api/metrics: the Prometheus text format, or 404 when METRICS_ENABLED is off.

Meant to be scraped from inside the network; the front door refuses it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.ops._metrics import Metrics
from bastion.responses import NO_STORE


def metrics_routes(metrics: Metrics | None) -> list[Route]:
    async def scrape(request: Request) -> Response:
        if metrics is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        from prometheus_client import CONTENT_TYPE_LATEST  # noqa: PLC0415 - with Metrics

        return Response(
            metrics.render(),
            media_type=CONTENT_TYPE_LATEST,
            headers=NO_STORE,
        )

    return [Route("/api/metrics", scrape, methods=["GET"])]
