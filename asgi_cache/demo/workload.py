"""The demo's workload: a seeded, realistic request mix and a bounded driver.

Reads pick user ids from a Zipf distribution (a few users are very popular, most are rarely
read), as real traffic does; writes (``PUT``) pick users uniformly, since how often a user
edits their profile has little to do with how often others look at it. The plan is fixed by
the seed, so a run with and a run without the cache send exactly the same requests.

The driver only ever talks to the loopback address it is given, runs a bounded number of
requests and stops at a time limit, whatever happens first.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

READ_MIX = (("user", 0.70), ("profile", 0.27), ("list", 0.03))
"""Shares of the reads: one user, a user's profile, the first page of the user list."""


class Zipf:
    """Draws ranks 1..n with probability proportional to ``1 / rank**s``.

    Ranks are mapped to ids through a seeded shuffle, so the popular users are not simply
    the first rows of the table.
    """

    def __init__(self, n: int, s: float, rng: random.Random) -> None:
        if n <= 0 or s <= 0:
            raise ValueError(f"Zipf needs n > 0 and s > 0, got n={n}, s={s}")
        self._cdf = list(itertools.accumulate(1.0 / (k**s) for k in range(1, n + 1)))
        self._ids = list(range(1, n + 1))
        rng.shuffle(self._ids)
        self._rng = rng

    def rank(self) -> int:
        """A rank in 1..n (1 is the most popular)."""
        point = self._rng.random() * self._cdf[-1]
        return min(bisect.bisect_right(self._cdf, point), len(self._cdf) - 1) + 1

    def __call__(self) -> int:
        """A user id, popular ids more often."""
        return self._ids[self.rank() - 1]


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One request of the workload."""

    kind: str
    """``user``, ``profile``, ``list``, ``write`` or ``view``."""
    method: str
    path: str
    body: dict[str, Any] | None = None


def plan(
    count: int,
    *,
    users: int,
    seed: int,
    write_ratio: float = 0.03,
    zipf_s: float = 1.1,
) -> list[PlannedRequest]:
    """A reproducible list of ``count`` requests against the demo's users service.

    Args:
        count: How many requests.
        users: Ids are drawn from 1..users.
        seed: Same seed, same requests.
        write_ratio: Share of ``PUT /users/{id}`` requests.
        zipf_s: Skew of the read popularity (about 1 on the web).
    """
    rng = random.Random(seed)
    zipf = Zipf(users, zipf_s, rng)
    kinds = [kind for kind, _ in READ_MIX]
    weights = [weight for _, weight in READ_MIX]
    out = []
    for n in range(count):
        if rng.random() < write_ratio:
            user_id = rng.randint(1, users)
            body = {
                "name": f"User {user_id} rev {seed}.{n}",
                "email": f"user{user_id}@example.com",
                "bio": f"Edited in request {n}.",
            }
            out.append(PlannedRequest("write", "PUT", f"/users/{user_id}", body))
            continue
        kind = rng.choices(kinds, weights)[0]
        if kind == "list":
            out.append(PlannedRequest("list", "GET", "/users?limit=20"))
        elif kind == "profile":
            out.append(PlannedRequest("profile", "GET", f"/users/{zipf()}/profile"))
        else:
            out.append(PlannedRequest("user", "GET", f"/users/{zipf()}"))
    return out


def plan_views(count: int, *, users: int, seed: int, zipf_s: float = 1.1) -> list[PlannedRequest]:
    """``count`` page-view counts (``POST /users/{id}/views``), Zipf-distributed like reads:
    the write-heavy part of the demo, which the cached app saves with write-behind."""
    zipf = Zipf(users, zipf_s, random.Random(seed + 2))
    return [PlannedRequest("view", "POST", f"/users/{zipf()}/views") for _ in range(count)]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one request got."""

    kind: str
    status: int
    """HTTP status, or 0 when the request failed without a response."""
    seconds: float
    x_cache: str | None = None


async def drive(
    base_url: str,
    requests: Sequence[PlannedRequest],
    *,
    concurrency: int = 20,
    time_limit: float = 60.0,
    think: float = 0.0,
) -> list[Outcome]:
    """Send ``requests`` with ``concurrency`` clients until done or ``time_limit`` passes.

    Each client sends one request at a time and, after each answer, pauses for a random
    "think time" averaging ``think`` seconds (exponentially distributed, seeded), like a
    person or a service between calls. Without it, a closed loop of fast cache hits would
    push requests as fast as the server can answer and measure only its saturation.

    Returns:
        One `Outcome` per request sent, in completion order (fewer than planned when
        the time limit stopped the run).

    Raises:
        ValueError: ``base_url`` is not a loopback address.
    """
    host = urlsplit(base_url).hostname or ""
    if host != "localhost" and not host.startswith("127.") and host != "::1":
        raise ValueError(f"the demo workload only targets loopback addresses, not {host!r}")
    deadline = time.monotonic() + time_limit
    pending = iter(requests)
    outcomes: list[Outcome] = []

    async def worker(n: int, client: httpx.AsyncClient) -> None:
        pause = random.Random(n)
        for req in pending:
            if time.monotonic() >= deadline:
                return
            start = time.perf_counter()
            try:
                response = await client.request(req.method, req.path, json=req.body)
            except httpx.HTTPError:
                outcomes.append(Outcome(req.kind, 0, time.perf_counter() - start))
                continue
            elapsed = time.perf_counter() - start
            x_cache = response.headers.get("x-cache")
            outcomes.append(Outcome(req.kind, response.status_code, elapsed, x_cache))
            if think > 0:
                await asyncio.sleep(pause.expovariate(1.0 / think))

    # One client with one keep-alive connection per worker, like separate real clients: one
    # pool shared by many concurrent requests costs httpx more CPU than a cache hit costs the
    # server. All are built before the first request (building one takes milliseconds of CPU,
    # which would otherwise land in the first requests' latencies).
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30.0)
            )
            for _ in range(concurrency)
        ]
        await asyncio.gather(*(worker(n, c) for n, c in enumerate(clients)))
    return outcomes


def drive_blocking(
    base_url: str,
    requests: Sequence[PlannedRequest],
    *,
    concurrency: int = 20,
    time_limit: float = 60.0,
    think: float = 0.0,
) -> list[Outcome]:
    """`drive` in a fresh event loop, for a worker process."""
    return asyncio.run(
        drive(base_url, requests, concurrency=concurrency, time_limit=time_limit, think=think)
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` by the nearest-rank method; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
