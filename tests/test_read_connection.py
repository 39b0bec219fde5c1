"""The lean read connection (``backends/_read_conn``): pipelined entry reads, each caller its
own reply, and the pooled path's guarantees (budget, reconnect, NOSCRIPT, AUTH) kept."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from asgi_cache import BackendError, BackendTimeoutError
from asgi_cache._urls import parse_url
from asgi_cache.backends import RedisBackend
from asgi_cache.backends._read_conn import ReadConnection, _Replies

from .faults import HANG_DETECTOR, wait_until
from .http_support import command_calls
from .redis_server import BEHAVIOUR_OP_TIMEOUT, INSTALL_HINT, RedisServer, redis_binary
from .tcp_proxy import TcpProxy

pytestmark = pytest.mark.redis

N = 12


async def _fill(backend: RedisBackend, keys: Sequence[str]) -> None:
    deps = list(zip(["ns:t:all"], await backend.versions(["ns:t:all"], 30), strict=True))
    for i, key in enumerate(keys):
        assert await backend.set(key, f"value-{i}".encode(), 30, deps)


KEYS = [f"ns:d:{i}" for i in range(N)]
VALUES = [f"value-{i}".encode() for i in range(N)]


def _through(proxy: TcpProxy) -> str:
    # Database 3: the connection selects the URL's database itself.
    return f"redis://127.0.0.1:{proxy.port}/3"


@contextlib.asynccontextmanager
async def _warm(
    url: str, *, op_timeout: float = BEHAVIOUR_OP_TIMEOUT
) -> AsyncIterator[tuple[RedisBackend, ReadConnection]]:
    """A backend on ``url``, its entries stored and its read connection open."""
    backend = RedisBackend(url, op_timeout=op_timeout)
    try:
        await _fill(backend, KEYS)
        assert await backend.get(KEYS[0]) == VALUES[0]
        assert backend.reads is not None
        yield backend, backend.reads
    finally:
        await backend.aclose()


async def _in_flight(proxy: TcpProxy, backend: RedisBackend) -> list[asyncio.Task[bytes | None]]:
    """Start a read of every key and wait until Redis has been sent all of them."""
    sent = proxy.commands
    tasks = [asyncio.create_task(backend.get(k)) for k in KEYS]
    await wait_until(lambda: proxy.commands >= sent + N)
    return tasks


async def test_pipelined_replies_reach_their_callers_and_a_cancelled_one_leaves_its_place(
    proxied: TcpProxy,
) -> None:
    async with _warm(_through(proxied)) as (backend, reads):
        proxied.latency = 0.05  # replies held back: every read is in flight at once
        tasks = await _in_flight(proxied, backend)
        for task in tasks[1::3]:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for i, result in enumerate(results):
            if i % 3 == 1:
                assert isinstance(result, asyncio.CancelledError)
            else:
                assert result == VALUES[i]
        # The cancelled callers' replies were read and dropped, not handed to later reads.
        proxied.latency = 0.0
        assert await asyncio.gather(*(backend.get(k) for k in KEYS)) == VALUES
        assert reads.connects == 1


async def test_a_dead_connection_fails_its_reads_and_the_next_read_reconnects(
    proxied: TcpProxy,
) -> None:
    async with _warm(_through(proxied)) as (backend, reads):
        proxied.latency = 0.2
        tasks = await _in_flight(proxied, backend)
        accepted = proxied.connections
        proxied.reset_all()  # the connection dies with every read on it; new ones die too
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            assert isinstance(result, BackendError)
            assert not isinstance(result, BackendTimeoutError)  # failed, not left hanging
        # Each read retried once, all of them on one new connection, reset before it could
        # select its database.
        assert proxied.connections - accepted == 1
        assert reads.connects == 1
        proxied.heal()
        assert await asyncio.gather(*(backend.get(k) for k in KEYS)) == VALUES
        assert reads.connects == 2
        assert proxied.connections - accepted == 2


async def test_a_stale_connection_costs_no_failed_read(own_redis: RedisServer) -> None:
    async with _warm(own_redis.url) as (backend, reads):
        own_redis.command("CLIENT", "KILL", "TYPE", "normal")  # an idle timeout, say
        assert await backend.get(KEYS[1]) == VALUES[1]  # retried on a new connection
        assert reads.connects == 2


async def test_reads_without_a_reply_time_out_and_the_connection_is_replaced(
    proxied: TcpProxy,
) -> None:
    async with _warm(_through(proxied), op_timeout=0.2) as (backend, reads):
        proxied.blackhole = True  # Redis frozen: connected, never answering
        async with asyncio.timeout(HANG_DETECTOR):
            results = await asyncio.gather(*(backend.get(k) for k in KEYS), return_exceptions=True)
        assert all(isinstance(r, BackendTimeoutError) for r in results)
        assert reads.connects == 1
        proxied.heal()
        assert await asyncio.gather(*(backend.get(k) for k in KEYS)) == VALUES
        assert reads.connects == 2  # the timed-out connection was closed, not reused


async def test_credentials_and_database_from_the_url(own_redis: RedisServer) -> None:
    own_redis.command("ACL", "SETUSER", "alice", "on", ">alice-pw", "~*", "+@all")
    own_redis.command("CONFIG", "SET", "requirepass", "s3cret")
    port = own_redis.port
    for url in (
        f"redis://:s3cret@127.0.0.1:{port}/5",
        f"redis://alice:alice-pw@127.0.0.1:{port}/5",
    ):
        async with _warm(url) as (_, reads):
            assert reads.connects == 1
    wrong = RedisBackend(f"redis://:nope@127.0.0.1:{port}/5", op_timeout=BEHAVIOUR_OP_TIMEOUT)
    try:
        with pytest.raises(BackendError, match=r"(?i)auth|pass"):
            await wrong.get(KEYS[0])
        assert wrong.reads is not None
        assert wrong.reads.connects == 0
    finally:
        await wrong.aclose()


async def test_reads_after_a_script_flush_reload_the_script(own_redis: RedisServer) -> None:
    async with _warm(own_redis.url) as (backend, _reads):
        own_redis.command("SCRIPT", "FLUSH")
        before = command_calls(own_redis)
        assert await asyncio.gather(*(backend.get(k) for k in KEYS)) == VALUES
        after = command_calls(own_redis)
        # Every read met NOSCRIPT and ran the script itself (EVAL caches it again)...
        assert after["evalsha"] - before.get("evalsha", 0) == N
        assert after["eval"] - before.get("eval", 0) == N
        # ...and the next reads find it cached.
        assert await asyncio.gather(*(backend.get(k) for k in KEYS)) == VALUES
        assert command_calls(own_redis)["eval"] == after["eval"]


async def test_closing_fails_the_reads_in_flight(proxied: TcpProxy) -> None:
    async with _warm(_through(proxied)) as (backend, _reads):
        proxied.latency = 0.5
        tasks = await _in_flight(proxied, backend)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, BackendError) for r in results)


def test_only_plain_single_server_urls_get_the_lean_connection() -> None:
    assert RedisBackend("redis://127.0.0.1:1/0").reads is not None
    assert RedisBackend("unix:///tmp/none.sock?db=2").reads is not None
    assert RedisBackend("rediss://127.0.0.1:1/0").reads is None  # TLS: through redis-py
    assert RedisBackend("redis://127.0.0.1:1/0", batch_reads=False).reads is None
    # A form only redis-py takes (the cache's settings refuse it): read through redis-py.
    assert RedisBackend("redis://127.0.0.1:1/0?health_check_interval=3").reads is None


async def test_client_name_and_keepalive_from_the_url(own_redis: RedisServer) -> None:
    url = f"redis://127.0.0.1:{own_redis.port}/0?client_name=entry-reads&socket_keepalive=true"
    async with _warm(url):
        names = own_redis.command("CLIENT", "LIST").decode().count("name=entry-reads ")
        assert names == 2  # the pool's connection (the store) and the read connection


async def test_a_corrupt_reply_stream_fails_its_reads_and_is_replaced(proxied: TcpProxy) -> None:
    async with _warm(_through(proxied)) as (backend, reads):
        proxied.error_reply = b"?not RESP\r\n"  # neither a reply nor an error: nothing parses
        with pytest.raises(BackendError):
            await backend.get(KEYS[1])
        proxied.heal()
        assert await backend.get(KEYS[1]) == VALUES[1]
        assert reads.connects == 2


# -- the protocol on its own, over a fake transport ---------------------------------------------


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def abort(self) -> None:
        self.aborted = True


def _replies(
    op_timeout: float = 5.0,
) -> tuple[_Replies, _Transport, ReadConnection]:
    owner = ReadConnection(
        parse_url("redis://127.0.0.1:1/0", name="url"),
        script="return 1",
        sha="0" * 40,
        op_timeout=op_timeout,
        connect_timeout=1.0,
    )
    conn = _Replies(asyncio.get_running_loop(), owner)
    transport = _Transport()
    conn.connection_made(transport)
    return conn, transport, owner


async def test_commands_sent_in_one_tick_are_written_together_and_answered_in_order() -> None:
    conn, transport, owner = _replies()
    deadline = conn.time() + 5
    futures = [conn.send(b"cmd%d;" % i, deadline) for i in range(4)]
    assert transport.written == [b"cmd0;"]  # nothing in flight: written at once
    await asyncio.sleep(0)
    assert transport.written == [b"cmd0;", b"cmd1;cmd2;cmd3;"]  # the rest: one write
    assert owner.writes == 2
    futures[1].cancel()  # its caller gave up: the reply is read and dropped
    conn.data_received(b"$1\r\na\r\n$1\r\nb\r\n-ERR c\r\n")
    assert futures[0].result() == b"a"
    assert isinstance(futures[2].exception(), ResponseError)
    assert not futures[3].done()
    conn.data_received(b"$1\r\nd\r\n")
    assert futures[3].result() == b"d"
    conn.data_received(b"$1\r\ne\r\n")  # a reply no command waits for: the stream is off
    assert conn.lost
    assert transport.aborted
    lost = conn.send(b"late;", deadline)  # nothing is written on a lost connection
    assert isinstance(lost.exception(), RedisConnectionError)
    assert transport.written[-1] == b"cmd1;cmd2;cmd3;"
    conn.connection_lost(None)


async def test_one_timer_per_connection_fails_the_reads_once_the_oldest_is_due() -> None:
    conn, transport, _ = _replies()
    now = conn.time()
    first = conn.send(b"a;", now + 10)
    timer = conn.timer
    assert timer is not None
    conn.send(b"b;", now + 20)
    assert conn.timer is timer  # one timer, not one per read
    conn.data_received(b"$1\r\na\r\n")
    assert first.result() == b"a"
    conn._expire()  # fires early for the read still in flight: re-armed at its deadline
    assert conn.timer is not None
    assert conn.timer is not timer
    assert not conn.lost
    conn.deadlines[0] = now - 1  # its deadline passed
    late = conn.waiting[0]
    conn._expire()
    assert conn.lost
    assert transport.aborted
    assert isinstance(late.exception(), TimeoutError)
    conn._expire()  # a timer firing with nothing in flight does nothing
    assert conn.timer is None


async def test_a_protocol_error_fails_every_read_in_flight() -> None:
    conn, _, _ = _replies()
    futures = [conn.send(b"x;", conn.time() + 5) for _ in range(3)]
    conn.data_received(b"?garbage\r\n")
    assert conn.lost
    for future in futures:
        assert isinstance(future.exception(), RedisConnectionError)


async def test_reads_over_a_unix_socket(tmp_path: Path) -> None:
    binary = redis_binary()
    if binary is None:
        pytest.skip(INSTALL_HINT)
    path = tmp_path / "redis.sock"
    server = RedisServer(binary, "--unixsocket", str(path))
    server.start()
    backend = RedisBackend(f"unix://{path}?db=2", op_timeout=BEHAVIOUR_OP_TIMEOUT)
    try:
        await _fill(backend, KEYS[:2])
        assert await asyncio.gather(*(backend.get(k) for k in KEYS[:2])) == VALUES[:2]
        assert backend.reads is not None
        assert backend.reads.connects == 1
    finally:
        await backend.aclose()
        server.close()
