"""The demo's database: a users table behind SQLAlchemy's async engine.

SQLite (aiosqlite, a file in a temporary directory) by default; PostgreSQL (asyncpg) when a
``postgresql://`` URL is given. Reads are made realistically slow: each read holds its pooled
connection for ``delay`` seconds, as a slow query would, so without a cache concurrent clients
queue for the pool's few connections. Every SQL statement sent is counted in
`UserStore.queries`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, delete, event, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .._exceptions import ConfigurationError

_FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia"]
_LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]


class _Base(DeclarativeBase):
    pass


class UserRow(_Base):
    """One user of the demo service."""

    __tablename__ = "asgi_cache_demo_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    email: Mapped[str]
    bio: Mapped[str]
    updated_at: Mapped[float]

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict."""
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "bio": self.bio,
            "updated_at": self.updated_at,
        }


class ViewRow(_Base):
    """A user's page-view count, saved by write-behind (with the version of the change)."""

    __tablename__ = "asgi_cache_demo_views"

    user_id: Mapped[int] = mapped_column(primary_key=True)
    views: Mapped[int]
    version: Mapped[int] = mapped_column(BigInteger)


def async_url(url: str) -> str:
    """Map a plain database URL to its async driver (``sqlite+aiosqlite``,
    ``postgresql+asyncpg``).

    Raises:
        ConfigurationError: The URL is not a SQLite or PostgreSQL URL.
    """
    scheme, sep, rest = url.partition("://")
    drivers = {
        "sqlite": "sqlite+aiosqlite",
        "sqlite+aiosqlite": "sqlite+aiosqlite",
        "postgres": "postgresql+asyncpg",
        "postgresql": "postgresql+asyncpg",
        "postgresql+asyncpg": "postgresql+asyncpg",
    }
    if not sep or scheme not in drivers:
        raise ConfigurationError(
            f"DATABASE_URL={url!r} is not allowed: expected sqlite:///path/to/file.db or "
            "postgresql://user@host:port/database"
        )
    return f"{drivers[scheme]}://{rest}"


class UserStore:
    """The users table with a slow read path and a statement counter.

    Args:
        url: A SQLite or PostgreSQL URL (see `async_url`).
        delay: Seconds each read holds its connection, like a slow query.
        pool_size: Connections in the pool (SQLAlchemy's default is 5); no overflow.
    """

    def __init__(self, url: str, *, delay: float = 0.1, pool_size: int = 5) -> None:
        self.url = async_url(url)
        self.delay = delay
        self.queries = 0
        self.writes = 0
        """Write transactions on the view counts: one per direct write, one per batch."""
        options: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 0}
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._count)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)

    def _count(self, *args: Any) -> None:
        self.queries += 1

    async def prepare(self, users: int, *, seed: int = 7, reset: bool = False) -> None:
        """Create the table and fill it with ``users`` rows if it is empty (or ``reset``)."""
        async with self.engine.begin() as conn:
            if reset:
                await conn.run_sync(_Base.metadata.drop_all)
            await conn.run_sync(_Base.metadata.create_all)
            count = (await conn.execute(select(func.count()).select_from(UserRow))).scalar_one()
            if count:
                return
            rng = random.Random(seed)
            now = time.time()
            rows = []
            for user_id in range(1, users + 1):
                first, last = rng.choice(_FIRST), rng.choice(_LAST)
                rows.append(
                    {
                        "id": user_id,
                        "name": f"{first} {last}",
                        "email": f"{first.lower()}.{last.lower()}{user_id}@example.com",
                        "bio": f"{first} writes software. User number {user_id}.",
                        "updated_at": now,
                    }
                )
            await conn.execute(insert(UserRow), rows)

    async def get(self, user_id: int) -> dict[str, Any] | None:
        """One user, or ``None`` (a slow read)."""
        async with self._sessions() as session:
            row = await session.get(UserRow, user_id)
            await asyncio.sleep(self.delay)  # the slow query still holds its connection
            return None if row is None else row.as_dict()

    async def list(self, *, limit: int = 20, offset: int = 0) -> list[dict[str, Any]]:
        """A page of users ordered by id (a slow read)."""
        async with self._sessions() as session:
            query = select(UserRow).order_by(UserRow.id).limit(limit).offset(offset)
            rows = (await session.scalars(query)).all()
            await asyncio.sleep(self.delay)
            return [row.as_dict() for row in rows]

    async def upsert(self, user_id: int, data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create or replace a user; return it and whether it was created."""
        async with self._sessions.begin() as session:
            row = await session.get(UserRow, user_id)
            created = row is None
            if row is None:
                row = UserRow(id=user_id, **data, updated_at=time.time())
                session.add(row)
            else:
                for name, value in data.items():
                    setattr(row, name, value)
                row.updated_at = time.time()
            await session.flush()
            return row.as_dict(), created

    async def delete(self, user_id: int) -> bool:
        """Delete a user; return whether it existed."""
        async with self._sessions.begin() as session:
            result = await session.execute(delete(UserRow).where(UserRow.id == user_id))
            return bool(getattr(result, "rowcount", 0))

    async def views(self, user_id: int) -> int:
        """A user's saved view count (0 when none)."""
        async with self._sessions() as session:
            row = await session.get(ViewRow, user_id)
            return 0 if row is None else row.views

    async def add_view(self, user_id: int) -> int:
        """Count one view with a write of its own (the app without write-behind): one
        upsert, so concurrent counts of one user add up."""
        statement = self._insert({"user_id": user_id, "views": 1, "version": 0})
        statement = statement.on_conflict_do_update(
            index_elements=[ViewRow.user_id], set_={"views": ViewRow.views + 1}
        ).returning(ViewRow.views)
        async with self._sessions.begin() as session:
            views: int = (await session.execute(statement)).scalar_one()
        self.writes += 1
        return views

    def _insert(self, rows: Any) -> Any:
        build = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        return build(ViewRow).values(rows)

    async def save_views(self, counts: Sequence[tuple[int, int, int]]) -> None:
        """Save ``(user_id, views, version)`` rows in one transaction, as an upsert on
        (user_id, version): a change not newer than the saved row changes nothing, so a
        change delivered twice by write-behind is harmless."""
        if not counts:
            return
        rows = [{"user_id": u, "views": n, "version": v} for u, n, v in counts]
        statement = self._insert(rows)
        statement = statement.on_conflict_do_update(
            index_elements=[ViewRow.user_id],
            set_={"views": statement.excluded.views, "version": statement.excluded.version},
            where=ViewRow.version < statement.excluded.version,
        )
        async with self._sessions.begin() as session:
            await session.execute(statement)
        self.writes += 1

    async def aclose(self) -> None:
        """Close the pool's connections."""
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets writers commit while slow readers hold their connections.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
