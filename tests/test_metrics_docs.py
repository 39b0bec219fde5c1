"""docs/observability.md lists every exported metric, and the example Grafana dashboard
(docs/grafana/asgi-cache.json) queries only names the exporter exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from asgi_cache.metrics import METRICS

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "docs" / "grafana" / "asgi-cache.json"


def exported_samples() -> set[str]:
    """Every sample name of the exposition (a histogram's buckets, count and sum)."""
    names = set()
    for metric in METRICS:
        if metric.type == "histogram":
            names |= {f"{metric.name}_{s}" for s in ("bucket", "count", "sum")}
        else:
            names.add(metric.name)
    return names


def test_the_page_lists_every_metric_with_its_type_and_labels() -> None:
    page = (ROOT / "docs" / "observability.md").read_text()
    for metric in METRICS:
        labels = ", ".join(f"`{label}`" for label in metric.labels) or "-"
        assert f"| `{metric.name}` | {metric.type} | {labels} |" in page, metric.name


def test_the_grafana_dashboard_queries_exported_names_only() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 20
    used = {name for expr in exprs for name in re.findall(r"\basgi_cache_\w+", expr)}
    assert used <= exported_samples(), used - exported_samples()
    # Every metric family is on the dashboard (some through its buckets or count).
    families = {re.sub(r"_(bucket|count|sum)$", "", n) for n in used}
    assert {m.name for m in METRICS} - families <= {
        "asgi_cache_coalesced_total",
        "asgi_cache_stores_total",
        "asgi_cache_corrupt_total",
        "asgi_cache_invalidation_overflows_total",
        "asgi_cache_breaker_short_circuited_total",
        "asgi_cache_write_behind_written_total",
        "asgi_cache_write_behind_applied_total",
        "asgi_cache_write_behind_dead_lettered_total",
    }
    label_names = {label for m in METRICS for label in m.labels} | {"le"}
    for expr in exprs:
        for label in re.findall(r"by \(([^)]*)\)", expr):
            assert {x.strip() for x in label.split(",")} <= label_names, expr
