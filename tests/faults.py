"""The catalogue of Redis faults, each driven for real, and the ``fault_env`` fixture.

A :class:`Fault` knows how to inject itself into a private ``redis-server`` (killed, frozen,
paused, full, read-only, ...) or into the :class:`~tests.tcp_proxy.TcpProxy` in front of it
(latency, blackhole, cut replies, resets, error replies), how to heal, and what a cache should
observe meanwhile. Tests take the parametrized ``fault_env`` fixture and drive the scenario
through whatever layer they test (``test_faults_data_api.py``, ``test_faults_http.py``,
``test_faults_get_or_load.py``)::

    from .faults import FaultEnv, fault_env

    __all__ = ["fault_env"]  # re-exported: the fixture, used by the tests below

    async def test_x(fault_env: FaultEnv) -> None:
        cache = fault_env.make_cache()
        async with cache:
            ...                      # warm up
            await fault_env.inject()
            ...                      # drive; nothing may raise or hang
            await fault_env.heal()
            await fault_env.recovered(cache)
            ...                      # caching works again
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from asgi_cache import Cache, CacheSettings
from asgi_cache.keys import KeySpace

from .redis_server import INSTALL_HINT, RedisServer, free_port, redis_binary
from .tcp_proxy import TcpProxy

NAMESPACE = "faults"
VICTIM = "users:1:profile"
"""The key every scenario stores before the fault and reads during it."""
VICTIM_FULL = KeySpace(NAMESPACE).data(VICTIM)
HANG_DETECTOR = 5.0
"""Upper bound for any single call under a fault: not a latency budget, a hang detector."""

# Short budgets keep the suite fast; a hung call costs OP_TIMEOUT until the breaker opens.
FAULT_SETTINGS: dict[str, Any] = {
    "namespace": NAMESPACE,
    "ttl_jitter": 0.0,
    "op_timeout": 0.15,
    "connect_timeout": 0.15,
    "pool_timeout": 0.05,
    "breaker_threshold": 3,
    "breaker_cooldown": 0.05,
}

Reads = Literal["ok", "ok-until-invalidation", "miss", "fail"]
Writes = Literal["ok", "fail"]


@dataclass
class FaultEnv:
    """A private Redis, a proxy in front of it and the fault under test."""

    fault: Fault
    server: RedisServer
    proxy: TcpProxy
    state: dict[str, Any] = field(default_factory=dict)
    """Whatever the fault's inject step must hand to its heal step."""
    victims: list[str] = field(default_factory=lambda: [VICTIM_FULL])
    """Full keys the per-key faults (foreign value, corrupt header, WRONGTYPE) overwrite; a
    driver that stores elsewhere (HTTP responses) points them at its own keys."""
    healed: bool = True

    @property
    def url(self) -> str:
        """Where the cache connects: the proxy for network faults, else Redis itself."""
        return self.proxy.url if self.fault.via_proxy else self.server.url

    def make_cache(self, **overrides: Any) -> Cache:
        """A cache on :attr:`url` with the suite's short fault budgets (``overrides`` win)."""
        return Cache(CacheSettings(url=self.url, **{**FAULT_SETTINGS, **overrides}))

    async def inject(self) -> None:
        """Break things."""
        self.healed = False
        await self.fault.inject(self)

    async def heal(self) -> None:
        """Repair what :meth:`inject` broke (idempotent)."""
        if not self.healed:
            self.healed = True
            await self.fault.heal(self)

    async def redis(self, *args: str) -> bytes:
        """Run one command on the server directly (not through the proxy)."""
        return await asyncio.to_thread(self.server.command, *args)

    async def keys(self, pattern: str) -> list[str]:
        """Keys matching ``pattern`` on the server (by SCAN)."""
        out = await self.redis("--scan", "--pattern", pattern)
        return out.decode().split()

    async def recovered(self, cache: Cache) -> None:
        """Wait until ``cache``'s breaker is closed again (the probe answered)."""
        await wait_until(lambda: cache.breaker is None or cache.breaker.state == "closed")


async def wait_until(condition: Callable[[], bool], *, limit: float = HANG_DETECTOR) -> None:
    """Poll ``condition`` until it holds, failing after ``limit`` seconds.

    For states a background task changes (the breaker's probe), which have no event to wait on.
    """
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 - no event exists for these states
            await asyncio.sleep(0.01)


Step = Callable[[FaultEnv], Awaitable[None]]


async def _nothing(env: FaultEnv) -> None:
    return None


@dataclass(frozen=True)
class Fault:
    """One way Redis or the network can fail, and what the cache should see meanwhile.

    Attributes:
        name: Test id.
        inject: Breaks things.
        heal: Repairs them.
        reads: While injected, a cached value is still served (``ok``), served until an
            invalidation fails and waits in the retry queue (``ok-until-invalidation``: then
            reads are misses until it lands), reads are clean misses (``miss``), or reads
            fail and are counted as errors (``fail``).
        writes: While injected, ``set`` stores (``ok``) or returns ``False`` (``fail``).
        trips: The breaker opens under the fault.
        errors: Backend errors are counted (``stats()["errors"]``) under the fault.
        corrupt: The victim's value is rejected as corrupt (``stats()["corrupt"]``).
        keeps_data: Entries written before the fault are still there after healing.
        via_proxy: The cache connects through the TCP proxy.
    """

    name: str
    inject: Step
    heal: Step = _nothing
    reads: Reads = "fail"
    writes: Writes = "fail"
    trips: bool = True
    errors: bool = True
    corrupt: bool = False
    keeps_data: bool = True
    via_proxy: bool = False


# -- the server ---------------------------------------------------------------------------------


async def _kill(env: FaultEnv) -> None:
    env.server.stop()


async def _start(env: FaultEnv) -> None:
    await asyncio.to_thread(env.server.start)


async def _restart(env: FaultEnv) -> None:
    env.server.stop()
    await asyncio.to_thread(env.server.start)


async def _sigstop(env: FaultEnv) -> None:
    env.server.pause()


async def _sigcont(env: FaultEnv) -> None:
    env.server.resume()


async def _raw(env: FaultEnv) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", env.server.port)
    env.state.setdefault("writers", []).append(writer)
    return reader, writer


async def _answered(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(HANG_DETECTOR * 2):
        return await reader.readline()


async def _client_pause(env: FaultEnv) -> None:
    # CLIENT UNPAUSE from a new client is itself paused under ALL, so the pause is timed and
    # heal waits for it to end; the OK reply means the pause is in force.
    reader, writer = await _raw(env)
    writer.write(b"CLIENT PAUSE 800 ALL\r\n")
    assert await _answered(reader) == b"+OK\r\n"
    env.state["reader"] = reader


async def _client_pause_write(env: FaultEnv) -> None:
    reader, writer = await _raw(env)
    writer.write(b"CLIENT PAUSE 800 WRITE\r\n")
    assert await _answered(reader) == b"+OK\r\n"


async def _wait_pause_over(env: FaultEnv) -> None:
    reader, writer = await _raw(env)
    writer.write(b"SET fault:pause-over 1 PX 1000\r\n")  # a write: answered once the pause ends
    assert await _answered(reader) == b"+OK\r\n"
    _close_raw(env)


async def _debug_sleep(env: FaultEnv) -> None:
    reader, writer = await _raw(env)
    writer.write(b"DEBUG SLEEP 1\r\n")
    env.state["reader"] = reader
    # DEBUG SLEEP's reply only comes when it ends; tell "asleep" from "not started yet" by a
    # PING on another connection: a server that is awake answers it at once.
    probe_reader, probe_writer = await _raw(env)
    while True:
        probe_writer.write(b"PING\r\n")
        try:
            async with asyncio.timeout(0.25):
                await probe_reader.readline()
        except TimeoutError:
            return


async def _debug_sleep_over(env: FaultEnv) -> None:
    assert await _answered(env.state["reader"]) == b"+OK\r\n"
    _close_raw(env)


def _close_raw(env: FaultEnv) -> None:
    for writer in env.state.pop("writers", []):
        writer.close()


async def _oom(env: FaultEnv) -> None:
    await env.redis("CONFIG", "SET", "maxmemory-policy", "noeviction")
    await env.redis("CONFIG", "SET", "maxmemory", "1")


async def _oom_over(env: FaultEnv) -> None:
    await env.redis("CONFIG", "SET", "maxmemory", "256mb")
    await env.redis("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")


async def _readonly(env: FaultEnv) -> None:
    # A replica of a master that does not exist: reads are served, writes get READONLY.
    await env.redis("REPLICAOF", "127.0.0.1", str(free_port()))


async def _readonly_over(env: FaultEnv) -> None:
    await env.redis("REPLICAOF", "NO", "ONE")


async def _script_flush(env: FaultEnv) -> None:
    await env.redis("SCRIPT", "FLUSH")


async def _foreign_value(env: FaultEnv) -> None:
    for key in env.victims:
        await env.redis("SET", key, "not an entry")


async def _corrupt_header(env: FaultEnv) -> None:
    # Starts like an entry with a dependency header, then stops short.
    script = "redis.call('SET', KEYS[1], '\\172D\\0\\9\\0'); return 1"
    for key in env.victims:
        await env.redis("EVAL", script, "1", key)


async def _wrong_type(env: FaultEnv) -> None:
    for key in env.victims:
        await env.redis("DEL", key)
        await env.redis("HSET", key, "field", "value")


async def _maxclients(env: FaultEnv) -> None:
    # One connection of ours stays; every other one (the cache's) is dropped and new ones are
    # refused with "max number of clients reached".
    reader, writer = await _raw(env)
    writer.write(b"CONFIG SET maxclients 1\r\nCLIENT KILL TYPE normal SKIPME yes\r\n")
    assert await _answered(reader) == b"+OK\r\n"
    await _answered(reader)
    env.state["reader"] = reader


async def _maxclients_over(env: FaultEnv) -> None:
    reader = env.state["reader"]
    env.state["writers"][0].write(b"CONFIG SET maxclients 10000\r\n")
    assert await _answered(reader) == b"+OK\r\n"
    _close_raw(env)


# -- the network (through the proxy) -------------------------------------------------------------


def _proxy_step(action: Callable[[TcpProxy], None]) -> Step:
    async def step(env: FaultEnv) -> None:
        action(env.proxy)

    return step


def _set(attr: str, value: Any) -> Step:
    return _proxy_step(lambda p: setattr(p, attr, value))


_proxy_heal = _proxy_step(TcpProxy.heal)

FAULTS: list[Fault] = [
    Fault("killed", _kill, _start, keeps_data=False),
    Fault("sigstop", _sigstop, _sigcont),
    Fault("client-pause-all", _client_pause, _wait_pause_over),
    # Failovers use CLIENT PAUSE WRITE; EVALSHA may write, so the cache's reads wait too.
    Fault("client-pause-write", _client_pause_write, _wait_pause_over),
    Fault("debug-sleep", _debug_sleep, _debug_sleep_over),
    # Stale pooled connections are retried once on a fresh one: not even one error.
    Fault(
        "restart-empties",
        _restart,
        reads="miss",
        writes="ok",
        trips=False,
        errors=False,
        keeps_data=False,
    ),
    # The server answers (fast) with errors: the breaker stays closed so reads keep hitting.
    Fault("oom-noeviction", _oom, _oom_over, reads="ok", trips=False),
    # Reads work, invalidations do not: once one is queued, reads are misses until it lands.
    Fault(
        "readonly-replica",
        _readonly,
        _readonly_over,
        reads="ok-until-invalidation",
        trips=False,
    ),
    # redis-py's Script re-loads a flushed script on NOSCRIPT: nothing fails.
    Fault("noscript", _script_flush, reads="ok", writes="ok", trips=False, errors=False),
    Fault(
        "foreign-value",
        _foreign_value,
        reads="miss",
        writes="ok",
        trips=False,
        errors=False,
        corrupt=True,
    ),
    Fault(
        "corrupt-header",
        _corrupt_header,
        reads="miss",
        writes="ok",
        trips=False,
        errors=False,
        corrupt=True,
    ),
    # WRONGTYPE is an error reply (counted, not tripping); the next set overwrites the key.
    Fault("wrongtype", _wrong_type, reads="miss", writes="ok", trips=False),
    Fault("maxclients", _maxclients, _maxclients_over),
    Fault(
        "latency-within-budget",
        _set("latency", 0.01),
        _proxy_heal,
        reads="ok",
        writes="ok",
        trips=False,
        errors=False,
        via_proxy=True,
    ),
    Fault("latency-over-budget", _set("latency", 0.5), _proxy_heal, via_proxy=True),
    Fault("blackhole", _set("blackhole", True), _proxy_heal, via_proxy=True),
    Fault("cut-replies", _proxy_step(lambda p: p.cut_replies(3)), _proxy_heal, via_proxy=True),
    Fault("reset", _proxy_step(TcpProxy.reset_all), _proxy_heal, via_proxy=True),
    Fault(
        "loading-replies",
        _set("error_reply", b"-LOADING Redis is loading the dataset in memory\r\n"),
        _proxy_heal,
        via_proxy=True,
    ),
]


@pytest.fixture(params=FAULTS, ids=[f.name for f in FAULTS])
async def fault_env(request: pytest.FixtureRequest) -> AsyncIterator[FaultEnv]:
    """Each fault in turn, on a private ``redis-server`` and a proxy in front of it."""
    binary = redis_binary()
    if binary is None:
        pytest.skip(INSTALL_HINT)
    server = RedisServer(binary)
    await asyncio.to_thread(server.start)
    proxy = TcpProxy(server.port)
    await proxy.start()
    env = FaultEnv(fault=request.param, server=server, proxy=proxy)
    try:
        yield env
    finally:
        with contextlib.suppress(Exception):
            await env.heal()
        _close_raw(env)
        await proxy.close()
        server.close()
