"""Entry reads pipelined over one lean connection of the backend's own (plain TCP or Unix).

A Redis hit is one script call; through redis-py it costs about as much client work again as
the round trip itself (a pool checkout or a kept connection's per-command wrapper, a timeout
task per call, command packing through its encoder). `ReadConnection` sends only the entry
read (``EVALSHA`` of the read script) over an `asyncio.Protocol` of its own that parses with
``hiredis``: each read writes its prebuilt command and awaits a future the replies fulfil in
order (Redis answers the commands of one connection in the order they came), so concurrent
reads are pipelined on the one connection with no batching step and no lock.

The guarantees of the pooled path hold:

- every read is bounded by ``op_timeout`` from the call, connecting included: one timer per
  connection (not one per read) watches the oldest read in flight; when it runs out the
  connection is closed and every read still on it fails with `TimeoutError`, as a batch
  whose round trip timed out does;
- a caller that gives up (cancelled) leaves its place in the queue: its reply is read and
  dropped, the other callers get theirs;
- an error reply (``WRONGTYPE``, a script error) fails only its caller, as ``ResponseError``;
  ``NOSCRIPT`` (Redis restarted, ``SCRIPT FLUSH``) is answered by sending the script itself
  (``EVAL``, which caches it again);
- a connection that dies (Redis restarted, killed, a reset) fails its reads in flight with
  ``ConnectionError``; a read that was sent on a connection opened before it retries once on
  a new one (a stale kept connection must not cost a failed read), a read on a fresh one
  does not;
- the URL's credentials (``AUTH``), database (``SELECT``), client name and keepalive apply.

Errors are redis-py's exception types (``ConnectionError``, ``ResponseError``,
``AuthenticationError``) or `TimeoutError`, so the backend's one error boundary
(`_errors.run_mapped`) maps them like any other. Only for ``redis://`` and ``unix://``
without TLS: the backend reads through redis-py otherwise.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import Any, cast

import hiredis
from redis.exceptions import AuthenticationError, InvalidResponse, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from .._exceptions import ConfigurationError
from .._urls import BackendURL, UrlKind, parse_url

_EARLY = 0.001
"""Seconds a timer may fire before its deadline (the loop's clock resolution): still due."""


def command(*parts: bytes) -> bytes:
    """``parts`` as one RESP command (an array of bulk strings)."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def lean_target(url: str) -> BackendURL | None:
    """``url`` parsed if `ReadConnection` can serve it (one server over plain TCP or Unix).

    A URL the cache's parser refuses (redis-py takes more forms) is read through redis-py.
    """
    try:
        parsed = parse_url(url, name="url")
    except ConfigurationError:
        return None
    return parsed if not parsed.tls and parsed.kind in (UrlKind.REDIS, UrlKind.UNIX) else None


class _Replies(asyncio.Protocol):
    """One connection: the futures of the commands in flight, fulfilled in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, counts: ReadConnection) -> None:
        self.loop = loop
        self.time = loop.time
        self.counts = counts
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(protocolError=InvalidResponse, replyError=ResponseError)
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.deadlines: deque[float] = deque()
        self.timer: asyncio.TimerHandle | None = None
        self.queued: list[bytes] | None = None  # commands to write at the end of this tick
        self.lost = False
        """Set once the connection is gone (closed, reset, timed out): never written again."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's does not derive from asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)

    def send(self, data: bytes, deadline: float) -> asyncio.Future[Any]:
        """Write one command; the future gets its reply (or its error).

        A command sent while none is in flight is written at once; the ones sent while
        others are in flight (concurrent requests) are written together at the end of the
        loop's tick, one write (and one read for Redis) for all of them.
        """
        future = self.loop.create_future()
        if self.lost:  # lost between the caller's check and now (while it was connecting)
            future.set_exception(RedisConnectionError("connection to Redis lost"))
            return future
        waiting = self.waiting
        waiting.append(future)
        self.deadlines.append(deadline)
        if self.queued is not None:
            self.queued.append(data)
        elif len(waiting) == 1:
            self.counts.writes += 1
            self.transport.write(data)  # type: ignore[union-attr]
        else:
            self.queued = [data]
            self.loop.call_soon(self._write_queued)
        if self.timer is None:
            self.timer = self.loop.call_at(deadline, self._expire)
        return future

    def _write_queued(self) -> None:
        queued, self.queued = self.queued, None
        if queued and not self.lost:
            self.counts.writes += 1
            self.transport.write(b"".join(queued))  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiting = self.waiting
        deadlines = self.deadlines
        try:
            reply = reader.gets()
            while reply is not False:
                future = waiting.popleft()
                deadlines.popleft()
                if not future.done():  # a caller that gave up: its reply is dropped
                    if isinstance(reply, ResponseError):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
                reply = reader.gets()
        except InvalidResponse as exc:  # the stream is corrupt: nothing after it can be trusted
            self.fail(RedisConnectionError, f"protocol error: {exc}")
        except IndexError:  # a reply nobody asked for
            self.fail(RedisConnectionError, "a reply no command was waiting for")

    def connection_lost(self, exc: Exception | None) -> None:
        why = f": {exc}" if exc is not None else ""
        self.fail(RedisConnectionError, f"connection to Redis lost{why}")

    def _expire(self) -> None:
        self.timer = None
        if not self.deadlines:
            return
        head = self.deadlines[0]
        if head - _EARLY <= self.time():
            self.fail(TimeoutError, "no reply within the read's budget")
        else:
            self.timer = self.loop.call_at(head, self._expire)

    def fail(self, error: type[Exception], message: str) -> None:
        """Close the connection; every command still in flight fails with ``error``."""
        self.lost = True
        self.queued = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.abort()
        waiting = self.waiting
        self.deadlines.clear()
        while waiting:
            future = waiting.popleft()
            if not future.done():
                future.set_exception(error(message))


class ReadConnection:
    """Entry reads (``EVALSHA`` of one script, one key) over one pipelined connection.

    Args:
        url: The server (``redis://`` or ``unix://`` without TLS, see `lean_target`).
        script: The read script's source (sent with ``EVAL`` after a ``NOSCRIPT``).
        sha: Its SHA1 digest, hex.
        op_timeout: Budget in seconds of one read, from the call, connecting included.
        connect_timeout: Budget in seconds for opening the connection (within the read's).
    """

    def __init__(
        self, url: BackendURL, *, script: str, sha: str, op_timeout: float, connect_timeout: float
    ) -> None:
        self.url = url
        self.op_timeout = op_timeout
        self.connect_timeout = connect_timeout
        self._script = script.encode()
        self._evalsha = b"*4\r\n$7\r\nEVALSHA\r\n$%d\r\n%s\r\n$1\r\n1\r\n" % (
            len(sha),
            sha.encode(),
        )
        self._conn: _Replies | None = None
        self._connecting: asyncio.Task[_Replies] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.connects = 0
        """How many connections were opened (the first, and one after each loss)."""
        self.writes = 0
        """How many writes carried commands (one per lone read, one per tick's batch)."""

    async def read(self, key: str) -> Any:
        """The read script's reply for ``key``.

        Raises:
            TimeoutError: No reply within ``op_timeout`` of the call.
            redis.exceptions.ResponseError: Redis answered this command with an error.
            redis.exceptions.ConnectionError: The connection failed (after the one retry).
        """
        conn = self._conn
        if conn is None or conn.lost:
            return await self._read_fresh(key)
        deadline = conn.time() + self.op_timeout
        encoded = key.encode()
        try:
            return await conn.send(
                b"%s$%d\r\n%s\r\n" % (self._evalsha, len(encoded), encoded), deadline
            )
        except RedisConnectionError:
            # The connection was open before this read: it went stale (Redis restarted, an
            # idle timeout). One more try, on a new one.
            return await self._read_fresh(key, deadline)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await self._eval(conn, encoded, deadline)

    async def _read_fresh(self, key: str, deadline: float | None = None) -> Any:
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + self.op_timeout
        conn = await self._connected(deadline)
        encoded = key.encode()
        try:
            return await conn.send(
                b"%s$%d\r\n%s\r\n" % (self._evalsha, len(encoded), encoded), deadline
            )
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await self._eval(conn, encoded, deadline)

    async def _eval(self, conn: _Replies, key: bytes, deadline: float) -> Any:
        # Redis lost its script cache: EVAL runs the script and caches it again.
        return await conn.send(command(b"EVAL", self._script, b"1", key), deadline)

    async def _connected(self, deadline: float) -> _Replies:
        # Concurrent readers that find no connection share one attempt; each waits for it
        # within its own budget, and a caller giving up does not abort it for the others.
        task = self._connecting
        if task is None:
            task = self._connecting = asyncio.get_running_loop().create_task(self._open())
            task.add_done_callback(self._opened)
        async with asyncio.timeout_at(deadline):
            return await asyncio.shield(task)

    def _opened(self, task: asyncio.Task[_Replies]) -> None:
        self._connecting = None
        if not task.cancelled() and task.exception() is None:
            self._conn = task.result()

    async def _open(self) -> _Replies:
        loop = asyncio.get_running_loop()
        url = self.url
        async with asyncio.timeout(self.connect_timeout):
            conn = _Replies(loop, self)
            if url.kind is UrlKind.UNIX:
                await loop.create_unix_connection(lambda: conn, url.socket_path)
            else:
                host, port = url.hosts[0]
                await loop.create_connection(lambda: conn, host, port)
            try:
                await self._handshake(conn, loop.time() + self.connect_timeout)
            except BaseException:
                conn.fail(RedisConnectionError, "connection set-up failed")
                raise
        self.connects += 1
        return conn

    async def _handshake(self, conn: _Replies, deadline: float) -> None:
        url = self.url
        options = url.options
        if options.socket_keepalive and conn.transport is not None:
            sock = conn.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if url.password is not None:
            auth = [b"AUTH", url.password.encode()]
            if url.username is not None:
                auth.insert(1, url.username.encode())
            try:
                await conn.send(command(*auth), deadline)
            except ResponseError as exc:
                raise AuthenticationError(str(exc)) from exc
        if options.client_name is not None:
            await conn.send(command(b"CLIENT", b"SETNAME", options.client_name.encode()), deadline)
        if url.db:
            await conn.send(command(b"SELECT", str(url.db).encode()), deadline)

    async def aclose(self) -> None:
        """Close the connection; reads still in flight fail with ``ConnectionError``."""
        task, self._connecting = self._connecting, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.fail(RedisConnectionError, "the backend was closed")
