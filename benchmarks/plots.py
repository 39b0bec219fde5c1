"""PNG plots of a run (matplotlib, Agg backend), written next to docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _bars(path: Path, title: str, ylabel: str, data: dict[str, float],
          *, reference: str | None = None, log: bool = False) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(data)
    values = [data[n] for n in names]
    colors = ["#2b7bba" if n.startswith("asgi-cache") else "#9aa5b1" for n in names]
    fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
    bars = ax.bar(range(len(names)), values, color=colors)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    if reference is not None and reference in data:
        ax.axhline(data[reference], color="#c0392b", linestyle="--", linewidth=1,
                   label=reference)  # fmt: skip
        ax.legend()
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(f"{value:,.0f}" if value >= 100 else f"{value:,.2g}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _grouped(path: Path, title: str, ylabel: str, rows: dict[str, Any],
             keys: list[tuple[str, str]], *, log: bool = False) -> None:  # fmt: skip
    """One group of bars per row, one bar per ``(field, label)`` of ``keys``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
    width = 0.8 / len(keys)
    for i, (key, label) in enumerate(keys):
        xs = [j + i * width for j in range(len(names))]
        values = [rows[n][key] for n in names]
        bars = ax.bar(xs, [max(v, 0.01) for v in values], width, label=label)
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(f"{value:,.0f}" if value >= 100 else f"{value:,.2g}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8)  # fmt: skip
    ax.set_xticks([j + width * (len(keys) - 1) / 2 for j in range(len(names))], names)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_plots(results: dict[str, Any], directory: Path) -> dict[str, str]:
    """Write one PNG per phase that has rows; returns phase key -> file name."""
    directory.mkdir(parents=True, exist_ok=True)
    phases = results.get("phases", {})
    written: dict[str, str] = {}

    def rows(key: str) -> dict[str, Any]:
        out: dict[str, Any] = phases.get(key, {}).get("rows", {})
        return out

    if rows("hit_cost"):
        _bars(directory / "hit_cost.png", "In-process cost of a cached GET (median)",
              "microseconds", {n: r["median_us"] for n, r in rows("hit_cost").items()},
              reference="bare")  # fmt: skip
        written["hit_cost"] = "hit_cost.png"
    if rows("e2e"):
        _bars(directory / "e2e.png", "End to end: cached GET, uvicorn 1 worker, 32 connections",
              "requests per second", {n: r["rps"] for n, r in rows("e2e").items()},
              reference="bare")  # fmt: skip
        written["e2e"] = "e2e.png"
    if rows("stampede"):
        _bars(directory / "stampede.png", "Cold-key stampede: origin calls per burst (max)",
              "origin calls (log)",
              {n: max(r["origin_calls_max"], 0.5) for n, r in rows("stampede").items()},
              log=True)  # fmt: skip
        written["stampede"] = "stampede.png"
    if rows("memory"):
        _bars(directory / "memory.png", "Redis bytes for one 1007-byte entry", "bytes",
              {n: r["bytes"] for n, r in rows("memory").items()})  # fmt: skip
        written["memory"] = "memory.png"
    if rows("seed"):
        _grouped(directory / "seed.png", "Seed workload: GET latency percentiles",
                 "GET latency, ms (log)", rows("seed"),
                 [("get_p50_ms", "p50"), ("get_p95_ms", "p95"), ("get_p99_ms", "p99")],
                 log=True)  # fmt: skip
        written["seed"] = "seed.png"
    if rows("staleness"):
        _grouped(directory / "staleness.png",
                 "L1 staleness across processes: a write, the last stale read elsewhere",
                 "milliseconds after the write (log)", rows("staleness"),
                 [("p50_ms", "p50"), ("p99_ms", "p99"), ("max_ms", "max")], log=True)  # fmt: skip
        written["staleness"] = "staleness.png"
    if rows("write_behind"):
        _grouped(directory / "write_behind.png",
                 "Write-behind: view-count writes per second", "writes per second",
                 rows("write_behind"),
                 [("direct_writes_per_s", "a database write per request"),
                  ("wb_writes_per_s", "wb.write")])  # fmt: skip
        written["write_behind"] = "write_behind.png"
    return written
