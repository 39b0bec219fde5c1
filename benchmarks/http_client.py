"""A small HTTP/1.1 keep-alive client on asyncio streams, for loopback load generation.

Lighter than a general client (no pooling logic, no TLS, no redirects): the fallback load
generator, the stampede bursts and the seed workload need many concurrent requests from one
Python process without the client being the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class Response:
    """Status, lowercase headers and body of one response."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class Connection:
    """One keep-alive connection to ``host:port``; reconnects when the server closed it."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect now (otherwise the first request connects)."""
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.timeout
        )

    async def close(self) -> None:
        """Close the connection."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    def prepare(self, method: str, path: str, body: bytes = b"") -> bytes:
        """The bytes of one request (build them before a burst so sending is cheap)."""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if body or method in {"PUT", "POST", "PATCH"}:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        return head.encode() + b"\r\n" + body

    async def request(self, method: str, path: str, body: bytes = b"") -> Response:
        """Send one request and read its whole response."""
        return await self.send(self.prepare(method, path, body))

    async def send(self, raw: bytes) -> Response:
        """Send prepared request bytes and read the response.

        A reused connection that the server had closed (its keep-alive timeout) is reopened
        and the request sent once more, as HTTP clients do.
        """
        reused = self._writer is not None
        try:
            return await self._send_once(raw)
        except (ConnectionError, asyncio.IncompleteReadError):
            if not reused:
                raise
        return await self._send_once(raw)

    async def _send_once(self, raw: bytes) -> Response:
        if self._writer is None:
            await self.open()
        assert self._reader is not None
        assert self._writer is not None
        try:
            self._writer.write(raw)
            return await asyncio.wait_for(self._read(self._reader), self.timeout)
        except BaseException:
            await self.close()
            raise

    async def _read(self, reader: asyncio.StreamReader) -> Response:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked(reader)
        else:
            body = b""
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Response(status, headers, body)

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
