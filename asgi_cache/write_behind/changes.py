"""What the handler is given: one [`Change`][asgi_cache.Change] per write, decoded from its
stream entry.

A change carries the caller's key, the new value (or that the key was deleted), the key's
version and an idempotency id. Versions grow with every write of a key (the backend's clock
in microseconds, or one more than the key's last version; set in the same atomic step that
appends the change, and still growing after Redis lost its data), so a handler can
apply changes as an upsert on ``(key, version)`` and skip one older than what the database
holds: redelivery is certain (at-least-once), and such a handler applies every change exactly
once in effect, whatever the order in which workers deliver them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from .._entries import CorruptEntry, decode_entry
from .._exceptions import SerializationError
from ..backends._streams import Fields, Record
from ..codec import Serializer
from ..keys import KeySpace


@dataclass(frozen=True, slots=True)
class Change:
    """One write to hand to the database."""

    key: str
    """The caller's key, as given to ``wb.write`` (``users:42:visits``)."""
    value: Any
    """The value written (models and dataclasses arrive as dicts); ``None`` for a delete."""
    deleted: bool
    """Whether the change deletes the key (``wb.delete``)."""
    version: int
    """The key's version: larger for every later write of the key (Redis's clock in
    microseconds, or one more than the previous version). Keep it with the row and skip a
    change whose version is not above the stored one."""
    id: str
    """Idempotency id: the same for every delivery of this change (dead-letter replays
    included), different for every other change."""
    written_at: float
    """When ``wb.write`` ran (seconds since the epoch, the writer's clock)."""
    entry_id: str
    """The change's entry in the stream (changes on a replay)."""


Handler = Callable[[list[Change]], Awaitable[Iterable[Change | str] | None]]
"""The database side: an async callable given a batch of changes.

It returns ``None`` when it committed all of them, or the changes (or their ids) it did
commit; the others are delivered again. An exception commits none of them.
"""


class DeadLetter(NamedTuple):
    """A change that failed ``max_deliveries`` times, kept with why."""

    id: str
    """Its id in the dead letter (pass it to ``wb.replay``)."""
    change: Change | None
    """The change (``None`` when its entry does not decode)."""
    reason: str
    """The handler's last error (``ExceptionType: message``) or why it could not be decoded."""
    deliveries: int
    """How many times it was delivered."""


def decode_change(record: Record, serializer: Serializer, keys: KeySpace) -> Change:
    """The change a stream entry holds (its value is the entry of ``keys.data(key)``).

    Raises:
        SerializationError: The entry is not a change this library wrote (or it is corrupt).
    """
    fields = record.fields or {}
    try:
        key = fields["k"].decode()
        deleted = fields["op"] == b"d"
        value = None
        if not deleted:
            value = serializer.decode(decode_entry(fields["v"], keys.data(key)))
        return Change(
            key=key,
            value=value,
            deleted=deleted,
            version=int(fields["n"]),
            id=fields["i"].decode(),
            written_at=int(fields["t"]) / 1000,
            entry_id=record.id,
        )
    except (KeyError, ValueError, UnicodeDecodeError, CorruptEntry) as exc:
        raise SerializationError(
            f"write-behind entry {record.id} is not a change: {type(exc).__name__}: {exc}"
        ) from exc


def dead_letter_of(record: Record, serializer: Serializer, keys: KeySpace) -> DeadLetter:
    """The dead letter a dead-letter stream entry holds."""
    fields: Fields = record.fields or {}
    try:
        change: Change | None = decode_change(record, serializer, keys)
    except SerializationError:
        change = None
    return DeadLetter(
        id=record.id,
        change=change,
        reason=fields.get("reason", b"").decode("utf-8", "replace"),
        deliveries=int(fields.get("deliveries", b"0") or 0),
    )


def committed_ids(batch: list[Change], result: Iterable[Change | str] | None) -> set[str]:
    """The idempotency ids of the changes of ``batch`` the handler committed."""
    if result is None:
        return {c.id for c in batch}
    if isinstance(result, str | bytes):
        raise TypeError(
            f"write-behind handler returned {result!r}: expected None (all committed) or the "
            "changes (or their ids) it committed"
        )
    done = {r.id if isinstance(r, Change) else str(r) for r in result}
    return {c.id for c in batch if c.id in done}
