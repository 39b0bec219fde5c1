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


def _seed(path: Path, rows: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    keys = [("get_p50_ms", "p50"), ("get_p95_ms", "p95"), ("get_p99_ms", "p99")]
    fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
    width = 0.8 / len(keys)
    for i, (key, label) in enumerate(keys):
        xs = [j + i * width for j in range(len(names))]
        ax.bar(xs, [max(rows[n][key], 0.01) for n in names], width, label=label)
    ax.set_xticks([j + width for j in range(len(names))], names)
    ax.set_yscale("log")
    ax.set_ylabel("GET latency, ms (log)")
    ax.set_title("Seed workload: GET latency percentiles")
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
        _seed(directory / "seed.png", rows("seed"))
        written["seed"] = "seed.png"
    return written
