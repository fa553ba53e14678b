#!/usr/bin/env python
"""bench/backtest: bars per second of the event-driven backtester over a year of one-minute candles,
against a vectorized pandas / NumPy computation of the same crossover signals (issue's `bench/backtest`).

Run from the repository root with the project's virtualenv (no database, no Redis):

    .venv/bin/python bench/backtest.py            # 5 rounds: about 1-2 minutes on 2 cores
    .venv/bin/python bench/backtest.py --quick    # 1 round, the same 525,600 bars

What it does (bench/README.md has the figures):

1. Synthesizes 525,600 one-minute candles of one instrument (a year), seeded: a geometric random
   walk around 100.00 (the log price reverts to log 100 with a half-life of about 24 days, so the
   price stays within about ±15 % and a grid around the start keeps trading) with an annual
   volatility of 30 %, closes rounded to the 0.01 tick with np.round, open = the previous close,
   high / low = max / min(open, close) ± a small rounded wick. Every price is a clean two-decimal
   float.
2. Crossover (`ma_crossover`, fast 10, slow 30, SMA, quantity 1): times
   `trading.strategies.backtest.backtest_run` over the whole year; bars per second (goal ≥ 100k).
3. In the same rounds, the vectorized references compute the same signals (above = fast > slow
   from bar slow − 1 on; a buy where `above` turns True, a sell where it turns False; the first
   defined bar sets the state without a signal):
   - pandas: `Series.rolling(n).mean()`;
   - NumPy: SMA from one float64 `np.cumsum`;
   - NumPy exact: the same with the closes as int64 cents, comparing slow × sum(fast) with
     fast × sum(slow) in integers: the exact answer, against which the float ones are checked.
   Each reference call is repeated until ≥ 0.2 s and the mean is taken. The ratio is the
   backtest's seconds ÷ the reference's (how many times slower the event-driven run is).
4. Agreement: the backtest's signal bars come from its fills (a market order placed at the close
   of bar i fills at the open of bar i + 1, so signal bar = bar of fill.time − 1). The references'
   signals are restricted to those a long-only strategy acts on (buy when flat, sell when long,
   so a leading sell is skipped), and a signal on the very last bar is dropped (its order has no
   bar left to fill in). Mismatches are the signals in one set and not the other.
5. Grid (`grid`, lower 80, upper 120 (±20 % around the start price, wider than the year's
   range), levels 20, quantity 1): bars per second, fills.
6. Rounds are interleaved (crossover backtest, references, grid, the order reversed every other
   round), medians reported; the fills must be identical in every round. Peak RSS
   (`ru_maxrss`) for information. The bench waits while a pytest run is going on (2 cores).

The report goes to stdout and to `bench/results/backtest-<timestamp>.md`.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ["LOG_LEVEL"] = "WARNING"

import django  # noqa: E402

django.setup()

from bench.api_overhead import cpu_model, dist_versions, ram_total  # noqa: E402
from bench.common import seconds_per_call, tests_wait  # noqa: E402
from trading.strategies.backtest import Candles, backtest_run  # noqa: E402
from trading.strategies.base import Caps, Rules, params_validate  # noqa: E402
from trading.strategies.builtin import CATALOGUE  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BARS = 525_600  # a year of one-minute candles
INTERVAL = 60
START = 1_735_689_600  # 2025-01-01 00:00 UTC
ANNUAL_VOLATILITY = 0.30
#: Per-bar pull of the log price back to log 100 (an AR(1) / Ornstein-Uhlenbeck walk).
REVERSION = 2e-5
GOAL_BARS_PER_SECOND = 100_000
FAST, SLOW = 10, 30
GRID_LEVELS = 20
RULES = Rules(
    "BTCUSDT",
    Decimal("0.01"),
    Decimal("0.001"),
    Decimal("0.001"),
    Decimal("1000"),
    Decimal("1"),
    Decimal("0.001"),
    Decimal("0.002"),
)
STARTING_QUOTE = Decimal("1000000")
SLIPPAGE_BPS = Decimal("1")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round (still 525,600 bars)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- data


def synthetic_candles(bars: int, seed: int) -> Candles:
    """A seeded geometric random walk around 100.00, every price rounded to the 0.01 tick."""
    rng = np.random.default_rng(seed)
    sigma = ANNUAL_VOLATILITY / np.sqrt(BARS)
    log_price, keep, walk = 0.0, 1.0 - REVERSION, []
    for shock in rng.normal(0.0, sigma, bars).tolist():
        log_price = log_price * keep + shock
        walk.append(log_price)
    close = np.round(100.0 * np.exp(np.array(walk)), 2)
    open_ = np.concatenate(([100.0], close[:-1]))
    wick = 100.0 * sigma / 2
    high = np.round(np.maximum(open_, close) + np.round(rng.exponential(wick, bars), 2), 2)
    low = np.round(np.minimum(open_, close) - np.round(rng.exponential(wick, bars), 2), 2)
    volume = np.round(rng.lognormal(0.0, 1.0, bars) * 10, 3)
    assert low.min() > 0 and (high >= np.maximum(open_, close)).all() and (low <= np.minimum(open_, close)).all()
    times = START + INTERVAL * np.arange(bars, dtype=np.int64)
    return Candles(times, open_, high, low, close, volume, INTERVAL)


# --------------------------------------------------------------------------- the references


def signals_of(above: np.ndarray, first: int) -> tuple[np.ndarray, np.ndarray]:
    """(buy bars, sell bars) where `above` (defined from bar `first` on) flips."""
    flips = np.flatnonzero(above[1:] != above[:-1]) + 1
    turned_up = above[flips]
    bars = flips + first
    return bars[turned_up], bars[~turned_up]


def pandas_signals(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    series = pd.Series(close)
    fast = series.rolling(FAST).mean().to_numpy()
    slow = series.rolling(SLOW).mean().to_numpy()
    return signals_of(fast[SLOW - 1 :] > slow[SLOW - 1 :], SLOW - 1)


def numpy_signals(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sums = np.concatenate(([0.0], np.cumsum(close)))
    fast = (sums[FAST:] - sums[:-FAST]) / FAST  # fast[j]: closes j .. j + FAST - 1
    slow = (sums[SLOW:] - sums[:-SLOW]) / SLOW
    return signals_of(fast[SLOW - FAST :] > slow, SLOW - 1)


def exact_sums(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """slow × (sum of the fast window) and fast × (sum of the slow window) in int64 cents, from bar SLOW - 1."""
    sums = np.concatenate(([0], np.cumsum(np.rint(close * 100).astype(np.int64))))
    fast = sums[FAST:] - sums[:-FAST]
    slow = sums[SLOW:] - sums[:-SLOW]
    return fast[SLOW - FAST :] * SLOW, slow * FAST


def exact_signals(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fast, slow = exact_sums(close)
    return signals_of(fast > slow, SLOW - 1)


REFERENCES: dict[str, tuple[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]]] = {
    "pandas": ("pandas `rolling(n).mean()`", pandas_signals),
    "numpy": ("NumPy float64 `cumsum` SMA", numpy_signals),
    "exact": ("NumPy int64 cents `cumsum` (exact)", exact_signals),
}


def long_only(buys: np.ndarray, sells: np.ndarray, last_bar: int) -> set[tuple[int, str]]:
    """The signals a long-only strategy acts on: buy when flat, sell when long; none on the last bar."""
    events = sorted([(int(bar), "BUY") for bar in buys] + [(int(bar), "SELL") for bar in sells])
    acted, flat = set(), True
    for bar, side in events:
        if bar >= last_bar:
            break
        if (side == "BUY") == flat:
            acted.add((bar, side))
            flat = not flat
    return acted


# --------------------------------------------------------------------------- measurement


def strategy_make(kind: str, params: dict):
    strategy = CATALOGUE[kind]
    return strategy(params_validate(strategy, params))


def backtest_time(kind: str, params: dict, candles: Candles):
    strategy = strategy_make(kind, params)
    started = time.perf_counter()
    outcome = backtest_run(
        strategy, candles, rules=RULES, caps=Caps(), starting_quote=STARTING_QUOTE, slippage_bps=SLIPPAGE_BPS
    )
    return time.perf_counter() - started, outcome


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine_info() -> dict[str, str]:
    return {
        "nproc": f"{os.cpu_count()} ({len(os.sched_getaffinity(0))} usable)",
        "cpu": cpu_model(),
        "ram": ram_total(),
        "python": platform.python_version(),
        "versions": dist_versions(("numpy", "pandas", "Django")),
        "load": ", ".join(f"{value:.2f}" for value in os.getloadavg()),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    started = datetime.now()
    tests_wait()
    log(f"synthesizing {BARS:,} one-minute candles")
    candles = synthetic_candles(BARS, args.seed)
    close = candles.close
    crossover = {"fast": FAST, "slow": SLOW, "average": "sma", "quantity": 1}
    grid = {"lower": 80, "upper": 120, "levels": GRID_LEVELS, "quantity": 1}
    rss_before = rss_mb()

    samples: dict[str, list[float]] = {"crossover": [], "grid": [], **{name: [] for name in REFERENCES}}
    outcomes: dict[str, object] = {}
    identical = {"crossover": True, "grid": True}

    def run_backtest(kind: str, params: dict, key: str) -> None:
        seconds, outcome = backtest_time(kind, params, candles)
        samples[key].append(seconds)
        if key not in outcomes:
            outcomes[key] = outcome
        elif outcome.fills != outcomes[key].fills:
            identical[key] = False
        log(f"{key}: {seconds:.2f} s, {BARS / seconds:,.0f} bars/s, {len(outcome.fills):,} fills")

    def run_references() -> None:
        for name, (_, function) in REFERENCES.items():
            samples[name].append(seconds_per_call(lambda function=function: function(close), minimum=0.2))
        log("references: " + ", ".join(f"{name} {samples[name][-1] * 1000:.1f} ms" for name in REFERENCES))

    run_references()  # a warm-up call of each reference, not counted
    for name in REFERENCES:
        samples[name].clear()
    for round_ in range(rounds):
        tests_wait()
        log(f"round {round_ + 1} of {rounds}")
        steps = [
            lambda: run_backtest("ma_crossover", crossover, "crossover"),
            run_references,
            lambda: run_backtest("grid", grid, "grid"),
        ]
        for step in steps if round_ % 2 == 0 else steps[::-1]:
            step()

    agreement = agreement_check(outcomes["crossover"], close, candles)
    report = build_report(
        args, rounds, machine_info(), candles, grid, samples, outcomes, identical, agreement, rss_before, started
    )
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"backtest-{started:%Y%m%d-%H%M%S}.md").write_text(report)
    return 0


def agreement_check(outcome, close: np.ndarray, candles: Candles) -> dict:
    """The backtest's signals (from its fills) against each reference's long-only signals."""
    first_time = int(candles.time[0])
    acted = {"backtest": {((fill.time - first_time) // INTERVAL - 1, str(fill.side)) for fill in outcome.fills}}
    last_bar = len(close) - 1
    acted.update({name: long_only(*function(close), last_bar) for name, (_, function) in REFERENCES.items()})
    fast, slow = exact_sums(close)
    ties = np.zeros(len(close), dtype=bool)
    ties[SLOW - 1 :] = fast == slow

    def differ(one: set, other: set) -> tuple[int, int]:
        """Signals in one set only, and how many of them are on or just after an exact tie."""
        apart = one ^ other
        return len(apart), sum(1 for bar, _ in apart if ties[bar] or ties[bar - 1])

    rows = {
        name: {
            "signals": len(signals),
            "vs_backtest": differ(signals, acted["backtest"]),
            "vs_exact": differ(signals, acted["exact"]),
        }
        for name, signals in acted.items()
    }
    raw_buys, raw_sells = exact_signals(close)
    return {
        "rows": rows,
        "ties": int(ties.sum()),
        "raw": len(raw_buys) + len(raw_sells),
        "fills": len(outcome.fills),
        "log": len(outcome.log),
    }


# --------------------------------------------------------------------------- report


def build_report(
    args, rounds, machine, candles, grid, samples, outcomes, identical, agreement, rss_before, started
) -> str:
    finished = datetime.now()
    bars = len(candles)
    median = {name: statistics.median(values) for name, values in samples.items()}

    def spread(name: str) -> str:
        values = samples[name]
        return f"{min(values):.3f}–{max(values):.3f}" if len(values) > 1 else "—"

    crossover_rate = bars / median["crossover"]
    goal = "met" if crossover_rate >= GOAL_BARS_PER_SECOND else "✗"
    cross, grid_out = outcomes["crossover"], outcomes["grid"]
    lines = [
        f"### backtest, {started:%Y-%m-%d %H:%M} ({(finished - started).total_seconds() / 60:.1f} min)",
        "",
        f"`bench/backtest.py{' --quick' if args.quick else ''}"
        f"{'' if args.quick or args.rounds == 5 else f' --rounds {args.rounds}'}"
        f"{'' if args.seed == 2026 else f' --seed {args.seed}'}`",
        "",
        f"Machine: {machine['nproc']} cores ({machine['cpu']}), {machine['ram']}, Python {machine['python']}, "
        f"{machine['versions']}; load average at the end {machine['load']}.",
        "",
        f"Data: {bars:,} one-minute candles (one year, one instrument), seed {args.seed}, geometric random walk "
        f"around 100.00 (log price pulled back by {REVERSION:g} a bar) at {ANNUAL_VOLATILITY:.0%} annual "
        "volatility, prices on the 0.01 tick; closes "
        f"{candles.close.min():.2f}–{candles.close.max():.2f}. Backtests: starting quote {STARTING_QUOTE:,}, "
        f"slippage {SLIPPAGE_BPS} bp, taker fee {RULES.taker_fee_rate}, maker fee {RULES.maker_fee_rate}. "
        f"Time: median of {rounds} interleaved round{'s' if rounds > 1 else ''} (the range in brackets); "
        "a backtest is one `backtest_run` call (strategy built outside the timer); a reference is the mean "
        "of calls repeated for ≥ 0.2 s, from the close array to the signal bars.",
        "",
        "| run | bars | fills / signals | median s (range) | bars/s | goal (≥ 100,000 bars/s) | backtest ÷ reference |",
        "|---|---|---|---|---|---|---|",
        f"| crossover backtest (SMA {FAST}/{SLOW}, qty 1) | {bars:,} | {len(cross.fills):,} fills | "
        f"{median['crossover']:.3f} ({spread('crossover')}) | **{crossover_rate:,.0f}** | {goal} | — |",
        f"| grid backtest ({grid['lower']:g}–{grid['upper']:g}, {grid['levels']} levels, qty 1) | {bars:,} | "
        f"{len(grid_out.fills):,} fills | {median['grid']:.3f} ({spread('grid')}) | "
        f"**{bars / median['grid']:,.0f}** | — | — |",
    ]
    for name, (label, _) in REFERENCES.items():
        signals = agreement["rows"][name]["signals"]
        lines.append(
            f"| crossover signals, {label} | {bars:,} | {signals:,} acted on | {median[name]:.4f} "
            f"({spread(name)}) | {bars / median[name]:,.0f} | — | {median['crossover'] / median[name]:,.0f}× slower |"
        )
    rows = agreement["rows"]
    lines += [
        "",
        f"Agreement of the crossover's signals. The backtest's {agreement['fills']:,} fills give "
        f"{rows['backtest']['signals']:,} signal bars (fill bar − 1). "
        f"The exact reference has {agreement['raw']:,} crossings, "
        f"{rows['exact']['signals']:,} of which a long-only strategy acts on (a leading sell and a signal on the "
        f"last bar are left out). The data has {agreement['ties']:,} bars where the two averages are exactly "
        "equal (in integer cents): there `fast > slow` is False, but a float comparison may go either way. "
        "'At a tie': the signal's bar or the bar before it is such a bar. "
        f"Fills identical in every round: crossover {'yes' if identical['crossover'] else 'NO'}, grid "
        f"{'yes' if identical['grid'] else 'NO'}. Lines in the backtest's log: crossover {agreement['log']:,}, "
        f"grid {len(grid_out.log):,}.",
        "",
        "| signals from | signals acted on | differ from the backtest's (at a tie) | "
        "differ from the exact reference's (at a tie) |",
        "|---|---|---|---|",
    ]

    def cell(pair: tuple[int, int], same: bool) -> str:
        return "—" if same else f"{pair[0]:,} ({pair[1]:,})"

    labels = {"backtest": "backtest fills", **{name: label for name, (label, _) in REFERENCES.items()}}
    for name, label in labels.items():
        row = rows[name]
        lines.append(
            f"| {label} | {row['signals']:,} | {cell(row['vs_backtest'], name == 'backtest')} | "
            f"{cell(row['vs_exact'], name == 'exact')} |"
        )
    lines += [
        "",
        f"Peak RSS (`ru_maxrss`): {rss_before:,.0f} MB after `django.setup()` and the candles, "
        f"{rss_mb():,.0f} MB at the end.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
