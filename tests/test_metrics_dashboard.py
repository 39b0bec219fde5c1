"""``cache.dashboard_route()``: its JSON after scripted traffic, its read-only shell, and the
page itself in a real headless Chromium (Debian's ``chromium``, driven by Playwright with
``executable_path``; never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_cache import Cache, ConfigurationError

from .http_support import client_for, uvicorn_worker
from .metrics_support import site

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "images" / "dashboard.png"


async def test_data_json_after_scripted_traffic() -> None:
    cache = Cache.from_url("memory://", namespace="dash")
    calls: list[str] = []
    app = site(cache, calls, dash=cache.dashboard_route())
    async with cache, client_for(app) as client:
        for _ in range(4):
            await client.get("/items/1")
        await client.get("/items/2")
        await client.get("/items/2")
        await client.get("/items/3")
        await cache.invalidate_tags("items:1")
        data = (await client.get("/dash/data.json")).json()
    assert calls == ["/items/1", "/items/2", "/items/3"]
    assert data["namespace"] == "dash"
    assert data["hit_rate"] == round(4 / 7, 4)
    assert data["latency"]["hit"]["count"] == 4
    assert data["latency"]["origin"]["count"] == 3
    top = data["routes_by_traffic"][0]
    assert (top["route"], top["cached"], top["origin"]) == ("/items/{item_id}", 4, 3)
    assert data["routes_by_misses"][0]["origin"] == 3
    assert data["invalidations"]["by_kind"] == {"tag": 1}
    assert data["invalidations"]["pending"] == 0
    assert data["memory"]["max"] > 0
    assert data["status"] == "healthy"
    assert data["breaker"] is None
    assert data["l1"] is None
    assert data["write_behind"] is None


async def test_the_dashboard_is_read_only_and_self_contained() -> None:
    cache = Cache.from_url("memory://", namespace="ro")
    app = cache.dashboard_route()
    async with client_for(app) as client:
        page = await client.get("/")
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src 'self'" in csp
        for asset in ("dashboard.js", "dashboard.css"):
            assert f'"{asset}"' in page.text
            assert (await client.get(f"/{asset}")).status_code == 200
        assert "http" not in page.text.replace("http://www.w3.org", "")  # no CDN, no URL
        script = (await client.get("/dashboard.js")).text
        assert "innerHTML" not in script  # values go in as text
        assert (await client.get("/nothing")).status_code == 404
        for method in ("POST", "PUT", "DELETE"):
            refused = await client.request(method, "/data.json")
            assert refused.status_code == 405
            assert refused.headers["allow"] == "GET, HEAD"
    with pytest.raises(ConfigurationError, match="refresh=-1 is not allowed"):
        cache.dashboard_route(refresh=-1)


# -- the page in a real browser ----------------------------------------------------------------


def _chromium() -> str:
    """Debian's Chromium, or a skip (a failure with ``ASGI_CACHE_REQUIRE_BROWSER=1``)."""
    path = os.environ.get("ASGI_CACHE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    required = os.environ.get("ASGI_CACHE_REQUIRE_BROWSER") == "1"
    hint = "install Debian's chromium (apt-get install chromium) and asgi-cache[browser]"
    if not Path(path).exists():
        if required:
            pytest.fail(f"ASGI_CACHE_REQUIRE_BROWSER=1 but no Chromium at {path}: {hint}")
        pytest.skip(f"no Chromium at {path}: {hint}")
    try:
        import playwright.sync_api  # noqa: F401 - the browser extra
    except ImportError:
        if required:
            pytest.fail(f"ASGI_CACHE_REQUIRE_BROWSER=1 but Playwright is missing: {hint}")
        pytest.skip(f"Playwright is missing: {hint}")
    return path


@pytest.fixture
def dashboard_site() -> Iterator[str]:
    app = "tests.metrics_dashboard_app:create_app"
    with uvicorn_worker(dict(os.environ), app, ready="/up") as base:
        yield base


def test_the_page_shows_the_hit_rate_and_follows_traffic(
    dashboard_site: str, tmp_path: Path
) -> None:
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    with httpx.Client(base_url=dashboard_site, timeout=30) as http:
        for _ in range(4):  # 1 miss, 3 hits: 75 %
            assert http.get("/items/1").status_code == 200
        problems: list[str] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.on(
                    "console", lambda m: m.type in ("error", "warning") and problems.append(m.text)
                )
                page.on("pageerror", lambda exc: problems.append(str(exc)))
                page.on("requestfailed", lambda r: problems.append(f"failed {r.url}"))
                page.goto(f"{dashboard_site}/cache/")
                rate = page.locator("#hit-rate")
                _expect_text(page, "#hit-rate", "75.0 %")
                assert page.locator("#namespace").text_content() == "shop"
                for _ in range(4):  # 4 more hits: 7 of 8
                    http.get("/items/1")
                http.get("/catalogue")  # a miss of another route: 7 of 9
                http.get("/catalogue")  # and its hit: 8 of 10
                _expect_text(page, "#hit-rate", "80.0 %")
                # The routes table may show the refresh before (it is filled after the
                # figures): wait, bounded, for the row of the traffic just sent.
                page.wait_for_function(
                    "p => (document.querySelector('#routes-traffic tbody tr')"
                    " ?.textContent ?? '').startsWith(p)",
                    arg="/items/{item_id}71",  # route, cached, origin
                    timeout=30_000,
                )
                assert rate.text_content() == "80.0 %"
                assert page.locator("#hit-rate-chart polyline").count() == 1
                shot = (
                    SCREENSHOT
                    if os.environ.get("ASGI_CACHE_UPDATE_SCREENSHOT")
                    else tmp_path / "d.png"
                )
                page.screenshot(path=str(shot), full_page=True)
            finally:
                browser.close()
    assert problems == []


def _expect_text(page: Any, selector: str, expected: str) -> None:
    # Polls in the browser, bounded (the page refreshes every 0.2 s).
    page.wait_for_function(
        "([s, e]) => document.querySelector(s).textContent === e",
        arg=[selector, expected],
        timeout=30_000,
    )
