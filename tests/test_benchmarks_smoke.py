"""Smoke tests of the benchmark harness's pure parts: no timing, no servers, no peers."""

from __future__ import annotations

import json
from collections import Counter

from benchmarks import codec as codec_bench
from benchmarks import hit_instructions
from benchmarks.report import (
    hit_cost_table,
    seed_table,
    tables,
    targets,
    write_behind_table,
)
from benchmarks.workload import (
    BODY_BYTES,
    Zipf,
    body_bytes,
    gzip_ratio,
    ideal_hit_rate,
    payload,
    percentile,
    seed_operations,
)


def test_body_is_exactly_1007_bytes_of_json_for_any_id() -> None:
    for item_id in (0, 7, 12_345, 10_000_000):
        raw = body_bytes(item_id)
        assert len(raw) == BODY_BYTES == 1007
        assert json.loads(raw) == payload(item_id)
        assert payload(item_id)["id"] == item_id
    assert payload(1)["bio"] != payload(2)["bio"]
    # Made-up words compress like prose, not like a repeated phrase.
    assert 0.4 < gzip_ratio(7) < 0.8


def test_zipf_is_seeded_in_range_and_skewed_like_its_probabilities() -> None:
    a, b = Zipf(1000, 1.0, seed=3), Zipf(1000, 1.0, seed=3)
    assert [a.draw() for _ in range(100)] == [b.draw() for _ in range(100)]
    zipf = Zipf(1000, 1.0, seed=3)
    counts = Counter(zipf.draw() for _ in range(20_000))
    assert set(counts) <= set(range(1, 1001))
    assert counts.most_common(1)[0][0] == 1
    # Rank 1 is drawn about 1/H(1000) = 13.4 % of the time; rank 2 half as often.
    assert abs(counts[1] / 20_000 - zipf.probability(1)) < 0.01
    assert abs(counts[2] / counts[1] - 0.5) < 0.08
    assert abs(sum(zipf.probability(r) for r in range(1, 1001)) - 1.0) < 1e-9


def test_seed_operations_mix_and_ideal_hit_rate() -> None:
    ops = seed_operations(5000, users=100, write_ratio=0.1, seed=5)
    assert ops == seed_operations(5000, users=100, write_ratio=0.1, seed=5)
    puts = sum(op == "PUT" for op, _ in ops)
    assert 400 < puts < 600
    # GET 1 (miss), GET 1 (hit), PUT 1, GET 1 (miss), GET 2 (miss) -> 1 hit of 4 GETs.
    seq = [("GET", 1), ("GET", 1), ("PUT", 1), ("GET", 1), ("GET", 2)]
    assert ideal_hit_rate(seq) == 0.25
    assert ideal_hit_rate(seq, count_from=3) == 0.0
    assert ideal_hit_rate([]) == 0.0


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 50) == 5.0
    assert percentile(values, 99) == 10.0
    assert percentile(values, 0) == 1.0


def _results() -> dict[str, object]:
    hit = {"p90_us": 1.0, "origin_calls_timed": 0, "x_cache": "HIT"}
    return {
        "phases": {
            "hit_cost": {
                "rows": {
                    "bare": {**hit, "median_us": 100.0, "x_cache": ""},
                    "asgi-cache-redis": {**hit, "median_us": 50.0},
                },
                "errors": {"cashews": "exit 1: boom"},
            },
            "memory": {
                "body_bytes": 1007,
                "rows": {
                    "asgi-cache-redis": {
                        "keys": 2,
                        "bytes_first": 1300,
                        "bytes": 1200,
                        "keys_per_entry": 1,
                        "ratio_to_body": 1.19,
                        "per_key": {"a": 1200, "b": 100},
                    }
                },
            },
        },
        "skipped": {"litestar": "not importable"},
    }


def test_tables_compute_ratios_within_the_run_and_list_failures() -> None:
    results = _results()
    text = hit_cost_table(results["phases"]["hit_cost"])  # type: ignore[index]
    assert "| `asgi-cache-redis` | 50.0 | 1.0 | 0.50x | 0 | HIT |" in text
    assert "`cashews` failed: exit 1: boom" in text
    full = tables(results)
    assert "| `asgi-cache-redis` | 1 | 1,200 | 1.19x | 2 / 1,300 | `a` 1200, `b` 100 |" in full
    assert "- `litestar`: not importable" in full


def test_targets_say_met_missed_or_not_measured() -> None:
    verdicts = {name: verdict for name, _, verdict in targets(_results())}
    assert verdicts["in-process hit `asgi-cache-redis` <= 1.2x bare"] == "met"
    assert verdicts["Redis bytes per entry <= 1.12x body"] == "MISSED"
    assert verdicts["end to end `asgi-cache-redis` >= 1.8x bare"] == "not measured"
    refresh = "seed `asgi-cache-redis-refresh`: hit rate > 80 %, p50 < 2 ms, 0 stale reads"
    assert verdicts[refresh] == "not measured"


def _seed_row(hit_rate: float, p50: float, stale: int) -> dict[str, object]:
    return {"gets": 100, "puts": 10, "non2xx": 0, "hit_rate": hit_rate,
            "origin_hit_rate": hit_rate, "origin_reads": 20, "achieved_rate": 300.0,
            "get_p50_ms": p50, "get_p95_ms": 100.0, "get_p99_ms": 150.0, "put_p50_ms": 101.0,
            "hit_p50_ms": 1.0, "hit_p99_ms": 2.0, "versions_checked": 90, "stale_reads": stale,
            "cache_stats": {"errors": 3, "pending_invalidations": 0}}  # fmt: skip


def test_seed_refresh_target_needs_every_read_after_a_write_to_see_it() -> None:
    # One stale read is enough to miss the target, whatever the hit rate and latency.
    label = "seed `asgi-cache-redis-refresh`: hit rate > 80 %, p50 < 2 ms, 0 stale reads"
    for stale, verdict in ((0, "met"), (1, "MISSED")):
        phase = {
            "ideal_hit_rate": 0.77,
            "rows": {"asgi-cache-redis-refresh": _seed_row(0.84, 1.5, stale)},
        }
        verdicts = {name: v for name, _, v in targets({"phases": {"seed": phase}})}
        assert verdicts[label] == verdict
    # The seed table shows the cache's own errors beside the stale reads, to explain them.
    assert "| 3 / 0 |" in seed_table(phase)


def test_codec_benchmark_round_trips_every_value_and_msgpack_is_smaller() -> None:
    rows = codec_bench.measure(calls=2, rounds=1)
    assert [r["value"] for r in rows] == list(codec_bench.representative_values())
    for r in rows:  # sizes are exact; the timings are only reported, never asserted
        assert 0 < r["msgpack_bytes"] < r["json_bytes"], r
    table = codec_bench.table(rows)
    assert table.count("\n") == len(rows) + 1
    assert "| user profile (dict, 7 fields) | 180 | 154 | -14% |" in table


def test_hit_instructions_child_serves_only_hits() -> None:
    # The measured child: warms one entry, then every request must be a hit (it exits with
    # a message otherwise, so a broken hit path cannot be measured as a fast one).
    assert hit_instructions.main(["--hits", "5"]) == 0


def test_write_behind_table_shows_round_trips_saved_and_errors() -> None:
    row = {"direct_writes_per_s": 100.0, "wb_writes_per_s": 400.0, "speedup": 4.0,
           "direct_round_trips": 2000, "wb_round_trips": 20, "round_trips_saved": 0.99,
           "catch_up_s": 0.05, "lag_p50_s": 0.1, "lag_max_s": 0.5}  # fmt: skip
    text = write_behind_table({"rows": {"sqlite": row}, "errors": {"postgresql": "refused"}})
    assert "| sqlite | 100 | 400 | 4.0x | 2,000 / 20 | 99.0% |" in text
    assert "`postgresql` failed: refused" in text
