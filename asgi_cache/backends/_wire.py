"""The wire layout of a Redis entry: a dependency header, then the entry bytes.

An entry stored with dependencies carries them in front of its bytes, so
`GET_SCRIPT` can check every (tag key, version) pair in
the same round trip as the read::

    b"\\xacD" | u16 count | count x (u16 len, tag key, u16 len, version) | entry bytes

The script answers with the stored bytes and the header's length, which the backend skips
(copying the entry out inside Redis would cost a third of the script); `decode_deps_header`
reads the header back for tools that look at the raw bytes (``asgi-cache inspect``), for the
L1 fill read (the version each tag was recorded at) and for the cluster backend, which
checks tag versions client-side.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

from .base import Dependency

DEPS_MAGIC: Final = b"\xacD"
"""The first two bytes of a dependency header (``\\172D`` in the Lua scripts)."""
_U16 = struct.Struct(">H")


def encode_deps_header(deps: Sequence[Dependency]) -> bytes:
    """Encode the dependency header that prefixes a stored entry."""
    parts = [DEPS_MAGIC, _U16.pack(len(deps))]
    for tag_key, version in deps:
        k, v = tag_key.encode(), version.encode()
        parts += (_U16.pack(len(k)), k, _U16.pack(len(v)), v)
    return b"".join(parts)


def decode_deps_header(data: bytes) -> tuple[list[Dependency], int] | None:
    """Parse the dependency header; return the dependencies and the offset of the entry.

    Returns ``None`` when ``data`` does not start with a well-formed header.
    """
    if data[:2] != DEPS_MAGIC or len(data) < 4:
        return None
    try:
        (count,) = _U16.unpack_from(data, 2)
        pos = 4
        deps = []
        for _ in range(count):
            (klen,) = _U16.unpack_from(data, pos)
            key = data[pos + 2 : pos + 2 + klen].decode()
            pos += 2 + klen
            (vlen,) = _U16.unpack_from(data, pos)
            version = data[pos + 2 : pos + 2 + vlen].decode()
            pos += 2 + vlen
            deps.append((key, version))
    except (struct.error, UnicodeDecodeError):
        return None
    if pos > len(data):
        return None
    return deps, pos
