"""Every stored value round-trips with its type: models and dataclasses with ordinary field
types, hits of the type misses return, clear errors for what cannot be stored."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import ipaddress
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel, ConfigDict, HttpUrl

from asgi_cache import Cache, SerializationError

SERIALIZERS = ["json", "msgpack"]


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    city: str
    zip: str | None = None


class Profile(BaseModel):
    """A model with the field types apps use every day."""

    labels: set[str]
    frozen: frozenset[int]
    every: dt.timedelta
    site: HttpUrl
    ip: ipaddress.IPv4Address
    home: Path
    scores: dict[int, Address]
    price: Decimal
    seen: dt.datetime
    color: Color
    address: Address
    nickname: str | None = None
    blob: bytes = b""


PROFILE = Profile(
    labels={"a", "b"},
    frozen=frozenset({1, 2}),
    every=dt.timedelta(days=1, seconds=3, microseconds=7),
    site=HttpUrl("https://example.org/x?y=1"),
    ip=ipaddress.IPv4Address("10.1.2.3"),
    home=Path("/srv/app"),
    scores={1: Address(city="Oslo"), 20: Address(city="Rome", zip="00100")},
    price=Decimal("19.90"),
    seen=dt.datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
    color=Color.BLUE,
    address=Address(city="Lima"),
    blob=b"\xff\x00 not utf-8",  # JSON mode refuses these bytes: stored in Python mode
)


class StrictProfile(Profile):
    model_config = ConfigDict(strict=True)


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Shipment:
    """A dataclass with the same kinds of fields."""

    tags: set[str]
    frozen: frozenset[int]
    every: dt.timedelta
    ip: ipaddress.IPv4Address
    home: Path
    points: dict[int, Point]
    price: Decimal
    seen: dt.datetime
    color: Color
    origin: Point
    note: str | None = None


SHIPMENT = Shipment(
    tags={"fragile"},
    frozen=frozenset({3}),
    every=dt.timedelta(hours=5),
    ip=ipaddress.IPv4Address("192.0.2.1"),
    home=Path("/tmp/x"),
    points={1: Point(1, 2), 2: Point(3, 4)},
    price=Decimal("0.10"),
    seen=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    color=Color.RED,
    origin=Point(0, 0),
)


@pytest.fixture(params=SERIALIZERS)
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    c = Cache.from_url("memory://", serializer=request.param, ttl_jitter=0.0)
    async with c:
        yield c


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (PROFILE, Profile),
        (StrictProfile.model_validate(PROFILE.model_dump()), StrictProfile),
        (SHIPMENT, Shipment),
        ([SHIPMENT, SHIPMENT], list[Shipment]),
    ],
    ids=["model", "strict-model", "dataclass", "list-of-dataclasses"],
)
async def test_models_and_dataclasses_with_ordinary_fields_round_trip(
    cache: Cache, value: Any, kind: Any
) -> None:
    async def load() -> Any:
        return value

    miss = await cache.get_or_load("things:1:full", load, returns=kind)
    hit = await cache.get_or_load("things:1:full", load, returns=kind)
    assert cache.stats()["hits"] == 1
    assert miss == hit == value
    assert type(hit) is type(value)
    assert await cache.set("things:2:full", value)
    assert await cache.get("things:2:full", returns=kind) == value


async def test_plain_values_of_those_types_round_trip_without_a_type(cache: Cache) -> None:
    value = {
        "set": {1, 2},
        "frozen": frozenset({"a"}),
        "every": dt.timedelta(seconds=90),
        "home": Path("/srv"),
        "ip": ipaddress.ip_address("::1"),
        "net": ipaddress.ip_network("10.0.0.0/8"),
        "by_id": {1: "one", 2: "two"},
        "nested": [{3: (4, 5)}],
    }
    assert await cache.set("plain:1:x", value)
    back = await cache.get("plain:1:x")
    assert back == value
    assert type(back["by_id"]) is dict
    assert next(iter(back["by_id"])) == 1


class Handle:
    """A type no serializer knows."""


class Holder(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    name: str
    thing: Handle


async def test_an_unstorable_model_is_one_clear_error_then_served_uncached(
    cache: Cache,
) -> None:
    loads = 0

    async def load() -> Holder:
        nonlocal loads
        loads += 1
        return Holder(name="h", thing=Handle())

    with pytest.raises(SerializationError, match=r"'holders:1'.*Holder\.thing \(Handle\)"):
        await cache.get_or_load("holders:1", load)
    # Raised once: later values of the type are returned, uncached, without another error.
    for _ in range(3):
        assert isinstance(await cache.get_or_load("holders:1", load), Holder)
    assert loads == 4
    assert cache.stats()["hits"] == 0


async def test_behind_aside_an_unstorable_value_still_answers_200(
    cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    async def load_holder(holder_id: int) -> Holder:
        return Holder(name=str(holder_id), thing=Handle())

    dep = cache.aside(load_holder, key="holders:{holder_id}")
    app = FastAPI()

    @app.get("/holders/{holder_id}")
    async def show(holder: Holder = Depends(dep)) -> dict[str, str]:  # noqa: B008
        return {"name": holder.name}

    transport = httpx.ASGITransport(app=app)
    with caplog.at_level(logging.ERROR, logger="asgi_cache"):
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for _ in range(3):
                reply = await client.get("/holders/7")
                assert reply.status_code == 200
                assert reply.json() == {"name": "7"}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors  # logged once, not per request
    assert "Holder.thing (Handle)" in errors[0]


# -- a hit returns what a miss returns ---------------------------------------------------------


async def load_address() -> Address:
    return Address(city="Bern")


async def test_get_or_load_takes_the_type_from_the_loaders_annotation(cache: Cache) -> None:
    miss = await cache.get_or_load("addresses:1", load_address)
    hit = await cache.get_or_load("addresses:1", load_address)
    assert cache.stats()["hits"] == 1
    assert type(miss) is type(hit) is Address


async def test_a_model_stored_without_a_known_type_warns_once_with_the_fix(
    cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="asgi_cache"):
        for _ in range(3):
            await cache.get_or_load("addresses:2", lambda: load_address())
    warnings = [r.getMessage() for r in caplog.records if "hits and misses" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "lambda" in warnings[0]
    assert "returns=Address" in warnings[0]
    # The fix works: returns= rebuilds the hit.
    assert type(await cache.get_or_load("addresses:2", load_address, returns=Address)) is Address


async def test_cache_get_rebuilds_with_returns_and_warns_without(
    cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    await cache.set("addresses:3", Address(city="Kyiv"))
    assert await cache.get("addresses:3", returns=Address) == Address(city="Kyiv")
    with caplog.at_level(logging.WARNING, logger="asgi_cache"):
        assert await cache.get("addresses:3") == {"city": "Kyiv", "zip": None}
        await cache.get("addresses:3")
    warnings = [r.getMessage() for r in caplog.records if "returns=Address" in r.getMessage()]
    assert len(warnings) == 1, warnings
    # A value that does not fit the type asked for is a miss, not an exception.
    await cache.set("addresses:4", {"not": "an address"})
    assert await cache.get("addresses:4", returns=Address) is None
