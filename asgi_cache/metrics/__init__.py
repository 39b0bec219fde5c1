"""Observability: the events of a cache tallied (`tally`) and exported as Prometheus
metrics (`prometheus`, ``cache.metrics_route()``).

Every exported name comes from one table, `METRICS` (a Grafana dashboard or an alert
rule can be checked against it); see ``docs/observability.md``.
"""

from .catalogue import METRICS, Metric
from .prometheus import MetricsApp

__all__ = ["METRICS", "Metric", "MetricsApp"]
