"""Summaries of a demo run and the side-by-side table ``asgi-cache demo`` prints."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .workload import Outcome, percentile


@dataclass(frozen=True, slots=True)
class RunReport:
    """What one run of the workload measured."""

    label: str
    requests: int
    """Requests sent and answered (or failed) within the limits."""
    planned: int
    errors: int
    """Requests that failed without a response or got a 5xx."""
    hit_rate: float | None
    """Cache hits over cache lookups during the run; ``None`` without a cache."""
    p50: float
    p95: float
    p99: float
    db_queries: int
    seconds: float
    views: int = 0
    """View-count requests sent after the workload (``POST /users/{id}/views``)."""
    db_writes: int = 0
    """Database write transactions those requests cost (after write-behind caught up)."""

    @property
    def throughput(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds > 0 else math.nan


def hit_rate(before: Mapping[str, Any], after: Mapping[str, Any]) -> float | None:
    """Hits (fresh or stale) over lookups between two ``cache.stats()`` snapshots."""
    hits = sum(after.get(k, 0) - before.get(k, 0) for k in ("hits", "stale"))
    lookups = hits + after.get("misses", 0) - before.get("misses", 0)
    return hits / lookups if lookups > 0 else None


def summarize(
    label: str,
    outcomes: Sequence[Outcome],
    *,
    planned: int,
    db_queries: int,
    seconds: float,
    hit_rate: float | None,
    views: int = 0,
    db_writes: int = 0,
) -> RunReport:
    """Reduce one run's outcomes to a `RunReport`."""
    latencies = [o.seconds for o in outcomes]
    return RunReport(
        label=label,
        requests=len(outcomes),
        planned=planned,
        errors=sum(1 for o in outcomes if o.status == 0 or o.status >= 500),
        hit_rate=hit_rate,
        p50=percentile(latencies, 50),
        p95=percentile(latencies, 95),
        p99=percentile(latencies, 99),
        db_queries=db_queries,
        seconds=seconds,
        views=views,
        db_writes=db_writes,
    )


def render_table(without: RunReport, with_cache: RunReport) -> str:
    """The comparison table: one row per measure, one column per run."""

    def ms(value: float) -> str:
        return "-" if math.isnan(value) else f"{value * 1000:.1f} ms"

    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    rows = [
        ("", without.label, with_cache.label),
        ("requests", str(without.requests), str(with_cache.requests)),
        ("errors (5xx, failed)", str(without.errors), str(with_cache.errors)),
        ("cache hit rate", rate(without.hit_rate), rate(with_cache.hit_rate)),
        ("latency p50", ms(without.p50), ms(with_cache.p50)),
        ("latency p95", ms(without.p95), ms(with_cache.p95)),
        ("latency p99", ms(without.p99), ms(with_cache.p99)),
        ("database queries", str(without.db_queries), str(with_cache.db_queries)),
        (
            "throughput",
            f"{without.throughput:.0f} req/s",
            f"{with_cache.throughput:.0f} req/s",
        ),
    ]
    if without.views or with_cache.views:
        rows.append(("view counts (POST)", str(without.views), str(with_cache.views)))
        rows.append(("  database writes", str(without.db_writes), str(with_cache.db_writes)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for n, (name, a, b) in enumerate(rows):
        lines.append(f"  {name:<{widths[0]}}   {a:>{widths[1]}}   {b:>{widths[2]}}")
        if n == 0:
            lines.append("  " + "-" * (sum(widths) + 6))
    if with_cache.views and without.db_writes:
        saved = without.db_writes - with_cache.db_writes
        lines.append(
            f"  write-behind saved {saved} of {without.db_writes} database writes "
            f"({saved / without.db_writes:.0%}) for {with_cache.views} view counts"
        )
    return "\n".join(lines)
