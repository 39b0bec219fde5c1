"""Fixtures shared by the whole suite: real Redis servers, fakeredis and caches on each."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import fakeredis
import pytest
import redis.asyncio as aioredis

import asgi_cache.http.middleware as middleware_module
from asgi_cache import Cache, CacheSettings
from asgi_cache.backends import (
    Backend,
    ClusterBackend,
    MemoryBackend,
    RedisBackend,
    SentinelBackend,
)

from .http_support import Clock, backend_for, make_cache
from .redis_cluster import LocalCluster
from .redis_sentinel import LocalSentinel
from .redis_server import BEHAVIOUR_OP_TIMEOUT, INSTALL_HINT, RedisServer, redis_binary
from .rfc_support import Site
from .tcp_proxy import TcpProxy

BACKENDS = ["memory", "fakeredis", "redis", "cluster", "sentinel"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's shared real Redis, started by the suite on a free port."""
    binary = redis_binary()
    if binary is None:
        pytest.skip(INSTALL_HINT)
    server = RedisServer(binary)
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of the shared real Redis, emptied after the test."""
    yield redis_server.url
    if redis_server.proc is None:  # a test stopped it: bring it back for the next one
        redis_server.start()
    redis_server.command("FLUSHALL")


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A real Redis for this test alone, for tests that kill, pause or reconfigure it."""
    binary = redis_binary()
    if binary is None:
        pytest.skip(INSTALL_HINT)
    server = RedisServer(binary)
    server.start()
    yield server
    server.close()


@pytest.fixture
async def proxied(own_redis: RedisServer) -> AsyncIterator[TcpProxy]:
    """A proxy in front of the test's own Redis."""
    proxy = TcpProxy(own_redis.port)
    await proxy.start()
    yield proxy
    await proxy.close()


def make_backend(kind: str, request: pytest.FixtureRequest) -> Backend:
    """A fresh backend of ``kind``: memory, fakeredis, redis (the suite's own server) or
    cluster (the suite's 3-master Redis Cluster) or sentinel (its Sentinel deployment)."""
    if kind == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        return ClusterBackend(cluster.url, op_timeout=BEHAVIOUR_OP_TIMEOUT)
    if kind == "sentinel":
        sentinel = request.getfixturevalue("redis_sentinel")
        return SentinelBackend(sentinel.url, op_timeout=BEHAVIOUR_OP_TIMEOUT)
    if kind == "memory":
        return MemoryBackend()
    if kind == "fakeredis":
        return RedisBackend(
            client=fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()), owns_client=True
        )
    url = request.getfixturevalue("redis_url")
    # Contract tests are about behaviour, not time budgets: a generous op timeout keeps a
    # busy machine from turning a slow answer into a fail-open miss. Fault tests set their own.
    return RedisBackend(url, op_timeout=BEHAVIOUR_OP_TIMEOUT)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """Each backend in turn, so all obey one contract."""
    b = make_backend(request.param, request)
    yield b
    await b.aclose()


@pytest.fixture(params=BACKENDS)
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    """A started :class:`Cache` on each backend in turn (no TTL jitter)."""
    c = Cache(
        CacheSettings(namespace="test", ttl_jitter=0.0),
        backend=make_backend(request.param, request),
    )
    async with c:
        yield c
    await c.backend.aclose()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain redis-py client on the suite's Redis, for inspecting what the cache wrote."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def web_cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    """A cache for the HTTP tests, on memory and on the suite's Redis."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    cache = make_cache(backend_for(request.param, url))
    yield cache
    await cache.backend.aclose()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A settable clock standing in for the middleware's ``time`` module."""
    c = Clock()
    monkeypatch.setattr(middleware_module, "time", c)
    return c


@pytest.fixture
def site(web_cache: Cache, clock: Clock) -> Callable[..., Site]:
    """Builds the RFC tests' harness: ``CacheMiddleware(cache_all=True, **options)`` in front
    of a scripted origin, on memory and on the suite's Redis, with the settable clock."""

    def build(**options: Any) -> Site:
        return Site(web_cache, clock, **options)

    return build


# -- Redis Cluster and Sentinel, started from redis-server (tests/redis_cluster.py and
# tests/redis_sentinel.py). Each topology starts once per session, on first use; the
# function-scoped fixtures hand it to a test and afterwards restart whatever the test killed,
# wait until it is fully healthy again and empty it, so every test starts from the same state.

_STARTUPS = pytest.StashKey[list[tuple[str, float]]]()


class Topology(Protocol):
    """What the session fixtures need of a LocalCluster or LocalSentinel."""

    startup_seconds: float

    def start(self) -> None: ...
    def heal(self) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


T = TypeVar("T", bound=Topology)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Report how long each Redis topology took to start (they start once per session)."""
    for what, seconds in config.stash.get(_STARTUPS, []):
        terminalreporter.write_line(f"redis topology started: {what} in {seconds:.2f} s")


def _directory(factory: pytest.TempPathFactory, name: str) -> tuple[str, Path]:
    """``redis-server`` and a fresh directory under the suite's temp dir (or a skip)."""
    binary = redis_binary()
    if binary is None:
        pytest.skip(INSTALL_HINT)
    return binary, factory.mktemp(name)


def _run_for_session(topology: T, what: str, config: pytest.Config) -> Iterator[T]:
    """Start ``topology``, yield it, and kill every process of it at the end (or on a
    failed start)."""
    try:
        topology.start()
        config.stash.setdefault(_STARTUPS, []).append((what, topology.startup_seconds))
        yield topology
    finally:
        topology.close()


def _reset_after_test(topology: T) -> Iterator[T]:
    """Yield ``topology``; then restart what the test killed, wait until it is fully healthy
    and empty it, so the next test starts from the same state."""
    yield topology
    topology.heal()
    topology.flush()


@pytest.fixture(scope="session")
def redis_cluster_session(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[LocalCluster]:
    """The session's Redis Cluster: 3 masters, no replicas. Failure detection is slower than
    the failover cluster's (3 s): with no replica, a node flagged failing stops the cluster.
    (Much slower, 5 s, also slows the gossip that readiness waits for.)"""
    binary, directory = _directory(tmp_path_factory, "cluster")
    cluster = LocalCluster(binary, directory, masters=3, node_timeout_ms=3000)
    yield from _run_for_session(cluster, "cluster, 3 masters", pytestconfig)


@pytest.fixture
def redis_cluster(redis_cluster_session: LocalCluster) -> Iterator[LocalCluster]:
    """The session's 3-master Redis Cluster, healed and emptied after the test."""
    yield from _reset_after_test(redis_cluster_session)


@pytest.fixture(scope="session")
def redis_cluster_ha_session(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[LocalCluster]:
    """The session's Redis Cluster for failover tests: 3 masters with a replica each."""
    binary, directory = _directory(tmp_path_factory, "cluster-ha")
    cluster = LocalCluster(binary, directory, masters=3, replicas=1)
    yield from _run_for_session(cluster, "cluster, 3 masters + 3 replicas", pytestconfig)


@pytest.fixture
def redis_cluster_ha(redis_cluster_ha_session: LocalCluster) -> Iterator[LocalCluster]:
    """The session's 3+3 Redis Cluster; after the test, killed nodes are restarted (they
    rejoin as replicas), the cluster is waited for until fully healthy, then emptied."""
    yield from _reset_after_test(redis_cluster_ha_session)


@pytest.fixture(scope="session")
def redis_sentinel_session(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[LocalSentinel]:
    """The session's Sentinel deployment: a primary, one replica and 3 Sentinels."""
    binary, directory = _directory(tmp_path_factory, "sentinel")
    deployment = LocalSentinel(binary, directory)
    what = "sentinel, primary + replica + 3 sentinels"
    yield from _run_for_session(deployment, what, pytestconfig)


@pytest.fixture
def redis_sentinel(redis_sentinel_session: LocalSentinel) -> Iterator[LocalSentinel]:
    """The session's Sentinel deployment; after the test, what was killed is restarted, the
    old primary made a replica of the new one, and everything emptied."""
    yield from _reset_after_test(redis_sentinel_session)
