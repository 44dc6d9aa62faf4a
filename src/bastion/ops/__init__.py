"""bastion.ops: /api/health, Prometheus metrics and structured request logs."""

from __future__ import annotations

from bastion.ops._health import health_routes
from bastion.ops._logs import configure_logging
from bastion.ops._looplag import LoopLagMonitor
from bastion.ops._metrics import Metrics
from bastion.ops._metrics_route import metrics_routes

__all__ = [
    "LoopLagMonitor",
    "Metrics",
    "configure_logging",
    "health_routes",
    "metrics_routes",
]
