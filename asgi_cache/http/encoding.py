"""Content coding of stored bodies: gzip once when storing, never again on a hit.

On Redis (not in process memory, where a smaller entry saves little), a compressible body
at least ``compress_min_bytes`` long is stored gzip-coded when that saves at least an eighth
of it: Redis then holds less than the body, and a hit for a client that accepts gzip (nearly
all of them) sends the stored bytes as they are, with ``Content-Encoding: gzip``. A client
that does not accept gzip gets the identity body, decompressed on the hit (byte-identical to
what the app sent). Every answer from such an entry says ``Vary: Accept-Encoding`` (RFC 9110
section 12.5.5), and the gzip representation has its own ETag (RFC 9110 section 8.8.3: a
strong validator names one representation).

Never compressed: bodies the app already encoded (``Content-Encoding``), responses with
``Cache-Control: no-transform`` (RFC 9110 section 7.7), types that are compressed already
(images, archives, media), statuses other than 200.
"""

from __future__ import annotations

import zlib
from functools import lru_cache
from typing import Final

GZIP_LEVEL: Final = 6
"""zlib's default level: compression runs once per stored response, not per hit."""
_GZIP_WBITS: Final = 31  # deflate with the gzip header and trailer (RFC 1952)
_TEXTUAL: Final = (b"text/", b"json", b"xml", b"javascript", b"ecmascript", b"svg", b"csv")


def compressible_type(content_type: bytes) -> bool:
    """Whether a body of ``content_type`` (lowercase) is text-like and worth compressing."""
    media = content_type.partition(b";")[0]
    return any(token in media for token in _TEXTUAL)


def try_gzip(body: bytes) -> bytes | None:
    """The gzip coding of ``body`` if it saves at least an eighth, else ``None``."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
    coded = compressor.compress(body) + compressor.flush()
    return coded if len(coded) <= len(body) - len(body) // 8 else None


def gunzip(coded: bytes) -> bytes:
    """The identity body of a gzip-coded one."""
    return zlib.decompress(coded, _GZIP_WBITS)


@lru_cache(maxsize=256)
def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (RFC 9110 section 12.5.3).

    ``gzip`` or ``x-gzip`` with a non-zero weight, or ``*`` with one when gzip is not named.
    Clients send few distinct values, so results are memoized.
    """
    star: bool | None = None
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if coding in ("gzip", "x-gzip"):
            return weight > 0
        if coding == "*":
            star = weight > 0
    return bool(star)


def gzip_etag(etag: bytes) -> bytes:
    """The ETag of the gzip representation: ``"abc"`` becomes ``"abc-gzip"``."""
    if etag.endswith(b'"') and len(etag) >= 2:
        return etag[:-1] + b'-gzip"'
    return etag


def add_vary_accept_encoding(headers: list[tuple[bytes, bytes]]) -> None:
    """Name ``Accept-Encoding`` in ``headers``' ``Vary`` (in place), adding one if needed."""
    for i, (name, value) in enumerate(headers):
        if name == b"vary":
            low = value.lower()
            if b"accept-encoding" not in low and low.strip() != b"*":
                headers[i] = (name, value + b", accept-encoding")
            return
    headers.append((b"vary", b"accept-encoding"))
