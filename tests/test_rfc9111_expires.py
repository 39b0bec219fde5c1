"""RFC 9111 section 5.3 (``Expires``) and RFC 9110 section 5.6.7 (date formats), through
``CacheMiddleware(cache_all=True)``: only the three HTTP-date formats are dates, and "a
cache recipient MUST interpret invalid date formats, especially the value "0", as
representing a time in the past (i.e., "already expired")"."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from asgi_cache.http.dates import format_http_date, parse_http_date

from .rfc_support import Reply, Site

SiteFactory = Callable[..., Site]

_LONG_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def rfc850(when: float) -> str:
    t = time.gmtime(when)
    month = time.strftime("%b", t)
    return (
        f"{_LONG_DAYS[t.tm_wday]}, {t.tm_mday:02d}-{month}-{t.tm_year % 100:02d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def asctime(when: float) -> str:
    t = time.gmtime(when)
    return time.strftime("%a %b ", t) + f"{t.tm_mday:2d} " + time.strftime("%H:%M:%S %Y", t)


@pytest.mark.parametrize("form", [format_http_date, rfc850, asctime])
async def test_5_6_7_each_of_the_three_formats_is_accepted(
    site: SiteFactory, form: Callable[[float], str]
) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("expires", form(s.clock.time() + 3600))]))
    await s.get()
    s.clock.advance(1800)
    await s.get()
    assert s.calls() == 1


def _invalid_forms(when: float) -> dict[str, str]:
    imf = format_http_date(when)  # e.g. "Sun, 06 Nov 1994 08:49:37 GMT"
    day, date1, clock_ = imf[:3], imf[5:16], imf[17:25]
    return {
        "zero": "0",
        "one-digit hour": imf.replace(f" {clock_[:2]}:", f" {int(clock_[:2]) % 10}:"),
        "two-digit year": f"{day}, {date1[:7]}{date1[-2:]} {clock_} GMT",
        "UTC": imf.replace("GMT", "UTC"),
        "+0000": imf.replace("GMT", "+0000"),
        "dashes": f"{day}, {date1.replace(' ', '-')} {clock_} GMT",
        "extra space": imf.replace(" ", "  ", 1),
        "missing comma": imf.replace(",", ""),
        "periods in time": imf.replace(":", "."),
        "lowercase": imf.lower(),
        "wrong day name": ("Mon" if day != "Mon" else "Tue") + imf[3:],
        "two values": f"{imf}, {imf}",
        "garbage": "tomorrow",
    }


@pytest.mark.parametrize("name", sorted(_invalid_forms(0)))
async def test_5_3_invalid_expires_means_already_expired(site: SiteFactory, name: str) -> None:
    s = site()
    value = _invalid_forms(s.clock.time() + 3600)[name]
    assert parse_http_date(value) is None, value
    s.origin.script("/r", Reply(headers=[("expires", value)]))
    await s.get()
    response = await s.get()
    assert s.calls() == 2
    assert response.headers["cache-status"] == "asgi-cache; fwd=miss; detail=expired"


async def test_5_3_expires_on_two_lines_is_invalid(site: SiteFactory) -> None:
    s = site()
    later = s.date(3600)
    s.origin.script("/r", Reply(headers=[("expires", later), ("expires", later)]))
    await s.get()
    await s.get()
    assert s.calls() == 2


async def test_5_3_expires_in_the_past(site: SiteFactory) -> None:
    s = site()
    s.origin.script("/r", Reply(headers=[("expires", s.date(-10))]))
    await s.get()
    await s.get()
    assert s.calls() == 2


async def test_4_2_1_an_invalid_date_counts_as_absent(site: SiteFactory) -> None:
    # Expires minus the time of receipt when Date is not a date (RFC 9110 6.6.1).
    s = site()
    s.origin.script("/r", Reply(headers=[("expires", s.date(60)), ("date", "yesterday")]))
    await s.get()
    s.clock.advance(50)
    await s.get()
    assert s.calls() == 1


def test_5_6_7_rfc850_two_digit_years_are_in_the_past_50_years() -> None:
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777.0
    assert parse_http_date("Sun Nov  6 08:49:37 1994") == 784111777.0
    assert parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777.0
    assert parse_http_date("Sun, 31 Nov 1994 08:49:37 GMT") is None  # no such day
    assert parse_http_date("Sun, 06 Nov 1994 24:00:00 GMT") is None
