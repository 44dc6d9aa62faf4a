"""bastion.ops: /api/health, Prometheus metrics and structured request logs."""

from __future__ import annotations

from bastion.ops._health import health_routes
from bastion.ops._logs import JsonFormatter, configure_logging
from bastion.ops._looplag import LoopLagMonitor
from bastion.ops._metrics import Metrics, multiprocess_enabled
from bastion.ops._metrics_route import metrics_routes
from bastion.ops._observe import REJECTED, UNMATCHED, RequestObserver

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
