"""Observability: the events of a cache tallied (:mod:`.tally`) and exported as Prometheus
metrics (:mod:`.prometheus`, ``cache.metrics_route()``).

Every exported name comes from one table, :data:`METRICS` (a Grafana dashboard or an alert
rule can be checked against it); see ``docs/observability.md``.
"""

from .catalogue import METRICS, Metric
from .prometheus import MetricsApp

__all__ = ["METRICS", "Metric", "MetricsApp"]
