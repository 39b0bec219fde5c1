"""The options of one write-behind name, checked once when it is built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from .._exceptions import ConfigurationError
from .._validate import FLAG, Check, one_of, problem, seconds, whole

BacklogPolicy = Literal["write_through", "refuse"]
"""What ``wb.write`` does when the backlog is at ``max_backlog``: hand the change to the
handler inline and then cache it (``write_through``), or raise
[`BacklogFullError`][asgi_cache.BacklogFullError] (``refuse``)."""

POLICIES: Final = ("write_through", "refuse")

_NAME: Final = Check(
    lambda v: (
        isinstance(v, str)
        and 0 < len(v) <= 100
        and v.isascii()
        and v.isprintable()
        and not any(c in v for c in " {}")
    ),
    "ASCII text of 1 to 100 characters without spaces or braces, such as 'user-visits'",
)


@dataclass(frozen=True, slots=True)
class WriteBehindOptions:
    """How one write-behind name writes, batches, retries and bounds its backlog."""

    batch_size: int = 100
    """Most changes per handler call."""
    max_deliveries: int = 5
    """Deliveries after which a change that still fails goes to the dead letter."""
    lease: float = 30.0
    """Seconds a worker owns a batch without renewing it; a batch idle longer (its worker
    died or stalled) is taken over by another worker. Renewed every third of it while the
    handler runs."""
    max_backlog: int = 100_000
    """Changes not yet handled past which ``on_backlog`` applies."""
    on_backlog: BacklogPolicy = "write_through"
    """What a write does when the backlog is full (see
    [`BacklogPolicy`][asgi_cache.write_behind.BacklogPolicy])."""
    write_timeout: float = 1.0
    """Time budget of one ``wb.write`` (its one script) in seconds."""
    poll: float = 1.0
    """Longest wait of an idle worker for new changes (bounded by half of ``op_timeout``
    on Redis) before it looks for abandoned batches again."""
    retry_backoff: float = 0.1
    """First wait after a failed handler call; doubled per delivery up to ``max_backoff``."""
    max_backoff: float = 30.0
    """Longest wait between retries."""
    coalesce: bool = True
    """Hand the handler only the newest change of each key in a batch (the older ones are
    acknowledged with it): the database writes saved."""

    @classmethod
    def build(
        cls,
        *,
        batch_size: int = 100,
        max_deliveries: int = 5,
        lease: float = 30.0,
        max_backlog: int = 100_000,
        on_backlog: BacklogPolicy = "write_through",
        write_timeout: float = 1.0,
        poll: float = 1.0,
        retry_backoff: float = 0.1,
        max_backoff: float = 30.0,
        coalesce: bool = True,
    ) -> WriteBehindOptions:
        """Check every option.

        Raises:
            ConfigurationError: An option has a value that is not allowed (named).
        """
        whole().require("batch_size", batch_size)
        whole().require("max_deliveries", max_deliveries)
        whole().require("max_backlog", max_backlog)
        for name, value in (
            ("lease", lease),
            ("write_timeout", write_timeout),
            ("poll", poll),
            ("retry_backoff", retry_backoff),
            ("max_backoff", max_backoff),
        ):
            seconds().require(name, value)
        one_of(POLICIES, "'write_through' or 'refuse'").require("on_backlog", on_backlog)
        FLAG.require("coalesce", coalesce)
        return cls(
            batch_size=batch_size,
            max_deliveries=max_deliveries,
            lease=float(lease),
            max_backlog=max_backlog,
            on_backlog=on_backlog,
            write_timeout=float(write_timeout),
            poll=float(poll),
            retry_backoff=float(retry_backoff),
            max_backoff=float(max_backoff),
            coalesce=coalesce,
        )


def check_name(name: object) -> str:
    """Return a write-behind ``name`` that is allowed.

    Raises:
        ConfigurationError: It is not (it becomes part of Redis keys and a hash tag).
    """
    return str(_NAME.require("name", name))


def check_handler(handler: object) -> None:
    """Check that ``handler`` is callable.

    Raises:
        ConfigurationError: It is not.
    """
    if not callable(handler):
        raise ConfigurationError(
            problem("handler", handler, "an async callable taking a list of changes")
        )
