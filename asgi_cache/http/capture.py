"""Capturing the app's response on a miss: a small state machine over its ``send`` messages.

The exchange calls the app with `ResponseCapture` as its ``send``. The capture parses
the response start once (`ResponseFacts`), asks its owner (the exchange) what
the response is, and then, per `Mode`:

- ``PENDING``: nothing received yet;
- ``BUFFER``: a storable response is being collected (up to ``max_body_bytes``), nothing
  sent to the client yet, so the finished response can be stored first and then answered,
  with a 304 when the client's validators match. This lasts one message for most
  responses, whose whole body comes in one;
- ``TEE``: a storable response streams (its first chunk says more follow): the start and
  every chunk go to the client as they come, and a copy is kept while it stays within
  ``max_body_bytes``;
- ``STREAMED``: the last chunk was sent; the copy is stored once the app returns (not
  inside its ``send``, which a streaming response cancels when the client has it all);
- ``PASS``: not storable (or too large): the start is sent with its ``Cache-Status`` and
  every chunk is forwarded as it comes, never buffered;
- ``NOT_MODIFIED``: the app answered our revalidation with 304 (RFC 9111 section 4.3.4);
  its body is not used, the stored one is;
- ``ERROR_STALE``: the app answered 5xx inside the stale-if-error window (RFC 5861); its
  body is not used, the stale entry is served instead.

Transitions::

    PENDING --start--> BUFFER | PASS | NOT_MODIFIED | ERROR_STALE
    BUFFER --the whole body--> owner.complete (stored and answered), then PASS
    BUFFER --a chunk with more to come--> TEE (start and chunk sent)
    BUFFER --over max_body_bytes, unknown message, app returned early--> PASS (flushed)
    TEE --last chunk--> STREAMED --app returned--> owner.streamed (the copy stored)
    TEE --over max_body_bytes, unknown message, app returned early--> PASS (copy dropped)

The capture knows nothing of keys or stores: what is storable and what happens to a
complete response is the owner's (`CaptureOwner`).
"""

from __future__ import annotations

import enum
from typing import Protocol, assert_never

from starlette.types import Message, Send

from .rules import ResponseFacts

Headers = list[tuple[bytes, bytes]]


class Mode(enum.Enum):
    """What the capture does with the app's messages (see the module docstring)."""

    PENDING = "pending"
    BUFFER = "buffer"
    TEE = "tee"
    STREAMED = "streamed"
    PASS = "pass"
    NOT_MODIFIED = "not modified"
    ERROR_STALE = "error stale"


class CaptureOwner(Protocol):
    """What a capture asks of the exchange it works for."""

    def classify(self, facts: ResponseFacts, start: Message) -> Mode | str:
        """What the response starting with ``start`` is: `Mode.BUFFER` (storable),
        `Mode.NOT_MODIFIED`, `Mode.ERROR_STALE`, or why it is not storable (it
        then passes through)."""
        ...

    def passing(self, facts: ResponseFacts, detail: str) -> Headers:
        """The response goes to the client as the app sends it (``detail`` says why): the
        headers to send (the app's, as clients see them, and the outcome's)."""
        ...

    async def complete(self, facts: ResponseFacts, body: bytes) -> str | None:
        """The whole storable response: store and answer it, or say why it cannot be (the
        capture then sends it as it is, with that reason)."""
        ...

    async def finished(self, mode: Mode, facts: ResponseFacts) -> None:
        """The app returned after a response whose body is not used (``NOT_MODIFIED``,
        ``ERROR_STALE``): answer the client from the stored entry."""
        ...

    def streaming(self, facts: ResponseFacts) -> Headers:
        """A storable response streams to the client as the app sends it, a copy kept:
        the headers to send (nothing is known yet of whether it will be stored)."""
        ...

    def intact(self) -> bool:
        """Whether the client is still there: an app that saw it leave may end its body
        early, so what it sends after that is not stored."""
        ...

    async def streamed(self, facts: ResponseFacts, body: bytes) -> None:
        """The streamed response ended within the bound: store the copy."""
        ...

    def abandoned(self, detail: str) -> None:
        """The streamed copy is given up (``detail``: too large, unsupported, the app
        returned early): nothing will be stored."""
        ...


class ResponseCapture:
    """The ``send`` an app answers a miss through.

    Args:
        owner: Decides what the response is and answers a complete one.
        send: The client's ``send``.
        max_body_bytes: Largest body collected; a larger one passes through.
    """

    __slots__ = (
        "chunks",
        "facts",
        "head",
        "max_body_bytes",
        "mode",
        "owner",
        "send",
        "size",
        "start",
    )

    def __init__(
        self, owner: CaptureOwner, send: Send, *, max_body_bytes: int, head: bool = False
    ) -> None:
        self.owner = owner
        self.send = send
        self.max_body_bytes = max_body_bytes
        self.head = head
        """The client asked HEAD (the app answers a GET): what passes through goes without
        its body."""
        self.mode = Mode.PENDING
        self.facts: ResponseFacts | None = None
        self.start: Message = {}
        self.chunks: list[bytes] = []
        self.size = 0

    async def __call__(self, message: Message) -> None:
        """Take one message the app sends."""
        mode = self.mode
        if mode is Mode.PASS or mode is Mode.STREAMED:
            await self._pass(message)
            return
        kind = message["type"]
        if kind == "http.response.start":
            await self._on_start(message)
        elif kind == "http.response.body":
            if mode is Mode.TEE:
                await self._tee(message)
                return
            if mode is not Mode.BUFFER:
                return  # NOT_MODIFIED / ERROR_STALE: the app's body is not used
            body = message.get("body", b"")
            if body:
                self.chunks.append(body)
                self.size += len(body)
            more = message.get("more_body", False)
            if self.size > self.max_body_bytes:
                await self._flush("too-large", more)
            elif not more:
                await self._complete()
            else:
                await self._start_streaming()
        elif mode is Mode.BUFFER:  # trailers, pathsend...: not something we can replay
            await self._flush("unsupported", True)
            await self._pass(message)
        elif mode is Mode.TEE:
            self._give_up("unsupported")
            await self._pass(message)

    async def _start_streaming(self) -> None:
        """The response streams: send what came so far and keep sending, with a copy."""
        facts = self.facts
        if facts is None:  # pragma: no cover - BUFFER is only entered after the start
            return
        self.mode = Mode.TEE
        start = {**self.start, "headers": self.owner.streaming(facts)}
        if self.head:
            start.pop("trailers", None)
        await self.send(start)
        body = b"".join(self.chunks)
        self.chunks = [body]
        await self._pass({"type": "http.response.body", "body": body, "more_body": True})

    async def _tee(self, message: Message) -> None:
        """One more chunk of a streaming response: on to the client first, then the copy."""
        last = not message.get("more_body", False)
        # Asked before the last chunk goes out: a client leaving once it has it all cuts
        # nothing short.
        intact = last and self.owner.intact()
        await self._pass(message)
        body = message.get("body", b"")
        if body:
            self.chunks.append(body)
            self.size += len(body)
        if self.size > self.max_body_bytes:
            self._give_up("too-large")
        elif last:
            if intact:
                self.mode = Mode.STREAMED  # stored by finish(), once the app returned
            else:
                self._give_up("client-disconnected")

    def _give_up(self, detail: str) -> None:
        """Stop keeping the copy of a streaming response; the rest only passes through."""
        self.chunks = []
        self.mode = Mode.PASS
        self.owner.abandoned(detail)

    async def _pass(self, message: Message) -> None:
        """Send one of the app's messages on as it is; for HEAD, only the end of the body,
        empty (RFC 9110 section 9.3.2: the same header fields, no content)."""
        if not self.head:
            await self.send(message)
            return
        kind = message["type"]
        ends = kind == "http.response.pathsend" or (
            kind == "http.response.body" and not message.get("more_body", False)
        )
        if ends:
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    async def finish(self) -> None:
        """The app returned: answer whatever its messages left unanswered."""
        mode, facts = self.mode, self.facts
        match mode:
            case Mode.NOT_MODIFIED | Mode.ERROR_STALE:
                if facts is not None:
                    await self.owner.finished(mode, facts)
            case Mode.BUFFER:  # the app returned without its final chunk
                await self._flush("incomplete", False)
            case Mode.TEE:  # the same, once streaming: what was sent stays sent
                self._give_up("incomplete")
            case Mode.STREAMED:
                copy = b"".join(self.chunks)
                self.chunks = []
                if facts is not None:
                    await self.owner.streamed(facts, copy)
            case Mode.PENDING | Mode.PASS:
                pass
            case _:  # pragma: no cover - every mode is handled above
                assert_never(mode)

    async def _on_start(self, message: Message) -> None:
        facts = ResponseFacts.parse(message["status"], list(message.get("headers", [])))
        self.facts = facts
        self.start = message
        decision = self.owner.classify(facts, message)
        if isinstance(decision, str):
            self.mode = Mode.PASS
            await self._send_start(facts, decision)
            return
        self.mode = decision

    async def _send_start(self, facts: ResponseFacts, detail: str) -> None:
        headers = self.owner.passing(facts, detail)
        # Keep the app's other start keys (such as ``trailers``, which a HEAD answer has
        # none of).
        start = {**self.start, "headers": headers}
        if self.head:
            start.pop("trailers", None)
        await self.send(start)

    async def _flush(self, detail: str, more_body: bool) -> None:
        facts = self.facts
        if facts is None:  # pragma: no cover - BUFFER is only entered after the start
            return
        self.mode = Mode.PASS
        await self._send_start(facts, detail)
        body = b"".join(self.chunks)
        self.chunks = []
        if body or not more_body:  # no empty chunk before a pathsend message
            await self._pass({"type": "http.response.body", "body": body, "more_body": more_body})

    async def _complete(self) -> None:
        facts = self.facts
        if facts is None:  # pragma: no cover - BUFFER is only entered after the start
            return
        body = b"".join(self.chunks)
        self.chunks = [body]
        reason = await self.owner.complete(facts, body)
        if reason is not None:
            await self._flush(reason, False)
            return
        self.chunks = []
        self.mode = Mode.PASS  # anything the app sends after its last chunk goes through
