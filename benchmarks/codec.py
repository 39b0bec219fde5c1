"""JSON or MessagePack for cached values: sizes and speeds with asgi-cache's own codec.

``python3 -m benchmarks.codec`` (in the project's .venv, which has msgpack; no Redis, no
peers, a few seconds) encodes and decodes representative values with
``asgi_cache.codec.Serializer("json")`` (orjson) and ``Serializer("msgpack")``, exactly as the
cache does for ``cache.set`` / ``get_or_load`` values, and prints a Markdown table: body bytes,
and the median microseconds of one encode and one decode (each figure the lowest median of
several rounds, since other load only ever slows a round down). A second table times the
libraries alone (``orjson.dumps``, ``msgpack.packb`` with ``default=str``), the floor under
the codec's own work (type tagging of tuples, UUIDs, dates, decimals). The figures quoted in
docs/patterns/serialization.md come from this command.

Only value bodies are measured: the entry header (49 bytes) and the Redis key cost the same
with either serializer, and HTTP responses are stored as raw bytes whatever the serializer.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgpack
import orjson

from asgi_cache._entries import Entry
from asgi_cache.codec import Serializer

SERIALIZERS = ("json", "msgpack")


def representative_values() -> dict[str, Any]:
    """The values measured, by name: the kinds of things apps put in a cache."""
    profile = {
        "id": 4217,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "bio": "Mathematician; wrote the first program for the Analytical Engine.",
        "langs": ["en", "fr"],
        "active": True,
        "score": 4.87,
    }
    product = {
        "id": 90210,
        "sku": "KT-1700-RED",
        "title": "Electric kettle, 1.7 l, red",
        "price_cents": 3499,
        "currency": "EUR",
        "stock": 12,
        "tags": ["kitchen", "appliances", "sale"],
        "attributes": {"power_w": 2200, "volume_l": 1.7, "colour": "red", "cordless": True},
        "description": " ".join(["Boils a full jug in under four minutes, switches off"] * 8),
        "reviews": [
            {"user": 1000 + i, "stars": 1 + i % 5, "text": "Works as described, quiet."}
            for i in range(10)
        ],
    }
    rows = [
        {"id": i, "name": f"user{i}", "score": i * 0.5, "active": i % 3 != 0, "group": i % 7}
        for i in range(100)
    ]
    numbers = list(range(1000))
    typed = {
        "order": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "placed_at": dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC),
        "total": Decimal("199.90"),
        "lines": [(sku, qty) for sku, qty in (("KT-1700-RED", 1), ("FL-22", 3), ("MUG-01", 6))],
    }
    return {
        "user profile (dict, 7 fields)": profile,
        "product page (nested, 10 reviews)": product,
        "100 rows (list of dicts)": rows,
        "1,000 integers": numbers,
        "order with UUID, datetime, Decimal, tuples": typed,
    }


def _median_us(fn: Callable[[], Any], calls: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        samples = []
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - t0)
        best = min(best, statistics.median(samples) / 1000)
    return best


def measure(calls: int = 2000, rounds: int = 5) -> list[dict[str, Any]]:
    """One row per value: ``value``, then ``<serializer>_bytes/_encode_us/_decode_us``.

    Every value is checked to round-trip exactly through both serializers first.
    """
    codecs = {name: Serializer(name) for name in SERIALIZERS}
    rows = []
    for label, value in representative_values().items():
        row: dict[str, Any] = {"value": label}
        for name, codec in codecs.items():
            kind, body, tagged, _ = codec.encode(value)
            entry = Entry(kind, body, 0.0, 0.0, 0.0, tagged=tagged)
            if codec.decode(entry) != value:
                raise AssertionError(f"{label} does not round-trip through {name}")
            row[f"{name}_bytes"] = len(body)
            row[f"{name}_encode_us"] = _median_us(
                lambda c=codec, v=value: c.encode(v), calls, rounds
            )
            row[f"{name}_decode_us"] = _median_us(
                lambda c=codec, e=entry: c.decode(e), calls, rounds
            )
        row["orjson_alone_us"] = _median_us(
            lambda v=value: orjson.dumps(v, default=str), calls, rounds
        )
        row["msgpack_alone_us"] = _median_us(
            lambda v=value: msgpack.packb(v, default=str), calls, rounds
        )
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table, msgpack's figures relative to JSON's."""
    lines = [
        "| value | JSON bytes | msgpack bytes | size | JSON encode us | msgpack encode us "
        "| JSON decode us | msgpack decode us |",
        "| :-- | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['value']} | {r['json_bytes']:,} | {r['msgpack_bytes']:,} "
            f"| {r['msgpack_bytes'] / r['json_bytes'] - 1:+.0%} "
            f"| {r['json_encode_us']:.1f} | {r['msgpack_encode_us']:.1f} "
            f"| {r['json_decode_us']:.1f} | {r['msgpack_decode_us']:.1f} |"
        )
    return "\n".join(lines)


def floor_table(rows: list[dict[str, Any]]) -> str:
    """Encode time of the codec against the library alone, per value."""
    lines = [
        "| value | JSON encode us | orjson alone us | msgpack encode us | msgpack alone us |",
        "| :-- | --: | --: | --: | --: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['value']} | {r['json_encode_us']:.1f} | {r['orjson_alone_us']:.1f} "
            f"| {r['msgpack_encode_us']:.1f} | {r['msgpack_alone_us']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.codec", description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per figure")
    args = parser.parse_args(argv)
    rows = measure(args.calls, args.rounds)
    print(
        f"median of {args.calls:,} calls, best of {args.rounds} rounds; Python "
        f"{sys.version.split()[0]}, orjson {orjson.__version__}, msgpack "
        f"{'.'.join(map(str, msgpack.version))}"
    )
    print(table(rows))
    print()
    print(floor_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
