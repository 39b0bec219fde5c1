"""Writes docs/benchmarks.md from a run's results (tables, plots, machine, command)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .apps import SYSTEMS
from .report import SECTIONS, table, targets_table

INTRO = {
    "hit_cost": (
        "One cached `GET /item/1` through each app's full ASGI stack, driven by a minimal ASGI "
        "caller in process (no HTTP, no server; {loop}); median of {iterations:,} timed calls "
        "after {warmup:,} warm-up calls, each system in its own process. `bare` is FastAPI "
        "with no cache and no database wait: the cost of the framework alone. "
        '"origin calls (timed)" must be 0 for a caching system: every timed call was a hit.'
    ),
    "e2e": (
        "{server} serving each system; {tool} with {connections} connections for "
        "{seconds:g} s on `GET /item/1` after a short warm-up, so every measured request of a "
        "caching system is a hit; {rounds} round(s), interleaved across systems, the best "
        "reported (the last column lists every round). `nocache` waits 10 ms for its "
        "database on every request; "
        '`bare` does not. The issue\'s reference ("bare FastAPI ~2,600 req/s" on 2 cores, '
        "with wrk -c32) is close to `nocache` here, not to `bare`; the targets below are "
        "judged against `bare` as defined here (no database wait), the stricter reading, "
        "and the ratio to `nocache` is shown beside it."
    ),
    "stampede": (
        "{bursts} bursts of {size} simultaneous requests on a key nobody has cached, against "
        "uvicorn with {workers} worker processes (connections are opened first, then all "
        "requests are sent at once). Each app counts its handler calls in Redis (`HINCRBY` "
        "per worker), so origin calls are counted across both workers; the database wait is "
        "10 ms."
    ),
    "memory": (
        "The app stores one 1007-byte JSON body; every key it leaves in the (otherwise empty) "
        "database is measured with `MEMORY USAGE key SAMPLES 0`. Then it stores a second "
        "body: the growth is the per-entry cost (keys shared by all entries are paid once), "
        "compared with the body's {body_bytes} bytes. The body's free text is made-up words, "
        "so it gzips to {gzip_pct:.0f} % of its size, about as well as prose (a cache that "
        "compresses what it stores gains what it would gain on real data, no more)."
    ),
    "redis_down": (
        "Each cache points at a port where nothing listens ({dead_url}); {requests} requests "
        "one after another on one keep-alive connection over 20 keys (each a miss that must "
        "reach the 10 ms origin). Added latency is the mean minus `nocache`'s mean in this run."
    ),
    "seed": (
        "The seed's workload: GET `/users/{{id}}` with Zipf-distributed ids (s = {zipf_s}) "
        "over {users:,} users, {write_pct:.0f} % PUTs (which invalidate the user), a "
        "{db_ms} ms database, sent open-loop at {rate:g} requests/s (latency counts from the "
        "scheduled send time). The first {warmup_requests:,} requests warm the cache and are "
        "not counted; {requests:,} are. A perfect cache (unbounded, instant) would hit "
        "{ideal_hit_rate:.1%} of the counted GETs of this sequence: the ceiling, set by the "
        "Zipf tail and the writes."
    ),
    "redis_layers": (
        "One `GET` of a 1.6 KB value, sequential calls ({calls:,}, median, {loop}), on this "
        "run's Redis (`python -m benchmarks.hitpath`): the floor is a bare asyncio stream "
        "parsing the reply with hiredis; then redis-py with its default pool, with a bounded "
        "pool and a socket timeout, and running a one-line Lua `GET` (`EVALSHA`); the last "
        "row is asgi-cache's own `RedisBackend.get`, whatever path it takes."
    ),
    "staleness": (
        "Two processes on this run's Redis, each with its own cache and the L1 near-cache on "
        "(`l1_ttl=2`; `python -m benchmarks.staleness`): one reads a key in a loop (yielding "
        "once between reads, as a server does between requests), the other writes it "
        "{writes:,} times with `cache.set`, 2-6 ms apart. A write's staleness is the last "
        "time the reader still saw an older value minus the time the write returned (0 when "
        "it never did). The second row kills every subscriber connection (`CLIENT KILL TYPE "
        "pubsub`) before every {kill_every}th write, so that write's message is likely lost. "
        "The tracking rows are the same with `l1_invalidation=tracking` in both processes "
        "(Redis `CLIENT TRACKING`; its listener is a subscriber connection too, killed the "
        "same way)."
    ),
    "write_behind": (
        "{writes:,} page-view counts (Zipf over {users:,} users) from {concurrency} concurrent "
        "writers in one process: *direct* is one upsert transaction per count; *wb.write* "
        "caches the count and appends it to this run's Redis Stream (one script) while a "
        "worker in the same process saves batches of up to 500 with one upsert each "
        "(`benchmarks/phases/write_behind.py`). Round trips are database transactions; "
        "catch-up is the time from the last write until nothing was left to save; the lag is "
        "sampled every 100 ms while `wb.write` runs at {rate:g} writes/s for "
        "{sustained_seconds:g} s."
    ),
}


def _intro(key: str, phase: dict[str, Any], meta: dict[str, Any]) -> str:
    values = {"loop": meta["machine"]["event_loop"], **phase}
    if key == "seed":
        values["write_pct"] = phase["write_ratio"] * 100
    if key == "memory":
        values["gzip_pct"] = phase.get("gzip_ratio", float("nan")) * 100
    return INTRO[key].format(**values)


def render(results: dict[str, Any], plots: dict[str, str], image_dir: str) -> str:
    """The whole docs/benchmarks.md text."""
    meta = results["meta"]
    m = meta["machine"]
    parts = [
        "# Benchmarks",
        "<!-- Generated by `python -m benchmarks`; edits are overwritten by the next run. -->",
        f"Latest run: **{meta['started']}**, mode **{meta['mode']}**, took "
        f"{meta['duration_s']:.0f} s, produced by:\n\n```\n{meta['command']}\n```\n\n"
        "Every ratio below compares figures measured in this same run on this machine. "
        "How to run, the systems and the phases: `benchmarks/README.md` in the repository. "
        "The full mode takes about 13 minutes on this machine; `--quick` about 2. Raw figures: "
        f"`benchmarks/results/{meta['results_file']}`.",
        "## Machine\n\n"
        + table(
            ["", ""],
            [
                ["cores", m["cores"]],
                ["CPU", m["cpu"]],
                ["memory", f"{m['memory_gib']} GiB"],
                ["OS", m["os"]],
                ["Python", m["python"]],
                ["Redis", f"{m['redis']} (own server, loopback, allkeys-lru, no persistence)"],
                ["load generator", m["load_generator"]],
                ["event loop", m["event_loop"]],
                ["load average (start / end)", meta.get("loadavg", "-")],
                ["packages", ", ".join(f"{k} {v}" for k, v in m["packages"].items())],
            ],
            left=True,
        ),
        "## Targets (asgi-cache)\n\n" + targets_table(results),
    ]
    for key, title, render_table in SECTIONS:
        phase = results["phases"].get(key)
        if phase is None:
            continue
        section = f"## {title}\n\n{_intro(key, phase, meta)}\n\n{render_table(phase)}"
        if key in plots:
            section += f"\n\n![{title}]({image_dir}/{plots[key]})"
        parts.append(section)
    notes = Path(__file__).with_name("notes.md")
    if notes.exists():
        parts.append(notes.read_text().strip())
    systems = "\n".join(f"- `{s.name}`: {s.note}" for s in SYSTEMS)
    parts.append(f"## Systems\n\n{systems}")
    skipped = results.get("skipped") or {}
    if skipped:
        parts.append(
            "## Skipped in this run\n\n"
            + "\n".join(f"- `{name}`: {why}" for name, why in skipped.items())
        )
    return "\n\n".join(parts) + "\n"


def write(results: dict[str, Any], plots: dict[str, str], docs_dir: Path) -> Path:
    """Write docs/benchmarks.md; returns its path."""
    path = docs_dir / "benchmarks.md"
    path.write_text(render(results, plots, "benchmarks"))
    return path
