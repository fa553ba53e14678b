"""Candle, ticker and indicator queries over one year of one-minute candles (issue #4's `bench/candles`).

Creates the database `tradeport_bench_candles`, seeds the demo market, synthesizes a year of
history for BTCUSDT with `backfill_history` (525,600 one-minute candles and every coarser
interval), then measures each REST query in-process through Django's test client, side by
side with the bare view (`/bench/bare`, the same middleware, no query) as the ceiling: the
median and p99 latency of each, and each median as a multiple of the bare view's. It also
records PostgreSQL's plan of the range query, to show it reads the bucket index.

    .venv/bin/python bench/candles.py                 # about 3 minutes, most of it the backfill
    .venv/bin/python bench/candles.py --days 30 --requests 50   # smoke run
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_overhead import PG_ADMIN, RESULTS, base_env, log, machine_info, pg_admin  # noqa: E402

DB = "tradeport_bench_candles"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=365, help="history to synthesize")
    parser.add_argument("--requests", type=int, default=200, help="requests per query kind")
    parser.add_argument("--seed", type=int, default=2026)
    return parser.parse_args(argv)


def setup_django() -> None:
    env = base_env(PG_ADMIN, "bench-candles")
    env["DATABASE_URL"] = env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{DB}"
    os.environ.update(env)
    with pg_admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    import django

    django.setup()


def timed(client, path: str, query: dict, requests: int, vary=None) -> list[float]:
    """Latencies in ms of `requests` GETs (one warm-up first); `vary(n)` changes the query."""
    client.get(path, vary(0) if vary else query)
    samples = []
    for n in range(requests):
        params = vary(n) if vary else query
        started = time.perf_counter()
        response = client.get(path, params)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path} {params} answered {response.status_code}: {response.content[:300]!r}")
    return samples


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def main(argv=None) -> int:
    args = parse_args(argv)
    started = datetime.now()
    setup_django()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from marketdata.models import Candle, Instrument

    log("migrating and seeding the demo market")
    call_command("migrate", "--no-input", verbosity=0)
    call_command("seed_demo", verbosity=0)
    log(f"synthesizing {args.days} days of BTCUSDT history")
    backfill_started = time.perf_counter()
    call_command("backfill_history", "--days", str(args.days), "--symbol", "BTCUSDT", "--seed", str(args.seed))
    backfill_seconds = time.perf_counter() - backfill_started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE marketdata_candle")
    instrument = Instrument.objects.get(symbol="BTCUSDT")
    counts = {
        interval: Candle.objects.filter(instrument=instrument, interval=interval).count()
        for interval in ("1m", "5m", "15m", "1h", "4h", "1d")
    }
    first = Candle.objects.filter(instrument=instrument, interval="1m").order_by("open_time").first().open_time
    last = Candle.objects.filter(instrument=instrument, interval="1m").order_by("-open_time").first().open_time
    span_minutes = int((last - first) / timedelta(minutes=1)) - 1000
    rng = random.Random(args.seed)

    def random_start(_n: int) -> dict:
        start = first + timedelta(minutes=rng.randrange(span_minutes))
        return {"interval": "1m", "start": start.isoformat(), "limit": 1000}

    client = Client()
    base = "/api/v1/markets/BTCUSDT"
    cases = [
        ("bare view (ceiling)", "/bench/bare", {}, None),
        ("candles 1m, latest 500", f"{base}/candles", {"interval": "1m"}, None),
        ("candles 1m, 1,000 from a random start in the year", f"{base}/candles", {}, random_start),
        ("candles 1h, latest 1,000", f"{base}/candles", {"interval": "1h", "limit": 1000}, None),
        ("candles 1d, the whole year", f"{base}/candles", {"interval": "1d", "limit": 1000}, None),
        ("ticker (24 h of 1m candles)", f"{base}/ticker", {}, None),
        (
            "indicators sma:20, rsi, macd, bbands over 500 1h candles",
            f"{base}/indicators",
            {"interval": "1h", "indicator": ["sma:20", "rsi", "macd", "bbands"]},
            None,
        ),
    ]
    log(f"measuring {len(cases)} query kinds × {args.requests} requests, interleaved by round")
    samples: dict[str, list[float]] = {name: [] for name, *_ in cases}
    rounds = 4
    for _round in range(rounds):
        for name, path, query, vary in cases:
            samples[name] += timed(client, path, query, args.requests // rounds, vary)
    with connection.cursor() as cursor:
        start = (first + timedelta(days=args.days // 2)).isoformat()
        cursor.execute(
            "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM marketdata_candle WHERE instrument_id = %s "
            "AND interval = '1m' AND open_time >= %s ORDER BY open_time LIMIT 1000",
            [instrument.pk, start],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    report = build_report(args, machine_info(), counts, backfill_seconds, samples, plan, started)
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"candles-{started:%Y%m%d-%H%M%S}.md").write_text(report)
    return 0


def build_report(args, machine, counts, backfill_seconds, samples, plan, started) -> str:
    bare = statistics.median(samples["bare view (ceiling)"])
    lines = [
        f"### candles, {started:%Y-%m-%d %H:%M}",
        "",
        f"`bench/candles.py --days {args.days} --requests {args.requests}` — {machine['nproc']} cores "
        f"({machine['cpu']}), {machine['ram']}, Python {machine['python']}; {machine['versions']}. "
        "In-process (Django's test client), one thread, the queries interleaved in 4 rounds.",
        "",
        "History: " + ", ".join(f"{n:,} × {i}" for i, n in counts.items()) + f" candles; backfill took "
        f"{backfill_seconds:.0f} s.",
        "",
        "| query | median ms | p99 ms | median ÷ bare view |",
        "|---|---|---|---|",
    ]
    for name, values in samples.items():
        lines.append(
            f"| {name} | {statistics.median(values):.2f} | {p99(values):.2f} | "
            f"{statistics.median(values) / bare:.1f} × |"
        )
    plan_lines = [line for line in plan.splitlines() if "Scan" in line or "Execution Time" in line]
    lines += ["", "PostgreSQL's plan of 1,000 one-minute candles from the middle of the year:", "", "```"]
    lines += [line.strip() for line in plan_lines]
    lines += ["```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
