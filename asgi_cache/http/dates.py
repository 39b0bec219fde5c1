"""HTTP-date parsing and formatting, exactly as RFC 9110 section 5.6.7 defines it.

A recipient MUST accept the three formats (section 5.6.7), and nothing else is a date:

- ``IMF-fixdate``: ``Sun, 06 Nov 1994 08:49:37 GMT`` (fixed length, case-sensitive names,
  two-digit day, hour, minute and second, four-digit year, the zone spelled ``GMT``);
- the obsolete RFC 850 form: ``Sunday, 06-Nov-94 08:49:37 GMT`` (full day name, dashes, a
  two-digit year read as the most recent year in the past with those digits when it would
  otherwise be more than 50 years in the future);
- the obsolete asctime form: ``Sun Nov  6 08:49:37 1994`` (a space-padded day).

Anything else (a one-digit hour, a two-digit year in the IMF form, ``UTC`` or ``+0000``,
dashes in the IMF form, extra or missing spaces, a missing comma, periods in the time,
several values, lowercase names, ``0``) is not a date. What an invalid date means depends on
the field: an invalid ``Expires`` means already expired (RFC 9111 section 5.3), an invalid
``If-Modified-Since`` is ignored (RFC 9110 section 13.1.3), an invalid ``Date`` counts as
absent. Python's ``email.utils`` accepts all of those variants, so it is not used here.

Traffic Server and Varnish parse the same three formats strictly (``ink_time`` /
``VTIM_parse``); httpd's ``apr_date_parse_http`` also accepts some RFC 822 variants.
"""

from __future__ import annotations

import calendar
import re
import time
from typing import Final

_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LONG_DAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
_MONTH_NUMBER: Final = {name: i + 1 for i, name in enumerate(_MONTHS)}

_DAY = "|".join(_DAYS)
_LONG_DAY = "|".join(_LONG_DAYS)
_MONTH = "|".join(_MONTHS)
_TIME = r"(\d\d):(\d\d):(\d\d)"
_IMF: Final = re.compile(rf"({_DAY}), (\d\d) ({_MONTH}) (\d{{4}}) {_TIME} GMT", re.ASCII)
_RFC850: Final = re.compile(rf"({_LONG_DAY}), (\d\d)-({_MONTH})-(\d\d) {_TIME} GMT", re.ASCII)
_ASCTIME: Final = re.compile(rf"({_DAY}) ({_MONTH}) ([ \d]\d) {_TIME} (\d{{4}})", re.ASCII)


def parse_http_date(value: str | None) -> float | None:
    """An HTTP-date as unix seconds, or ``None`` when ``value`` is not exactly one.

    Surrounding whitespace is allowed (it is not part of a field value, RFC 9110 section
    5.5); inside the date, only the single spaces the grammar has.
    """
    if not value:
        return None
    text = value.strip(" \t")
    if match := _IMF.fullmatch(text):
        weekday, day, month, year, hour, minute, second = match.groups()
        return _timestamp(int(year), month, day, hour, minute, second, weekday, _DAYS)
    if match := _RFC850.fullmatch(text):
        weekday, day, month, short_year, hour, minute, second = match.groups()
        return _timestamp(
            _full_year(int(short_year)), month, day, hour, minute, second, weekday, _LONG_DAYS
        )
    if match := _ASCTIME.fullmatch(text):
        weekday, month, day, hour, minute, second, year = match.groups()
        return _timestamp(int(year), month, day.strip(), hour, minute, second, weekday, _DAYS)
    return None


def _full_year(two_digits: int) -> int:
    # RFC 9110 section 5.6.7: a two-digit year more than 50 years in the future means the
    # most recent past year with the same last two digits.
    this_year = time.gmtime().tm_year
    year = this_year - this_year % 100 + two_digits
    if year > this_year + 50:
        year -= 100
    return year


def _timestamp(
    year: int,
    month: str,
    day: str,
    hour: str,
    minute: str,
    second: str,
    weekday: str,
    names: tuple[str, ...],
) -> float | None:
    h, m, s = int(hour), int(minute), int(second)
    if h > 23 or m > 59 or s > 60:  # 60: a leap second (section 5.6.7)
        return None
    d = int(day)
    mon = _MONTH_NUMBER[month]
    if d < 1 or d > calendar.monthrange(year, mon)[1]:
        return None
    # The day name is redundant; a wrong one makes the value not a date of the grammar's
    # meaning, and is refused (as Traffic Server does) rather than guessed at.
    if names[calendar.weekday(year, mon, d)] != weekday:
        return None
    return float(calendar.timegm((year, mon, d, h, m, min(s, 59), 0, 0, 0)))


def format_http_date(timestamp: float) -> str:
    """``timestamp`` as an IMF-fixdate (the only format a sender may generate)."""
    t = time.gmtime(timestamp)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )
