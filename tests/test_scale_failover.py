"""Failover under load: two worker processes drive the middleware and get_or_load while a
Redis Cluster master, then (separately) the Sentinel-managed primary, is killed.

What must hold (tests/failover_load.py has the workload): no 5xx, no stale read after a
write (an invalidation issued during or after the failover is never lost), caching resumes
(a hit on an item whose data lived on the killed server), and the servers' client
connections stay bounded (no leak: after recovery about what they were before). The figures
(recovery time, hit ratios, connections) are printed for the report; only counts and
generous bounds are asserted.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

from .failover_load import ITEMS, Figures, analyse, worker
from .redis_cluster import LocalCluster
from .redis_sentinel import LocalSentinel
from .redis_server import RedisServer
from .workers import run_workers

WORKERS = 2
WARM_REQUESTS = 400
AFTER_SECONDS = 4.0


def _connections(servers: Callable[[], list[RedisServer]]) -> int:
    total = 0
    for server in servers():
        try:
            total += int(server.client().info("clients")["connected_clients"])
        except Exception:
            continue
    return total


async def _run(
    url: str,
    servers: Callable[[], list[RedisServer]],
    kill: Callable[[], Any],
) -> tuple[Figures, dict[str, float]]:
    ctx = multiprocessing.get_context("spawn")
    versions = ctx.Array("i", ITEMS)
    sent = ctx.Value("i", 0)
    stop = ctx.Event()
    args = [(url, versions, sent, stop)] * WORKERS
    work = asyncio.create_task(run_workers(worker, args, wait=120))
    samples: list[int] = []

    async def sample() -> None:
        while not stop.is_set():
            samples.append(await asyncio.to_thread(_connections, servers))
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    try:
        # Warm: both workers running, entries cached (the spawn alone may take seconds).
        async with asyncio.timeout(90):
            while sent.value < WARM_REQUESTS:  # noqa: ASYNC110 - another process's counter
                await asyncio.sleep(0.1)
        before = await asyncio.to_thread(_connections, servers)
        killed_at = time.time()
        event = await asyncio.to_thread(kill)
        await asyncio.sleep(AFTER_SECONDS)
        after = await asyncio.to_thread(_connections, servers)
    finally:
        stop.set()
        collected = await work
        await sampler
    figures = analyse(collected, killed_at)
    facts = {
        "failover_seconds": float(event.seconds),
        "connections_before": before,
        "connections_peak": max(samples, default=0),
        "connections_after": after,
    }
    print(f"\nfailover under load: {figures} {facts}")  # the report's figures
    return figures, facts


def _check(figures: Figures, facts: dict[str, float]) -> None:
    assert figures.requests > 100
    assert figures.server_errors == 0
    assert figures.stale_reads == 0
    assert figures.recovery_seconds is not None  # caching resumed on the moved data
    # Bounded, no leak: the surviving servers hold about as many clients as before (the
    # workers reconnect to the promoted server, their connections to the dead one are gone);
    # a leak of one connection per failed operation would be hundreds.
    assert facts["connections_after"] <= facts["connections_before"] * 1.5, facts


async def test_killing_a_cluster_master_under_load(redis_cluster_ha: LocalCluster) -> None:
    cluster = redis_cluster_ha
    victim_key = "fo:d:{items:0:data}"
    figures, facts = await _run(cluster.url, cluster.live, lambda: cluster.kill_master(victim_key))
    _check(figures, facts)


async def test_killing_the_sentinel_primary_under_load(redis_sentinel: LocalSentinel) -> None:
    deployment = redis_sentinel
    figures, facts = await _run(
        deployment.url,
        lambda: [s for s in deployment.servers if s.running],
        deployment.kill_primary,
    )
    _check(figures, facts)
