"""cache.aside as a FastAPI dependency and a plain helper; type fidelity of hits."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel

from asgi_cache import Cache, CacheSettings, ConfigurationError
from asgi_cache._rebuild import rebuilder
from asgi_cache.aside import template_fields


class User(BaseModel):
    id: int
    name: str
    joined: dt.datetime


@dataclasses.dataclass(frozen=True)
class Address:
    street: str
    city: str


@dataclasses.dataclass
class Account:
    id: int
    owner: Address
    tags: tuple[str, ...]
    previous: list[Address] = dataclasses.field(default_factory=list)
    note: str | None = None


JOINED = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


class FakeDB:
    """Stands in for a database session; counts queries."""

    def __init__(self) -> None:
        self.queries = 0
        self.closed = 0

    async def user(self, user_id: int) -> User | None:
        self.queries += 1
        if user_id == 404:
            return None
        return User(id=user_id, name=f"user {user_id}", joined=JOINED)


DB = FakeDB()


async def get_db() -> AsyncIterator[FakeDB]:
    yield DB
    DB.closed += 1


async def load_user(user_id: int, db: Annotated[FakeDB, Depends(get_db)]) -> User | None:
    """Load one user from the database."""
    return await db.user(user_id)


@pytest.fixture
async def client(cache: Cache) -> AsyncIterator[httpx.AsyncClient]:
    DB.queries = DB.closed = 0
    app = FastAPI()
    profile_dep = cache.aside(
        load_user, key="users:{user_id}:profile", ttl=3600, tags=["users:{user_id}"]
    )

    @app.get("/profiles/{user_id}")
    # A default, not Annotated: with postponed annotations FastAPI cannot see local names.
    async def profile(user: User | None = Depends(profile_dep)) -> dict[str, Any]:  # noqa: B008
        # The handler sees a real User on hits and misses alike.
        if user is None:
            return {"found": False}
        assert type(user) is User
        return {"found": True, "user": user.model_dump(mode="json")}

    @app.put("/profiles/{user_id}")
    async def update(user_id: int) -> dict[str, bool]:
        await cache.invalidate_tags(f"users:{user_id}")
        return {"ok": True}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_fastapi_dependency_resolves_the_loaders_own_params(
    client: httpx.AsyncClient, cache: Cache
) -> None:
    first = await client.get("/profiles/7")
    second = await client.get("/profiles/7")
    assert first.status_code == second.status_code == 200
    assert (
        first.json()
        == second.json()
        == {
            "found": True,
            "user": {"id": 7, "name": "user 7", "joined": "2026-01-02T03:04:05Z"},
        }
    )
    assert DB.queries == 1  # the second request was a hit
    assert DB.closed == 2  # FastAPI ran (and closed) get_db for the loader both times
    stored = await cache.get("users:7:profile", returns=User)
    assert stored == User(id=7, name="user 7", joined=JOINED)
    other = await client.get("/profiles/8")
    assert other.json()["user"]["id"] == 8
    assert DB.queries == 2


async def test_fastapi_missing_row_is_cached_negatively(client: httpx.AsyncClient) -> None:
    assert (await client.get("/profiles/404")).json() == {"found": False}
    assert (await client.get("/profiles/404")).json() == {"found": False}
    assert DB.queries == 1


async def test_fastapi_tag_template_is_filled_from_the_path(client: httpx.AsyncClient) -> None:
    await client.get("/profiles/7")
    await client.get("/profiles/8")
    await client.put("/profiles/7")
    await client.get("/profiles/7")
    await client.get("/profiles/8")
    assert DB.queries == 3  # 7 reloaded after its invalidation, 8 still cached


async def test_fastapi_path_param_validation_still_applies(client: httpx.AsyncClient) -> None:
    response = await client.get("/profiles/not-a-number")
    assert response.status_code == 422
    assert DB.queries == 0


async def test_signature_mirrors_the_loader(cache: Cache) -> None:
    dep = cache.aside(load_user, key="users:{user_id}:profile")
    sig = inspect.signature(dep)
    assert list(sig.parameters) == ["user_id", "db"]
    assert sig.parameters["user_id"].annotation is int
    assert sig.return_annotation == User | None
    assert dep.__name__ == "load_user"
    assert dep.__doc__ == "Load one user from the database."


async def load_user_default_style(user_id: int, db: FakeDB = Depends(get_db)) -> User | None:  # noqa: B008
    return await db.user(user_id)


async def test_fastapi_default_style_depends_in_the_loader(cache: Cache) -> None:
    DB.queries = 0
    app = FastAPI()
    dep = cache.aside(load_user_default_style, key="users:{user_id}:profile")

    @app.get("/u/{user_id}")
    async def handler(user: User = Depends(dep)) -> dict[str, Any]:  # noqa: B008
        return {"type": type(user).__name__, "id": user.id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/u/3")).json() == {"type": "User", "id": 3}
        assert (await c.get("/u/3")).json() == {"type": "User", "id": 3}
    assert DB.queries == 1


async def test_plain_awaitable_helper_outside_fastapi(cache: Cache) -> None:
    db = FakeDB()
    profile = cache.aside(load_user, key="users:{user_id}:profile")
    miss = await profile(5, db=db)
    hit = await profile(user_id=5, db=db)
    assert db.queries == 1
    assert miss == hit
    assert type(miss) is type(hit) is User


# -- type fidelity: a hit returns what a miss returned -----------------------------------------


async def users_list() -> list[User]:
    return [User(id=i, name=f"u{i}", joined=JOINED) for i in range(3)]


async def one_account() -> Account:
    return Account(
        id=1,
        owner=Address("Main St 1", "Springfield"),
        tags=("a", "b"),
        previous=[Address("Old Rd 2", "Shelbyville")],
    )


async def maybe_user(found: bool) -> User | None:
    return User(id=9, name="nine", joined=JOINED) if found else None


async def account_map() -> dict[str, Account | None]:
    return {"x": await one_account(), "y": None}


@pytest.mark.parametrize(
    ("loader", "kwargs"),
    [
        (users_list, {}),
        (one_account, {}),
        (maybe_user, {"found": True}),
        (maybe_user, {"found": False}),
        (account_map, {}),
    ],
    ids=["list-of-models", "dataclass", "optional-model", "none", "dict-of-dataclasses"],
)
async def test_hit_equals_miss_in_value_and_type(
    cache: Cache, loader: Any, kwargs: dict[str, Any]
) -> None:
    key = ":".join(["fidelity", loader.__name__, *("{" + name + "}" for name in kwargs)])
    helper = cache.aside(loader, key=key)
    miss = await helper(**kwargs)
    hit = await helper(**kwargs)
    assert cache.stats()["loads"] == 1
    assert cache.stats()["hits"] == 1
    assert hit == miss
    assert type(hit) is type(miss)
    if isinstance(miss, list):
        assert all(type(h) is type(m) for h, m in zip(hit, miss, strict=True))


async def test_get_or_load_rebuilds_with_returns(cache: Cache) -> None:
    miss = await cache.get_or_load("accounts:1:full", one_account, returns=Account)
    hit = await cache.get_or_load("accounts:1:full", one_account, returns=Account)
    assert hit == miss
    assert type(hit) is Account
    assert type(hit.owner) is Address
    assert type(hit.tags) is tuple
    # Without returns=, the loader's own annotation (-> Account) rebuilds the hit...
    assert type(await cache.get_or_load("accounts:1:full", one_account)) is Account
    # ...and a lambda, which has none, gets the stored shape.
    raw = await cache.get_or_load("accounts:1:full", lambda: one_account())
    assert isinstance(raw, dict)


async def test_a_stored_shape_that_no_longer_fits_is_a_miss(cache: Cache) -> None:
    await cache.set("users:1:profile", {"id": "not a number", "name": "x"})
    user = await cache.get_or_load("users:1:profile", lambda: maybe_user(True), returns=User | None)
    assert type(user) is User
    assert cache.stats()["loads"] == 1


@pytest.mark.parametrize(
    "annotation",
    [Account, list[Account], Account | None, dict[str, Account], tuple[Address, Address]],
)
def test_walker_without_pydantic_matches_pydantic(annotation: Any) -> None:
    account = Account(id=1, owner=Address("s", "c"), tags=("t",), note="n")
    values = {
        Account: account,
        list[Account]: [account, account],
        Account | None: account,
        dict[str, Account]: {"k": account},
        tuple[Address, Address]: (Address("a", "b"), Address("c", "d")),
    }
    value = values[annotation]
    stored = _as_stored(value)
    walk = rebuilder(annotation, use_pydantic=False)
    with_pydantic = rebuilder(annotation)
    assert walk is not None
    assert with_pydantic is not None
    assert walk(stored) == value == with_pydantic(stored)
    assert walk(None) is None


def test_walker_handles_models_and_plain_values() -> None:
    walk = rebuilder(list[User] | None, use_pydantic=False)
    assert walk is not None
    stored = [{"id": 1, "name": "a", "joined": JOINED}]
    assert walk(stored) == [User(id=1, name="a", joined=JOINED)]
    assert rebuilder(int) is None  # plain JSON types need no rebuilding
    assert rebuilder(dict[str, list[int]]) is None
    assert rebuilder(inspect.Signature.empty) is None
    account_walk = rebuilder(Account, use_pydantic=False)
    assert account_walk is not None
    with pytest.raises(TypeError, match="cannot rebuild Account"):
        account_walk(["not", "a", "dict"])
    already = Account(id=1, owner=Address("s", "c"), tags=())
    assert account_walk(already) is already


def test_walker_unions_and_annotated() -> None:
    account = Account(id=1, owner=Address("s", "c"), tags=("t",))
    stored = _as_stored(account)
    for annotation in (Address | Account, None | Account, int | Account):
        walk = rebuilder(annotation, use_pydantic=False)
        assert walk is not None
        assert walk(stored) == account
    walk = rebuilder(Annotated[list[Account], "meta"], use_pydantic=False)
    assert walk is not None
    assert walk([stored]) == [account]
    walk = rebuilder(Address | None, use_pydantic=False)
    assert walk is not None
    assert walk(["not", "an", "address"]) == ["not", "an", "address"]  # left as it is


def _as_stored(value: Any) -> Any:
    """What the JSON codec hands back for ``value`` (dataclasses become dicts)."""
    from asgi_cache._entries import Entry, EntryKind
    from asgi_cache.codec import Serializer

    serializer = Serializer("json")
    kind, body, tagged, _ = serializer.encode(value)
    return serializer.decode(
        Entry(
            kind=EntryKind(kind),
            body=body,
            created_at=0,
            fresh_until=0,
            stale_until=0,
            tagged=tagged,
        )
    )


# -- configuration errors ----------------------------------------------------------------------


async def test_template_naming_an_unknown_parameter_is_rejected() -> None:
    cache = Cache()
    with pytest.raises(ConfigurationError, match=r"user is not a parameter.*user_id, db"):
        cache.aside(load_user, key="users:{user}:profile")
    with pytest.raises(ConfigurationError, match="tags="):
        cache.aside(load_user, key="users:{user_id}", tags="users:{user_id}")
    with pytest.raises(ConfigurationError, match="loader="):
        cache.aside("not callable", key="k")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="expected a str"):
        cache.aside(load_user, key=42)  # type: ignore[arg-type]


def test_template_fields() -> None:
    assert template_fields("users:{user_id}:{user.name}:{items[0]}") == {"user_id", "user", "items"}
    with pytest.raises(ConfigurationError, match="fields must name"):
        template_fields("users:{}")
    with pytest.raises(ConfigurationError, match="not allowed"):
        template_fields("users:{user_id")


async def test_unresolvable_annotation_is_reported() -> None:
    async def local_loader(x: int) -> Undefined:  # type: ignore[name-defined]  # noqa: F821
        return None

    with pytest.raises(ConfigurationError, match="cannot resolve"):
        Cache().aside(local_loader, key="k:{x}")


async def test_settings_defaults_apply_to_aside() -> None:
    async with Cache(CacheSettings(ttl_jitter=0, default_ttl=123)) as cache:
        helper = cache.aside(maybe_user, key="users:{found}")
        await helper(True)
        entry = await cache._store.read(cache.keys.data("users:True"))
        assert entry is not None
        assert entry.fresh_until - entry.created_at == pytest.approx(123)


async def test_filled_keys_are_unambiguous_and_always_valid(cache: Cache) -> None:
    async def load_pair(a: str, b: str) -> str:
        return f"{a}|{b}"

    pair = cache.aside(load_pair, key="pairs:{a}:{b}", tags=["pairs:{a}"])
    assert await pair("1:2", "3") == "1:2|3"
    assert await pair("1", "2:3") == "1|2:3"  # not the entry of ("1:2", "3")
    assert await cache.get("pairs:1%3A2:3") == "1:2|3"
    assert await pair("line\r\nbreak", "100%") == "line\r\nbreak|100%"
    assert await cache.get("pairs:line%0D%0Abreak:100%25") == "line\r\nbreak|100%"
    assert cache.stats()["loads"] == 3


async def test_request_values_that_make_no_valid_key_bypass_the_cache(cache: Cache) -> None:
    app = FastAPI()
    calls: list[str] = []

    async def load_item(name: str) -> dict[str, str]:
        calls.append(name)
        return {"name": name}

    dep = cache.aside(load_item, key="items:{name}", tags=["items:{name}"])

    @app.get("/items/{name}")
    async def item(value: dict[str, str] = Depends(dep)) -> dict[str, str]:  # noqa: B008
        return value

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        newline = await c.get("/items/a%0Ab")
        assert newline.status_code == 200
        assert newline.json() == {"name": "a\nb"}
        huge = "x" * 2000
        for _ in range(2):
            response = await c.get(f"/items/{huge}")
            assert response.status_code == 200
        star = await c.get("/items/*")  # the tag '*' is reserved: bypass, not a 500
        assert star.status_code == 200
    assert calls == ["a\nb", huge, huge, "*"]  # oversized keys are never cached
