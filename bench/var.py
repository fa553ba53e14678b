"""bench/var: riskmgmt.var's historical, parametric and Monte Carlo VaR against a minimal reference NumPy
implementation of the same maths, side by side in one process (issue #5's `bench/var`).

For each method × instruments (10, 100, 500) × days of history (250, 1000), Monte Carlo with 100k
paths, it times riskmgmt.var and the reference below in interleaved rounds. The order alternates
each round, and the median is reported. Each is also run once under tracemalloc for its peak of
traced allocations during the call. NumPy reports its array buffers to tracemalloc, including
those allocated in worker threads. Inputs allocated before the call are not counted.

The reference is plain, obvious and float64 in one shot: np.cov, Cholesky, all paths at once from
default_rng, np.quantile. Both implementations must give the same VaR. Historical and parametric
must agree to rounding. Monte Carlo must agree within sampling error, because the generators differ.
Then the goal cell: Monte Carlo, 100 instruments × 1M paths (goal < 2 s), also with one thread, and
once more in a child process with OPENBLAS_NUM_THREADS=1. There each BLAS call runs on one thread, so
riskmgmt.var's two worker threads do not compete with OpenBLAS's own (see riskmgmt/var.py). The
reference in the child also gets single-threaded BLAS.

The data is seeded and synthetic: daily log-returns from a market factor, four sector factors and
Student-t idiosyncratic shocks (daily vols about 1.5-5 %, correlations about 0.2-0.7), and
exposures of 10k-1M in the quote currency, about a third of them short.

    .venv/bin/python bench/var.py            # about 2 minutes on 2 cores
    .venv/bin/python bench/var.py --rounds 1 --instruments 10 --days 250 --goal-paths 100000   # smoke run

The markdown report goes to stdout and to `bench/results/var-<timestamp>.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from statistics import NormalDist

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_overhead import cpu_model, ram_total  # noqa: E402
from bench.common import seconds_per_call  # noqa: E402
from riskmgmt.var import historical_var, monte_carlo_var, parametric_var  # noqa: E402

RESULTS = ROOT / "bench" / "results"
GOAL_RATIO = 1.3
GOAL_SECONDS = 2.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instruments", default="10,100,500", help="comma-separated instrument counts")
    parser.add_argument("--days", default="250,1000", help="comma-separated days of history (the lookback)")
    parser.add_argument("--paths", type=int, default=100_000, help="Monte Carlo paths of the grid")
    parser.add_argument("--goal-paths", type=int, default=1_000_000, help="Monte Carlo paths of the goal cell")
    parser.add_argument("--goal-instruments", type=int, default=100)
    parser.add_argument("--confidence", type=float, default=0.99)
    parser.add_argument("--horizon", type=int, default=10, help="horizon in days")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--goal-only", action="store_true", help="only the goal cell, as JSON (the child's run)")
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- the reference


def reference_historical(exposures, returns, confidence, horizon):
    sums = sliding_window_view(returns, horizon, axis=0).sum(axis=-1)
    losses = -((np.exp(sums) - 1) @ exposures)
    var = np.quantile(losses, confidence)
    return var, losses[losses >= var].mean()


def reference_parametric(exposures, returns, confidence, horizon):
    mean = horizon * returns.mean(axis=0) @ exposures
    sigma = np.sqrt(horizon * exposures @ np.cov(returns, rowvar=False) @ exposures)
    z = NormalDist().inv_cdf(confidence)
    return z * sigma - mean, NormalDist().pdf(z) / (1 - confidence) * sigma - mean


def reference_monte_carlo(exposures, returns, confidence, horizon, paths, seed):
    covariance = horizon * np.cov(returns, rowvar=False)
    try:
        factor = np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:  # more instruments than days: only positive semi-definite
        values, vectors = np.linalg.eigh(covariance)
        factor = vectors * np.sqrt(np.clip(values, 0, None))
    rng = np.random.default_rng(seed)
    draws = horizon * returns.mean(axis=0) + rng.standard_normal((paths, len(exposures))) @ factor.T
    losses = -((np.exp(draws) - 1) @ exposures)
    var = np.quantile(losses, confidence)
    return var, losses[losses >= var].mean()


# --------------------------------------------------------------------------- data and measurement


def synthetic_market(instruments: int, days: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(exposures, daily log-returns days × instruments) with a factor correlation structure."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0002, 0.025, days)
    sectors = rng.normal(0.0, 0.015, (days, 4))
    beta = rng.uniform(0.5, 1.3, instruments)
    sector_of = np.arange(instruments) % 4
    idiosyncratic_vol = rng.uniform(0.005, 0.03, instruments)
    shocks = rng.standard_t(5, (days, instruments)) * np.sqrt(3 / 5)  # unit variance, fat tails
    returns = market[:, None] * beta + sectors[:, sector_of] + shocks * idiosyncratic_vol
    sizes = rng.uniform(10_000, 1_000_000, instruments)
    exposures = np.where(rng.random(instruments) < 0.3, -sizes, sizes)
    return exposures, returns


def peak_bytes(function: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        function()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def compare(ours: Callable[[], float], reference: Callable[[], float], rounds: int) -> dict[str, float]:
    """Interleaved rounds (the order alternates), after a warm-up call and one traced call of each."""
    row = {"ours_var": ours(), "ref_var": reference()}
    row["ours_peak"], row["ref_peak"] = peak_bytes(ours), peak_bytes(reference)
    samples: dict[str, list[float]] = {"ours": [], "ref": []}
    for round_ in range(rounds):
        pair = [("ours", ours), ("ref", reference)]
        for name, function in pair if round_ % 2 == 0 else pair[::-1]:
            samples[name].append(seconds_per_call(function))
    row["ours_s"], row["ref_s"] = statistics.median(samples["ours"]), statistics.median(samples["ref"])
    return row


def machine_info() -> dict[str, str]:
    blas = np.__config__.CONFIG.get("Build Dependencies", {}).get("blas", {})
    return {
        "nproc": f"{os.cpu_count()} ({len(os.sched_getaffinity(0))} usable)",
        "cpu": cpu_model(),
        "ram": ram_total(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": f"{blas.get('name', '?')} {blas.get('version', '')}".strip(),
    }


# --------------------------------------------------------------------------- run and report


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.goal_only:
        print(json.dumps(goal_cell(args)))
        return 0
    started = datetime.now()
    confidence, horizon = args.confidence, args.horizon
    rows = []
    for instruments in (int(n) for n in args.instruments.split(",")):
        for days in (int(d) for d in args.days.split(",")):
            exposures, returns = synthetic_market(instruments, days, args.seed)
            common = {"exposures": exposures, "returns": returns, "confidence": confidence, "horizon_days": horizon}
            cases = {
                "historical": (
                    lambda common=common: historical_var(**common).var,
                    lambda e=exposures, r=returns: reference_historical(e, r, confidence, horizon)[0],
                ),
                "parametric": (
                    lambda common=common: parametric_var(**common).var,
                    lambda e=exposures, r=returns: reference_parametric(e, r, confidence, horizon)[0],
                ),
                "monte carlo": (
                    lambda common=common: monte_carlo_var(**common, paths=args.paths, seed=args.seed).var,
                    lambda e=exposures, r=returns: reference_monte_carlo(
                        e, r, confidence, horizon, args.paths, args.seed
                    )[0],
                ),
            }
            for method, (ours, reference) in cases.items():
                print(f"[{time.strftime('%H:%M:%S')}] {method}, {instruments} × {days}", file=sys.stderr, flush=True)
                row = compare(ours, reference, args.rounds)
                rows.append({"method": method, "instruments": instruments, "days": days, **row})
    goal = goal_cell(args)
    goal_single_blas = goal_cell_single_threaded_blas(argv)
    report = build_report(args, machine_info(), rows, goal, goal_single_blas, started)
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"var-{started:%Y%m%d-%H%M%S}.md").write_text(report)
    return 0


def goal_cell(args) -> dict[str, float]:
    exposures, returns = synthetic_market(args.goal_instruments, 1000, args.seed)
    common = {"exposures": exposures, "returns": returns, "confidence": args.confidence, "horizon_days": args.horizon}
    print(f"[{time.strftime('%H:%M:%S')}] goal cell", file=sys.stderr, flush=True)
    row = compare(
        lambda: monte_carlo_var(**common, paths=args.goal_paths, seed=args.seed).var,
        lambda: reference_monte_carlo(exposures, returns, args.confidence, args.horizon, args.goal_paths, args.seed)[0],
        args.rounds,
    )
    single = [
        seconds_per_call(lambda: monte_carlo_var(**common, paths=args.goal_paths, seed=args.seed, threads=1))
        for _ in range(max(1, args.rounds // 2))
    ]
    row["ours_1thread_s"] = statistics.median(single)
    return row


def goal_cell_single_threaded_blas(argv) -> dict[str, float]:
    """The goal cell in a child process whose OpenBLAS runs one thread per call (set before NumPy loads)."""
    print(f"[{time.strftime('%H:%M:%S')}] goal cell, OPENBLAS_NUM_THREADS=1", file=sys.stderr, flush=True)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    command = [sys.executable, __file__, *(sys.argv[1:] if argv is None else argv), "--goal-only"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def build_report(args, machine, rows, goal, goal_single_blas, started) -> str:
    def mib(value: float) -> str:
        return f"{value / 2**20:,.1f}"

    def agreement(row) -> str:
        return f"{abs(row['ours_var'] / row['ref_var'] - 1):.1e}"

    lines = [
        f"### var, {started:%Y-%m-%d %H:%M}",
        "",
        f"`bench/var.py --instruments {args.instruments} --days {args.days} --paths {args.paths} "
        f"--goal-paths {args.goal_paths} --rounds {args.rounds} --confidence {args.confidence} "
        f"--horizon {args.horizon} --seed {args.seed}`",
        "",
        f"Machine: {machine['nproc']} cores ({machine['cpu']}), {machine['ram']}, Python {machine['python']}, "
        f"NumPy {machine['numpy']} ({machine['blas']}).",
        "",
        f"VaR {args.confidence:.0%}, {args.horizon}-day horizon. Time: median over {args.rounds} interleaved rounds "
        "(each round repeats a call until ≥ 50 ms and takes the mean). Peak: tracemalloc's peak of traced "
        "allocations during one call, inputs excluded. Monte Carlo: riskmgmt.var uses float32, SFC64 and 2 threads; "
        "the reference uses float64, PCG64 and one shot. Both use "
        f"{args.paths:,} paths. 'VaR diff' is |ours / reference − 1|. Historical and parametric should agree to "
        "rounding. Monte Carlo should agree within sampling error (another generator draws other paths).",
        "",
        "| method | instruments | days | riskmgmt.var ms | reference ms | ratio (goal ≤ 1.3) | "
        "peak MiB ours | peak MiB ref | VaR diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = row["ours_s"] / row["ref_s"]
        flag = "" if ratio <= GOAL_RATIO else " ✗"
        lines.append(
            f"| {row['method']} | {row['instruments']} | {row['days']} | {row['ours_s'] * 1000:,.2f} | "
            f"{row['ref_s'] * 1000:,.2f} | {ratio:.2f}{flag} | {mib(row['ours_peak'])} | {mib(row['ref_peak'])} | "
            f"{agreement(row)} |"
        )
    lines += [
        "",
        f"Goal cell: Monte Carlo, {args.goal_instruments} instruments × 1000 days × {args.goal_paths:,} paths "
        f"(goal < {GOAL_SECONDS:.0f} s):",
        "",
        "| BLAS | riskmgmt.var s (2 threads) | riskmgmt.var s (1 thread) | reference s | ratio | "
        "peak MiB ours | peak MiB ref | VaR diff | goal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, cell in (("NumPy's default (OpenBLAS threads)", goal), ("OPENBLAS_NUM_THREADS=1", goal_single_blas)):
        lines.append(
            f"| {label} | **{cell['ours_s']:.2f}** | {cell['ours_1thread_s']:.2f} | {cell['ref_s']:.2f} | "
            f"{cell['ours_s'] / cell['ref_s']:.2f} | {mib(cell['ours_peak'])} | {mib(cell['ref_peak'])} | "
            f"{agreement(cell)} | {'met' if cell['ours_s'] < GOAL_SECONDS else 'missed'} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
