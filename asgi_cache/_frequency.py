"""How often keys were asked for, approximately: the L1 near-cache's admission filter.

A `FrequencySketch` is a count-min sketch with small saturating counters and periodic
halving (the TinyLFU scheme of Einziger, Friedman and Manes, "TinyLFU: A Highly Efficient
Cache Admission Policy", 2017). Every L1 lookup counts its key; when the L1 is full, a new
key is admitted only if it was asked for more often than the entry it would evict, so a scan
of one-off keys never pushes the hot ones out. Halving every counter after a sample of
``10 x capacity`` counts (as Caffeine does) makes old popularity fade, so a key that stopped
being hot is evicted in its turn.

A *doorkeeper* (the set of keys seen once since the last halving) takes every key's first
count, so one-off keys never touch the shared counters and cannot inflate the estimates of
the others. A count-min estimate never undercounts (up to the halving); it may overcount when
keys share counters, which only makes admission a little more generous. Memory: ``depth x
width`` bytes plus the doorkeeper (at most ``sample`` hashes).
"""

from __future__ import annotations

from typing import Final

_MAX_COUNT: Final = 15
"""Counters saturate here (4-bit counters, as in TinyLFU): beyond it, hot is hot."""
_MASK64: Final = (1 << 64) - 1
_MULTIPLIERS: Final = (
    0x9E3779B97F4A7C15,
    0xC2B2AE3D27D4EB4F,
    0x165667B19E3779F9,
    0xD6E8FEB86659FD93,
)
"""Odd 64-bit constants (golden ratio, xxHash and Murmur primes), one per row."""
_QUARTER: Final = (1 << 16) - 1
"""The widest row mask the four quarters of a 64-bit hash fill."""
_HALVED: Final = bytes(c >> 1 for c in range(256))
"""A translation table halving every counter of a row in one C call."""
_SAMPLE_FACTOR: Final = 10
"""Counts between two halvings, per key the cache holds."""


class FrequencySketch:
    """Approximate access counts of keys, in a fixed amount of memory.

    Args:
        capacity: How many keys the cache it guards holds; the sketch has 16 to 32 times
            as many counters per row (a power of two), so that a key rarely shares all its
            counters with hot keys (64 KiB for 1,000 entries).
    """

    __slots__ = ("_additions", "_doorkeeper", "_mask", "_rows", "_shift", "sample", "width")

    def __init__(self, capacity: int) -> None:
        width = 16
        while width < 16 * capacity:
            width *= 2
        self.width = width
        self._mask = width - 1
        self._shift = 64 - (width.bit_length() - 1)
        self._rows = [bytearray(width) for _ in _MULTIPLIERS]
        self.sample = _SAMPLE_FACTOR * max(capacity, 1)
        """Counts after which every counter is halved."""
        self._additions = 0
        self._doorkeeper: set[int] = set()

    def _slots(self, key: str) -> list[int]:
        # The 64-bit str hash (randomised per process, so no client can aim at one counter):
        # for rows of at most 2**16 counters (L1s of up to 4,096 entries), its four 16-bit
        # quarters, one per row, independent as the hash bits are (no multiplication: every
        # L1 lookup counts); for wider rows, one multiplicative (Fibonacci) hash per row, the
        # top bits of each product independent enough that a key rarely shares all its
        # counters with another.
        h = hash(key) & _MASK64
        mask = self._mask
        if mask <= _QUARTER:
            return [h & mask, (h >> 16) & mask, (h >> 32) & mask, (h >> 48) & mask]
        shift = self._shift
        return [((h * m) & _MASK64) >> shift for m in _MULTIPLIERS]

    def add(self, key: str) -> None:
        """Count one access of ``key``."""
        self._additions += 1
        h = hash(key)
        if h not in self._doorkeeper:
            self._doorkeeper.add(h)  # a first sighting: only the doorkeeper knows it
        else:
            for row, slot in zip(self._rows, self._slots(key), strict=True):
                if row[slot] < _MAX_COUNT:
                    row[slot] += 1
        if self._additions >= self.sample:
            self._halve()

    def estimate(self, key: str) -> int:
        """How often ``key`` was counted (never less than the truth since the last halving,
        divided by two for each halving since)."""
        seen = 1 if hash(key) in self._doorkeeper else 0
        return seen + min(row[slot] for row, slot in zip(self._rows, self._slots(key), strict=True))

    def _halve(self) -> None:
        self._additions //= 2
        self._doorkeeper.clear()
        for row in self._rows:
            row[:] = row.translate(_HALVED)
