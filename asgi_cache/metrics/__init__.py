"""Observability: the events of a cache tallied (`tally`) and exported as Prometheus
metrics (`prometheus`, ``cache.metrics_route()``) and a live dashboard page
(`dashboard`, ``cache.dashboard_route()``).

Every exported name comes from one table, `METRICS` (a Grafana dashboard or an alert
rule can be checked against it); see ``docs/observability.md``.
"""

from .catalogue import METRICS, Metric
from .dashboard import DashboardApp
from .prometheus import MetricsApp

__all__ = ["METRICS", "DashboardApp", "Metric", "MetricsApp"]
