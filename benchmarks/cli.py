"""``python -m benchmarks``: set up the benchmark environment, run the phases, write reports."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import env

PHASES = (
    "hit_cost",
    "e2e",
    "stampede",
    "memory",
    "redis_down",
    "seed",
    "redis_layers",
    "staleness",
    "write_behind",
)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark asgi-cache against fastapi-cache2, cashews, aiocache and "
        "Litestar's response cache (see benchmarks/README.md).",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run, about 2 minutes")
    parser.add_argument("--setup", action="store_true",
                        help="only create/update .venv-bench, then exit")  # fmt: skip
    parser.add_argument("--systems", help="comma-separated systems (default: all)")
    parser.add_argument("--phases", help=f"comma-separated phases of {','.join(PHASES)}")
    parser.add_argument("--no-wrk", action="store_true",
                        help="use the Python load generator even if wrk is installed")  # fmt: skip
    parser.add_argument("--no-docs", action="store_true",
                        help="do not rewrite docs/benchmarks.md and its plots")  # fmt: skip
    parser.add_argument("--render", metavar="RESULTS_JSON",
                        help="only re-render the tables, docs and plots of a run")  # fmt: skip
    parser.add_argument("--here", action="store_true",
                        help="run in the current interpreter instead of .venv-bench")  # fmt: skip
    return parser.parse_args(argv)


def ensure_wrk(disabled: bool) -> tuple[bool, str]:
    """Whether to use wrk, and the load generator's description for the report."""
    from .loadgen import wrk_version

    fallback = "python-asyncio (closed loop, HTTP/1.1 keep-alive; wrk not installed)"
    if disabled:
        return False, "python-asyncio (closed loop, HTTP/1.1 keep-alive; --no-wrk)"
    if shutil.which("wrk") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk not found; installing it with apt-get ...", file=sys.stderr, flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True,
                       timeout=600, check=False)  # fmt: skip
    version = wrk_version()
    if version is None:
        return False, fallback
    return True, f"{version} (-t1, keep-alive)"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    if args.setup:
        env.setup(force=True)
        return 0
    if not args.here and not env.inside():
        env.setup()
        env.reexec(argv)
    if not args.here:
        env.setup()
    if args.render:
        results = json.loads(Path(args.render).read_text())
        publish(results, docs=not args.no_docs)
        return 0
    return run(args, argv)


def publish(results: dict[str, Any], *, docs: bool) -> None:
    """Print the tables; write docs/benchmarks.md and its plots unless ``docs`` is false."""
    from .report import tables

    print(tables(results))
    print(f"\nload generator: {results['meta']['machine']['load_generator']}")
    if docs:
        from . import docs as docs_page
        from .plots import write_plots

        docs_dir = env.REPO / "docs"
        plots = write_plots(results, docs_dir / "benchmarks")
        print(f"docs: {docs_page.write(results, plots, docs_dir)}")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from .apps import by_name
    from .context import FULL, QUICK, Context, log
    from .loop import loop_name
    from .machine import describe
    from .redis_proc import BenchRedis

    profile = QUICK if args.quick else FULL
    phases = args.phases.split(",") if args.phases else list(PHASES)
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        print(f"unknown phase(s) {unknown}; known: {', '.join(PHASES)}", file=sys.stderr)
        return 2
    systems = by_name(args.systems.split(",") if args.systems else None)
    skipped = {s.name: why for s in systems if (why := s.unavailable()) is not None}
    for name, why in skipped.items():
        print(f"SKIPPING {name}: {why}", file=sys.stderr, flush=True)
    systems = [s for s in systems if s.name not in skipped]
    use_wrk, load_tool = ensure_wrk(args.no_wrk)
    log(f"load generator: {load_tool}")
    started = datetime.now(UTC)
    load_start = os.getloadavg()[0]
    t0 = time.monotonic()
    results: dict[str, Any] = {"phases": {}, "skipped": skipped}
    with BenchRedis() as redis:
        ctx = Context(profile=profile, redis=redis, use_wrk=use_wrk, load_tool=load_tool)
        log(f"redis-server {redis.version()} on port {redis.port}; mode {profile.name}")
        for name in phases:
            module = __import__(f"benchmarks.phases.{name}", fromlist=["run"])
            chosen = systems if name == "seed" else [s for s in systems if not s.only_seed]
            results["phases"][name] = module.run(ctx, chosen)
        machine = describe(redis_version=redis.version(), load_tool=load_tool, loop=loop_name())
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    results_file = f"{stamp}-{profile.name}.json"
    results["meta"] = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "mode": profile.name,
        "duration_s": time.monotonic() - t0,
        "command": "python -m benchmarks " + shlex.join(argv) if argv else "python -m benchmarks",
        "machine": machine,
        "loadavg": f"{load_start:.2f} / {os.getloadavg()[0]:.2f} (1 min, {os.cpu_count()} cores)",
        "profile": profile.__dict__,
        "results_file": results_file,
    }
    out_dir = Path(__file__).resolve().parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / results_file).write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    publish(results, docs=not args.no_docs)
    print(f"results: {out_dir / results_file}")
    log(f"done in {time.monotonic() - t0:.0f} s")
    return 0
