"""A small asyncio TCP proxy between the cache and the suite's own Redis, to break the network.

It forwards bytes both ways and can, at any moment: delay replies (``latency``), swallow all
traffic while keeping connections open (``blackhole``), cut every connection after it has
carried ``cut_replies_after`` reply bytes, reset connections with a TCP RST (``reset``), or
answer every command with a Redis error reply such as ``-LOADING`` (``error_reply``) without
forwarding it. Counters let tests assert on what reached the proxy (``commands``,
``connections``) and what it let through (``bytes_up``, ``bytes_down``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

__all__ = ["TcpProxy", "count_commands"]


def count_commands(buffer: bytearray) -> int:
    """Remove the complete RESP commands at the start of ``buffer``; return how many.

    Commands are arrays of bulk strings (``*N\\r\\n$len\\r\\n...\\r\\n``), the only form
    redis-py sends. An incomplete command stays in the buffer.
    """
    count = 0
    while True:
        pos = _command_end(buffer)
        if pos is None:
            return count
        del buffer[:pos]
        count += 1


def _command_end(buf: bytearray) -> int | None:
    line = buf.find(b"\r\n")
    if line < 0 or not buf.startswith(b"*"):
        return None
    pos = line + 2
    for _ in range(int(buf[1:line])):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        size = int(buf[pos + 1 : end])
        pos = end + 2 + size + 2
        if pos > len(buf):
            return None
    return pos


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream
        self.down = 0  # reply bytes forwarded since the cut was armed

    def reset(self) -> None:
        """Close the client side with a TCP RST (SO_LINGER 0) and drop the upstream side."""
        _rst(self.client)
        self.upstream.close()


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream_port`` with injectable network faults."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.latency = 0.0
        """Seconds each chunk of reply bytes is held before it is forwarded."""
        self.blackhole = False
        """Swallow traffic both ways; connections stay open and hang."""
        self.cut_replies_after: int | None = None
        """Close each connection once it has carried this many more reply bytes."""
        self.reset_new = False
        """Reset new connections as soon as they are accepted."""
        self.error_reply: bytes | None = None
        """Answer every command with this error reply instead of forwarding it."""
        self.commands = 0
        """Complete commands received from clients, whatever the fault."""
        self.bytes_up = 0
        self.bytes_down = 0
        self.connections = 0
        """Connections accepted from clients."""
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """``redis://`` URL of the proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut_replies(self, after: int) -> None:
        """Cut every connection (current and new) after ``after`` more reply bytes."""
        for link in self._links:
            link.down = 0
        self.cut_replies_after = after

    def reset_all(self) -> None:
        """Reset every open connection and every new one until :meth:`heal`."""
        self.reset_new = True
        for link in list(self._links):
            link.reset()

    def heal(self) -> None:
        """Stop injecting faults (connections already broken stay broken)."""
        self.latency = 0.0
        self.blackhole = False
        self.cut_replies_after = None
        self.reset_new = False
        self.error_reply = None

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.client.transport.abort()
            link.upstream.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.reset_new:
            _rst(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        for coro in (self._pump_up(reader, link), self._pump_down(up_reader, link)):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump_up(self, reader: asyncio.StreamReader, link: _Link) -> None:
        pending = bytearray()
        try:
            while data := await reader.read(65536):
                pending += data
                n = count_commands(pending)
                self.commands += n
                if self.blackhole:
                    continue
                if self.error_reply is not None:
                    link.client.write(self.error_reply * n)
                    continue
                self.bytes_up += len(data)
                link.upstream.write(data)
                await link.upstream.drain()
        except (OSError, ValueError):
            pass
        finally:
            self._drop(link)

    async def _pump_down(self, reader: asyncio.StreamReader, link: _Link) -> None:
        try:
            while data := await reader.read(65536):
                if self.latency:
                    await asyncio.sleep(self.latency)
                if self.blackhole:
                    continue
                limit = self.cut_replies_after
                if limit is not None and link.down + len(data) >= limit:
                    link.client.write(data[: max(0, limit - link.down)])
                    self.bytes_down += max(0, limit - link.down)
                    break
                link.down += len(data)
                self.bytes_down += len(data)
                link.client.write(data)
                await link.client.drain()
        except (OSError, ValueError):
            pass
        finally:
            self._drop(link)

    def _drop(self, link: _Link) -> None:
        if link in self._links:
            self._links.discard(link)
            link.client.close()
            link.upstream.close()
