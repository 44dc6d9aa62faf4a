"""bastion.ops: /api/health, Prometheus metrics and structured request logs."""

from __future__ import annotations

from bastion.ops.health import health_routes
from bastion.ops.logs import JsonFormatter, configure_logging
from bastion.ops.looplag import LoopLagMonitor
from bastion.ops.metrics import Metrics, multiprocess_enabled
from bastion.ops.metrics_route import metrics_routes
from bastion.ops.observe import REJECTED, UNMATCHED, RequestObserver

__all__ = [
    "REJECTED",
    "UNMATCHED",
    "JsonFormatter",
    "LoopLagMonitor",
    "Metrics",
    "RequestObserver",
    "configure_logging",
    "health_routes",
    "metrics_routes",
    "multiprocess_enabled",
]
