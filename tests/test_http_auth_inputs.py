"""Auth read by FastAPI dependencies never leaks through the cache (issue 11, item 2).

A hit is answered before FastAPI solves the route's dependencies, so every request input they
read is part of the key (hashed), or the route is not cached. Each test compares every answer
with the one the same app gives without the cache, and counts origin calls.
"""

# No ``from __future__ import annotations``: FastAPI must see the real annotations of the
# endpoints and dependencies defined inside the app factories below.

import logging
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any

import fastapi
import pytest
from fastapi import (
    APIRouter,
    Cookie,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Request,
    Response,
    Security,
)
from fastapi.security import (
    APIKeyCookie,
    APIKeyHeader,
    APIKeyQuery,
    HTTPAuthorizationCredentials,
    HTTPBearer,
    OAuth2PasswordBearer,
    OpenIdConnect,
)
from pydantic import BaseModel, ConfigDict

from asgi_cache import Cache, CacheMiddleware
from asgi_cache.backends import RedisBackend

from .http_support import client_for, command_calls, make_cache
from .redis_server import BEHAVIOUR_OP_TIMEOUT, RedisServer

KEYS = {"admin-secret": "admin", "user-secret": "user"}
Call = tuple[str, dict[str, str]]  # (url, headers)


def _user_for(key: str | None) -> str:
    if key is None:
        raise HTTPException(status_code=401, detail="no credentials")
    user = KEYS.get(key)
    if user is None:
        raise HTTPException(status_code=403, detail="bad credentials")
    return user


def _build(
    make_app: Callable[[Cache | None, Counter[str]], FastAPI],
    cache: Cache,
    **middleware: Any,
) -> tuple[FastAPI, FastAPI, Counter[str]]:
    """The app with the cache in front, the same app without it, and the origin counter."""
    calls: Counter[str] = Counter()
    cached = make_app(cache, calls)
    cached.add_middleware(CacheMiddleware, cache=cache, **middleware)
    reference = make_app(None, Counter())
    return cached, reference, calls


def _policy(cache: Cache | None, **options: Any) -> Callable[[Any], Any]:
    if cache is None:
        return lambda endpoint: endpoint
    return cache.response(**options)


async def _compare(cached: FastAPI, reference: FastAPI, sequence: list[Call]) -> list[Any]:
    """Send ``sequence`` to both apps; every cached answer must be the uncached one."""
    answers = []
    async with client_for(cached) as through_cache, client_for(reference) as direct:
        for url, headers in sequence:
            got = await through_cache.get(url, headers=headers)
            want = await direct.get(url, headers=headers)
            assert (got.status_code, got.content) == (want.status_code, want.content), (
                url,
                headers,
                got.headers.get("cache-status"),
            )
            answers.append(got)
    return answers


ADMIN = {"x-api-key": "admin-secret"}
CALLERS: list[dict[str, str]] = [
    ADMIN,
    ADMIN,  # a hit
    {},  # anonymous
    {"x-api-key": "wrong"},
    {"x-api-key": "user-secret"},  # another user
    {"x-api-key": "ADMIN-SECRET"},  # another case
    {"x-api-key": "admin-secret "},  # trailing whitespace
    {"X-Api-Key": "user-secret"},  # the header name's case does not matter
    ADMIN,
    {},
]


def scheme_app(scheme: Any, **options: Any) -> Callable[[Cache | None, Counter[str]], FastAPI]:
    """An app whose ``/r`` answers the user of the credential ``scheme`` reads."""

    def make(cache: Cache | None, calls: Counter[str]) -> FastAPI:
        app = FastAPI()

        @app.get("/r")
        @_policy(cache, ttl=60, **options)
        async def who(key: Annotated[str | None, Security(scheme)]) -> dict[str, str]:
            user = _user_for(key)
            calls[user] += 1
            return {"user": user}

        return app

    return make


def api_key_header_app(cache: Cache | None, calls: Counter[str]) -> FastAPI:
    scheme = APIKeyHeader(name="X-API-Key", auto_error=False)

    async def current_user(key: Annotated[str | None, Security(scheme)]) -> str:
        calls["auth"] += 1
        return _user_for(key)

    app = FastAPI()
    router = APIRouter()

    @router.get("/report")
    @_policy(cache, ttl=60)
    async def report(user: Annotated[str, Depends(current_user)]) -> dict[str, str]:
        calls[user] += 1
        return {"user": user, "data": f"{user}'s report"}

    app.include_router(router, prefix="/api")
    return app


async def test_api_key_header_is_part_of_the_key(web_cache: Cache) -> None:
    cached, reference, calls = _build(api_key_header_app, web_cache)
    answers = await _compare(cached, reference, [("/api/report", h) for h in CALLERS])
    assert [r.status_code for r in answers] == [200, 200, 401, 403, 200, 403, 403, 200, 200, 401]
    assert [r.headers["x-cache"] for r in answers if r.status_code == 200] == [
        "MISS",
        "HIT",
        "MISS",
        "HIT",
        "HIT",
    ]
    # Origin: admin and user once each; every refused caller on each of its requests.
    assert calls == {"admin": 1, "user": 1, "auth": 7}
    assert "x-api-key" in answers[0].headers["vary"].lower()


def header_param_app(cache: Cache | None, calls: Counter[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/me")
    @_policy(cache, ttl=60)
    async def me(x_user: Annotated[str | None, Header()] = None) -> dict[str, str]:
        # An X-User header set by an authenticating proxy.
        if x_user is None:
            raise HTTPException(status_code=401)
        calls[x_user] += 1
        return {"user": x_user}

    return app


async def test_header_parameter_set_by_a_proxy_is_part_of_the_key(web_cache: Cache) -> None:
    cached, reference, calls = _build(header_param_app, web_cache)
    sequence = [
        ("/me", {"x-user": "alice"}),
        ("/me", {"x-user": "alice"}),
        ("/me", {}),
        ("/me", {"x-user": "bob"}),
        ("/me", {"x-user": "Alice"}),
        ("/me", {}),
    ]
    answers = await _compare(cached, reference, sequence)
    assert [r.status_code for r in answers] == [200, 200, 401, 200, 200, 401]
    assert answers[1].headers["x-cache"] == "HIT"
    assert calls == {"alice": 1, "bob": 1, "Alice": 1}


@pytest.mark.parametrize("public", [False, True])
async def test_cookie_api_key_each_caller_gets_its_own_answer(
    web_cache: Cache, public: bool
) -> None:
    cached, reference, calls = _build(
        scheme_app(APIKeyCookie(name="session", auto_error=False), public=public), web_cache
    )
    admin = {"cookie": "session=admin-secret"}
    sequence = [
        ("/r", admin),
        ("/r", admin),
        ("/r", {}),
        ("/r", {"cookie": "session=wrong"}),
        ("/r", {"cookie": "session=user-secret"}),
        ("/r", {"cookie": "session=admin-secret; theme=dark"}),
    ]
    answers = await _compare(cached, reference, sequence)
    assert [r.status_code for r in answers] == [200, 200, 401, 403, 200, 200]
    if public:  # shared entries, one per Cookie header (hashed)
        assert answers[1].headers["x-cache"] == "HIT"
        assert calls == {"admin": 2, "user": 1}
    else:  # a request with a Cookie is private: it never touches the cache
        assert answers[1].headers["x-cache"] == "BYPASS"
        assert calls == {"admin": 3, "user": 1}


def cookie_param_app(cache: Cache | None, calls: Counter[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/home")
    @_policy(cache, ttl=60, public=True)
    async def home(theme: Annotated[str, Cookie()] = "light") -> dict[str, str]:
        calls[theme] += 1
        return {"theme": theme}

    return app


async def test_a_cookie_parameter_keys_public_entries_on_the_cookie(web_cache: Cache) -> None:
    cached, reference, calls = _build(cookie_param_app, web_cache)
    dark = {"cookie": "theme=dark"}
    sequence = [("/home", dark), ("/home", dark), ("/home", {}), ("/home", {"cookie": "theme=x"})]
    answers = await _compare(cached, reference, sequence)
    assert [r.headers["x-cache"] for r in answers] == ["MISS", "HIT", "MISS", "MISS"]
    assert calls == {"dark": 1, "light": 1, "x": 1}


def bearer_app(kind: str) -> Callable[[Cache | None, Counter[str]], FastAPI]:
    def make(cache: Cache | None, calls: Counter[str]) -> FastAPI:
        app = FastAPI()
        if kind == "bearer":
            bearer = HTTPBearer(auto_error=False)

            async def token(
                credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
            ) -> str | None:
                return None if credentials is None else credentials.credentials

        elif kind == "oauth2":
            oauth2 = OAuth2PasswordBearer(tokenUrl="/token", auto_error=False)

            async def token(value: Annotated[str | None, Security(oauth2)]) -> str | None:
                return value

        else:
            oidc = OpenIdConnect(openIdConnectUrl="/.well-known/openid", auto_error=False)

            async def token(value: Annotated[str | None, Security(oidc)]) -> str | None:
                return None if value is None else value.removeprefix("Bearer ")

        @app.get("/dashboard")
        @_policy(cache, ttl=60, public=True)
        async def dashboard(value: Annotated[str | None, Depends(token)]) -> dict[str, str]:
            user = _user_for(value)
            calls[user] += 1
            return {"user": user}

        return app

    return make


@pytest.mark.parametrize("kind", ["bearer", "oauth2", "oidc"])
async def test_public_route_with_a_bearer_scheme_keys_the_authorization(
    web_cache: Cache, kind: str
) -> None:
    # public=True lets Authorization requests be cached; the scheme's input is still keyed.
    cached, reference, calls = _build(bearer_app(kind), web_cache)
    admin = {"authorization": "Bearer admin-secret"}
    sequence = [
        ("/dashboard", admin),
        ("/dashboard", admin),
        ("/dashboard", {}),
        ("/dashboard", {"authorization": "Bearer wrong"}),
        ("/dashboard", {"authorization": "Bearer user-secret"}),
        ("/dashboard", admin),
    ]
    answers = await _compare(cached, reference, sequence)
    assert [r.status_code for r in answers] == [200, 200, 401, 403, 200, 200]
    assert [answers[i].headers["x-cache"] for i in (1, 5)] == ["HIT", "HIT"]
    assert calls == {"admin": 1, "user": 1}


async def verify_key(x_api_key: Annotated[str | None, Header()] = None) -> None:
    _user_for(x_api_key)


def dependency_level_app(level: str) -> Callable[[Cache | None, Counter[str]], FastAPI]:
    def make(cache: Cache | None, calls: Counter[str]) -> FastAPI:
        guard = [Depends(verify_key)]
        app = FastAPI(dependencies=guard if level == "app" else None)
        router = APIRouter(dependencies=guard if level == "router" else None)

        @router.get("/secrets/{name}")
        @_policy(cache, ttl=60)
        async def secret(name: str) -> dict[str, str]:
            calls[name] += 1
            return {"secret": f"the {name} plans"}

        middle = APIRouter()
        middle.include_router(router, dependencies=guard if level == "include" else None)
        app.include_router(middle, prefix="/v1")
        return app

    return make


@pytest.mark.parametrize("level", ["router", "include", "app"])
async def test_router_include_and_app_level_dependencies_are_read(
    web_cache: Cache, level: str
) -> None:
    cached, reference, calls = _build(dependency_level_app(level), web_cache)
    answers = await _compare(cached, reference, [("/v1/secrets/launch", h) for h in CALLERS[:6]])
    assert [r.status_code for r in answers] == [200, 200, 401, 403, 200, 403]
    assert calls == {"launch": 2}  # admin once, user once: each its own entry


def opaque_app(**options: Any) -> Callable[[Cache | None, Counter[str]], FastAPI]:
    def make(cache: Cache | None, calls: Counter[str]) -> FastAPI:
        async def tenant(request: Request) -> str:
            # Takes the request itself: it may read any header, so nothing can be keyed.
            return request.headers.get("x-tenant", "public")

        app = FastAPI()

        @app.get("/tenant")
        @_policy(cache, ttl=60, **options)
        async def which(name: Annotated[str, Depends(tenant)]) -> dict[str, str]:
            calls[name] += 1
            return {"tenant": name}

        return app

    return make


async def test_a_dependency_taking_the_request_makes_the_route_uncacheable(
    web_cache: Cache, caplog: pytest.LogCaptureFixture
) -> None:
    cached, reference, calls = _build(opaque_app(), web_cache)
    sequence = [("/tenant", {"x-tenant": "a"}), ("/tenant", {"x-tenant": "b"})] * 2
    with caplog.at_level(logging.INFO, logger="asgi_cache.http"):
        answers = await _compare(cached, reference, sequence)
    assert all(
        r.headers["cache-status"].endswith("fwd=bypass; detail=request-inputs") for r in answers
    )
    assert calls == {"a": 2, "b": 2}
    refusals = [r for r in caplog.records if "not caching" in r.getMessage()]
    assert len(refusals) == 1
    assert "tenant" in refusals[0].getMessage()
    assert refusals[0].levelno == logging.WARNING


async def test_vary_declares_what_an_opaque_dependency_reads(web_cache: Cache) -> None:
    cached, reference, calls = _build(opaque_app(vary=["x-tenant"]), web_cache)
    sequence = [("/tenant", {"x-tenant": "a"}), ("/tenant", {"x-tenant": "b"})] * 2
    answers = await _compare(cached, reference, sequence)
    assert [r.headers["x-cache"] for r in answers] == ["MISS", "MISS", "HIT", "HIT"]
    assert calls == {"a": 1, "b": 1}


QUERY_KEY = APIKeyQuery(name="token", auto_error=False)


async def test_api_key_in_the_query_is_keyed_by_the_url(web_cache: Cache) -> None:
    cached, reference, calls = _build(scheme_app(QUERY_KEY), web_cache)
    urls = ["/r?token=admin-secret", "/r?token=admin-secret", "/r", "/r?token=x"]
    answers = await _compare(cached, reference, [(u, {}) for u in urls])
    assert [r.status_code for r in answers] == [200, 200, 401, 403]
    assert answers[1].headers["x-cache"] == "HIT"
    assert calls == {"admin": 1}


async def test_an_ignored_query_parameter_read_by_auth_makes_the_route_uncacheable(
    web_cache: Cache,
) -> None:
    cached, reference, calls = _build(
        scheme_app(QUERY_KEY), web_cache, ignored_query_params=["tok*"]
    )
    urls = ["/r?token=admin-secret", "/r?token=admin-secret", "/r?token=x"]
    answers = await _compare(cached, reference, [(u, {}) for u in urls])
    assert [r.status_code for r in answers] == [200, 200, 403]
    assert answers[1].headers["x-cache"] == "BYPASS"
    assert calls == {"admin": 2}


async def test_cache_all_mode_keys_dependency_inputs_too(web_cache: Cache) -> None:
    def make(cache: Cache | None, calls: Counter[str]) -> FastAPI:
        scheme = APIKeyHeader(name="X-API-Key", auto_error=False)
        app = FastAPI()

        @app.get("/shared")
        async def shared(
            key: Annotated[str | None, Security(scheme)], response: Response
        ) -> dict[str, str]:
            user = _user_for(key)
            calls[user] += 1
            response.headers["cache-control"] = "public, max-age=60"
            return {"user": user}

        return app

    cached, reference, calls = _build(make, web_cache, cache_all=True)
    answers = await _compare(cached, reference, [("/shared", h) for h in CALLERS[:5]])
    assert [r.status_code for r in answers] == [200, 200, 401, 403, 200]
    assert answers[1].headers["x-cache"] == "HIT"
    assert calls == {"admin": 1, "user": 1}


async def test_redis_cost_of_keyed_and_refused_routes(
    redis_server: RedisServer, redis_url: str
) -> None:
    cache = make_cache(RedisBackend(redis_url, op_timeout=BEHAVIOUR_OP_TIMEOUT))
    keyed, _, calls = _build(api_key_header_app, cache)
    refused, _, _ = _build(opaque_app(), cache)
    async with client_for(keyed) as a, client_for(refused) as b:
        await a.get("/api/report", headers=ADMIN)  # warm: connection, scripts, vary memory
        redis_server.command("CONFIG", "RESETSTAT")
        for _ in range(10):
            await b.get("/tenant", headers={"x-tenant": "a"})
        idle = command_calls(redis_server)
        hit = await a.get("/api/report", headers=ADMIN)
        hit_cost = command_calls(redis_server)
    await cache.backend.aclose()
    assert idle == {}  # a refused route costs no Redis command
    assert hit.headers["x-cache"] == "HIT"
    assert hit_cost == {"evalsha": 1, "get": 3}  # one round trip, as on any route
    assert calls == {"admin": 1, "auth": 1}


class CustomScheme(APIKeyHeader):
    """A scheme with its own ``__call__``: it may read anything."""

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        return request.headers.get("x-api-key") or request.query_params.get("k")


async def test_a_security_scheme_with_its_own_call_makes_the_route_uncacheable(
    web_cache: Cache,
) -> None:
    cached, reference, calls = _build(
        scheme_app(CustomScheme(name="X-API-Key", auto_error=False)), web_cache
    )
    sequence = [("/r?k=admin-secret", {}), ("/r?k=admin-secret", {}), ("/r", ADMIN)]
    answers = await _compare(cached, reference, sequence)
    assert [r.headers["x-cache"] for r in answers] == ["BYPASS"] * 3
    assert calls == {"admin": 3}


HEADER_MODELS = tuple(int(p) for p in fastapi.__version__.split(".")[:2]) >= (0, 115)


class TenantHeaders(BaseModel):
    x_tenant: str = "public"


class StrictTenantHeaders(TenantHeaders):
    model_config = ConfigDict(extra="forbid")


def header_model_app(model: type[TenantHeaders]) -> Callable[[Cache | None, Counter[str]], FastAPI]:
    def make(cache: Cache | None, calls: Counter[str]) -> FastAPI:
        app = FastAPI()

        @app.get("/model")
        @_policy(cache, ttl=60)
        async def by_model(headers: Annotated[model, Header()]) -> dict[str, str]:  # type: ignore[valid-type]
            calls[headers.x_tenant] += 1
            return {"tenant": headers.x_tenant}

        return app

    return make


@pytest.mark.skipif(not HEADER_MODELS, reason="header models came with FastAPI 0.115")
async def test_header_model_fields_are_keyed(web_cache: Cache) -> None:
    cached, reference, calls = _build(header_model_app(TenantHeaders), web_cache)
    sequence = [("/model", {"x-tenant": "a"}), ("/model", {"x-tenant": "b"})] * 2 + [("/model", {})]
    answers = await _compare(cached, reference, sequence)
    assert [r.headers["x-cache"] for r in answers] == ["MISS", "MISS", "HIT", "HIT", "MISS"]
    assert calls == {"a": 1, "b": 1, "public": 1}


@pytest.mark.skipif(not HEADER_MODELS, reason="header models came with FastAPI 0.115")
async def test_a_header_model_forbidding_extras_reads_every_header(web_cache: Cache) -> None:
    # extra="forbid" answers 422 to any header it does not name: its answer depends on all.
    cached, reference, calls = _build(header_model_app(StrictTenantHeaders), web_cache)
    sequence = [("/model", {"x-tenant": "a"})] * 2
    answers = await _compare(cached, reference, sequence)
    assert [r.headers["x-cache"] for r in answers] == ["BYPASS", "BYPASS"]
    assert [r.status_code for r in answers] == [422, 422]  # host, user-agent... are extras
    assert calls == {}
