"""The shared workload: the 1 KB JSON body every system serves and the Zipf key sampler.

Pure Python with no third-party imports, so the unit tests can exercise it from the
project's own environment.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
from collections.abc import Iterable
from functools import lru_cache

#: Size of the JSON body every system serves (the issue's 1 KB body, 1007 bytes exactly).
BODY_BYTES = 1007


def _compact(value: object) -> bytes:
    # Starlette's JSONResponse and msgspec both emit compact separators, so the size on the
    # wire is the size computed here whichever framework serializes it.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@lru_cache(maxsize=1)
def _vocabulary() -> tuple[str, ...]:
    # Made-up words of 2-10 letters: text that compresses about as well as prose does, so a
    # cache that compresses what it stores gets a realistic, not a repeated-phrase, benefit.
    rnd = random.Random(7)
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    weights = [26 - i for i in range(26)]
    return tuple("".join(rnd.choices(letters, weights, k=rnd.randint(2, 10))) for _ in range(600))


def _text(item_id: int, length: int) -> str:
    rnd = random.Random(item_id)
    words = _vocabulary()
    parts: list[str] = []
    size = 0
    while size < length:
        word = rnd.choice(words)
        parts.append(word)
        size += len(word) + 1
    return " ".join(parts)[:length]


@lru_cache(maxsize=20_000)
def payload(item_id: int) -> dict[str, object]:
    """The record for ``item_id``: a JSON object whose compact encoding is BODY_BYTES long.

    Its free text is made of seeded made-up words (different per id), so it compresses
    roughly like real text (see :func:`gzip_ratio`), not like a repeated phrase.
    """
    record: dict[str, object] = {
        "id": item_id,
        "name": f"Item {item_id}",
        "email": f"user{item_id}@example.com",
        "roles": ["reader", "writer"],
        "score": 42.5,
        "active": True,
        "bio": "",
    }
    filler = BODY_BYTES - len(_compact(record))
    record["bio"] = _text(item_id, filler)
    return record


def gzip_ratio(item_id: int = 7) -> float:
    """Size of the body gzipped (level 6) over its size: how compressible the workload is."""
    import gzip

    raw = body_bytes(item_id)
    return len(gzip.compress(raw, 6)) / len(raw)


def body_bytes(item_id: int) -> bytes:
    """The compact JSON encoding of :func:`payload` (what a correct server sends)."""
    return _compact(payload(item_id))


class Zipf:
    """Draws ranks 1..n with probability proportional to 1 / rank**s (seeded, reproducible).

    Args:
        n: Number of distinct keys.
        s: The exponent; 1.0 is classic Zipf.
        seed: Seed of the private random generator.
    """

    def __init__(self, n: int, s: float = 1.0, *, seed: int = 1) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if s <= 0:
            raise ValueError(f"s must be > 0, got {s}")
        self.n = n
        self.s = s
        self._cdf = list(itertools.accumulate(1.0 / (k**s) for k in range(1, n + 1)))
        self._total = self._cdf[-1]
        self._random = random.Random(seed)

    def probability(self, rank: int) -> float:
        """The probability of drawing ``rank``."""
        return (1.0 / rank**self.s) / self._total

    def draw(self) -> int:
        """One rank in 1..n."""
        i = bisect.bisect_left(self._cdf, self._random.random() * self._total)
        return min(i, self.n - 1) + 1


def seed_operations(
    count: int, *, users: int = 10_000, s: float = 1.0, write_ratio: float = 0.1, seed: int = 1
) -> list[tuple[str, int]]:
    """The seed workload: ``count`` operations ``("GET"|"PUT", user_id)`` over Zipf user ids."""
    zipf = Zipf(users, s, seed=seed)
    rnd = random.Random(seed + 1)
    return [("PUT" if rnd.random() < write_ratio else "GET", zipf.draw()) for _ in range(count)]


def ideal_hit_rate(operations: Iterable[tuple[str, int]], *, count_from: int = 0) -> float:
    """Hit rate of a perfect cache (unbounded, instant) on ``operations``.

    A GET hits when its key was read before and not written since; a PUT invalidates. This is
    the ceiling any real cache can reach on the same sequence. Operations before index
    ``count_from`` warm the cache but are not counted.
    """
    cached: set[int] = set()
    gets = hits = 0
    for i, (op, key) in enumerate(operations):
        if op == "PUT":
            cached.discard(key)
            continue
        counted = i >= count_from
        gets += counted
        if key in cached:
            hits += counted
        else:
            cached.add(key)
    return hits / gets if gets else 0.0


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, nearest-rank."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100.0 * len(sorted_values))))
    return sorted_values[rank - 1]
