"""Value at Risk and Expected Shortfall of a set of positions, and the VaR backtest: pure NumPy maths.

No models, no Django: a riskmgmt service turns an account's positions into exposures and its
instruments' daily candles into log-returns (`log_returns`), calls `value_at_risk`, and stores the
inputs (exposures, lookback, method, paths, seed) next to the result so that a run can be repeated.

Conventions
-----------
Exposure
    The signed market value of a position in the quote currency (long > 0, short < 0), one per
    instrument, in the column order of the returns.
Returns
    A days × instruments matrix of daily log-returns, oldest row first. `lookback_days` keeps the
    most recent rows; None keeps them all.
Scenario P&L (full revaluation)
    ``sum_i exposure_i * (exp(r_i) - 1)`` for a horizon log-return ``r``; the loss is ``-P&L``.
VaR
    The `confidence` quantile of the loss, NumPy's default linear interpolation
    (``np.quantile(losses, confidence, method="linear")``). Reported as a loss: positive means
    losing money; it is negative only when the mean return outweighs the risk (e.g. a strong trend
    in a short lookback), and it is not clipped to zero.
ES
    The mean of the losses greater than or equal to the VaR (the tail includes the quantile).
Horizon of N days
    historical: the overlapping N-day sums of the daily log-returns, L − N + 1 scenarios from
    L days. The overlap makes neighbouring scenarios dependent, but it uses the whole history.
    Each scenario is revalued in full.

    parametric: delta-normal. P&L ≈ exposure · r, the first-order term of exp(r) − 1, with
    r ~ Normal(N μ, N Σ). μ and Σ are the sample mean and covariance (ddof=1) of the daily
    returns. The mean is included: μ_p = N eᵀμ, σ_p = sqrt(N eᵀΣe), z = Φ⁻¹(c),
    VaR = z σ_p − μ_p, ES = φ(z) / (1 − c) σ_p − μ_p.

    Monte Carlo: N-day log-returns drawn from the same Normal(N μ, N Σ), revalued in full.
    Monte Carlo therefore differs from parametric by the convexity of exp (of the order of the
    horizon's variance) and from historical by the normality assumption.

Monte Carlo
    The correlated draws are A z, with A Aᵀ = N Σ. A is the Cholesky factor. When Σ is only
    positive semi-definite, Cholesky fails. This happens with more instruments than days, with
    an instrument whose price never moved, or with collinear instruments. A then comes from the
    eigendecomposition: eigenvalues below a relative tolerance are set to zero and their
    directions dropped, A = V_k sqrt(Λ_k). That is exact for a PSD matrix and draws fewer normals.

    The draws are float32 standard normals from SFC64. The paths are cut into fixed stream blocks
    of `STREAM_BLOCK_PATHS`. Block b has its own generator, seeded with
    ``SeedSequence(seed, spawn_key=(b,))`` (the b-th child of ``SeedSequence(seed).spawn``).
    `threads` worker threads take the blocks in turn; NumPy releases the GIL while it draws,
    multiplies and exponentiates. Each block is drawn in chunks of `chunk_paths` rows from its
    own generator, in order. So the normals depend only on (seed, paths), not on the chunk size
    or on the number of threads.

    The P&L is computed in float32: the matmul, exp and the product with the exposures. BLAS may
    sum in another order for a chunk of another shape, so results agree across chunk sizes to
    float32 rounding (~1e-6 relative), not bit for bit. A run can be reproduced with the same
    NumPy version: NumPy may change its normal sampler between versions (NEP 19).

    BLAS threads: the threads only pay off when BLAS runs one thread per call. That is the case with
    ``OPENBLAS_NUM_THREADS=1``, the usual setting for a worker process: 100 instruments × 1M paths
    then take about 0.6 s on 2 cores. NumPy's default OpenBLAS spreads each matmul over every core,
    and its threads spin between calls. They then compete with the second worker thread, and the same
    run takes about 1.2 s, about what one thread takes. The result is identical either way
    (bench/var.py measures both).

    Memory: each thread holds two chunk buffers, ``chunk_paths × instruments × 4`` bytes each
    (about 4 MiB by default). The P&L of every path is kept as float64 (8 bytes a path, 80 MB at
    the `MAX_PATHS` cap), so that VaR, ES and the histogram come from the whole sample.

Validation
    Every bad input raises `VarInputError` (a `DomainError`, HTTP 400) with one of the stable codes
    in `VAR_ERROR_CODES`.

Backtest
    `var_backtest` holds today's positions fixed (a hypothetical P&L, the model is tested, not the
    trading). Each day of the window, it compares the day's full-revaluation loss with the one-day
    VaR from the `lookback_days` days before it. `kupiec_pof` tests the number of breaches.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Literal, get_args

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

from portal.errors import DomainError

VarMethod = Literal["historical", "parametric", "monte_carlo"]
BacktestMethod = Literal["historical", "parametric"]
VAR_METHODS: tuple[str, ...] = get_args(VarMethod)
BACKTEST_METHODS: tuple[str, ...] = get_args(BacktestMethod)

#: Fewer daily returns than this give no meaningful covariance or quantile.
MIN_RETURN_DAYS = 20
#: A year of trading days; a longer horizon from daily candles is not a risk figure any more.
MAX_HORIZON_DAYS = 250
#: Below 1,000 paths the 99 % tail holds fewer than 10 scenarios; above 10 million the kept P&L
#: exceeds 80 MB.
MIN_PATHS = 1_000
MAX_PATHS = 10_000_000
#: The unit of the random stream. Changing it changes the draws of every seed.
STREAM_BLOCK_PATHS = 16_384
#: Target size of one chunk buffer (float32 paths × instruments) per thread.
CHUNK_BYTES = 4 * 1024 * 1024
MONTE_CARLO_THREADS = 2
#: Up to this horizon, historical sums N shifted slices; beyond it, a cumulative sum is cheaper.
SHIFTED_SUM_MAX_DAYS = 16
HISTOGRAM_BINS = 50

VAR_ERROR_CODES = {
    "NO_POSITIONS": "no exposure, or every exposure is zero",
    "NO_HISTORY": f"fewer daily returns than the lookback (or than {MIN_RETURN_DAYS}, or than the backtest needs)",
    "LOOKBACK_SHORTER_THAN_HORIZON": "the lookback has fewer days than the horizon",
    "BAD_LOOKBACK": f"a lookback of fewer than {MIN_RETURN_DAYS} days",
    "BAD_CONFIDENCE": "a confidence outside the open interval (0, 1)",
    "BAD_HORIZON": f"a horizon that is not a whole number of days in [1, {MAX_HORIZON_DAYS}]",
    "BAD_PATHS": f"Monte Carlo paths outside [{MIN_PATHS:,}, {MAX_PATHS:,}], or a chunk size below 1",
    "BAD_SEED": "a seed that is not a non-negative integer",
    "BAD_METHOD": "a method that is not one of VAR_METHODS (BACKTEST_METHODS for the backtest)",
    "BAD_INPUT": "arrays of the wrong shape, or values that are not finite numbers (prices must be > 0)",
}


class VarInputError(DomainError):
    """The inputs of a VaR run or backtest are unusable; `code` is one of `VAR_ERROR_CODES`."""

    status = 400


@dataclass(frozen=True, eq=False)
class VarInputs:
    """Everything that determines a VaR run. Store it with the result to repeat the run.

    The arrays are copied to read-only float64 on construction, so the record cannot change later.
    `paths`, `seed` and `chunk_paths` matter only to Monte Carlo. The result does not depend on
    `chunk_paths` (None: about `CHUNK_BYTES` per buffer).
    """

    exposures: NDArray[np.float64]
    returns: NDArray[np.float64]
    method: VarMethod = "historical"
    confidence: float = 0.99
    horizon_days: int = 1
    lookback_days: int | None = None
    paths: int = 100_000
    seed: int = 0
    chunk_paths: int | None = None

    def __post_init__(self) -> None:
        for name in ("exposures", "returns"):
            array = _float_array(getattr(self, name), name).copy()
            array.flags.writeable = False
            object.__setattr__(self, name, array)


@dataclass(frozen=True)
class VarResult:
    """VaR and ES as positive losses, with a histogram of the P&L distribution they come from.

    `scenarios` counts the historical scenarios or Monte Carlo paths. The parametric method has
    none: `scenarios` is 0 and the histogram is empty. `pnl_mean` and `pnl_std` are those of the
    model's normal P&L there, and of the scenarios otherwise.
    """

    method: VarMethod
    confidence: float
    horizon_days: int
    var: float
    es: float
    pnl_mean: float
    pnl_std: float
    scenarios: int
    histogram_edges: tuple[float, ...]
    histogram_counts: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        """Plain JSON types, histogram included (about 1.5 kB)."""
        data = asdict(self)
        data["histogram_edges"] = list(self.histogram_edges)
        data["histogram_counts"] = list(self.histogram_counts)
        return data


@dataclass(frozen=True)
class KupiecResult:
    """Kupiec's proportion-of-failures test: is the breach rate compatible with 1 − confidence?

    `lr` is the likelihood ratio, chi-square with one degree of freedom under the hypothesis.
    `rejected` is True when `p_value` is below `significance`. Then the model is wrong, in
    either direction: too many breaches, or too few.
    """

    breaches: int
    observations: int
    expected_rate: float
    observed_rate: float
    lr: float
    p_value: float
    significance: float
    rejected: bool


@dataclass(frozen=True)
class BacktestResult:
    """Breaches of a rolling one-day VaR over a window, and Kupiec's verdict on their number.

    `daily_var` and `daily_loss` are the VaR and the realized loss of each observed day (the
    backtest chart). `breach_days` are row indices into the backtest's `returns`: on those days
    the loss was strictly greater than the VaR.
    """

    method: BacktestMethod
    confidence: float
    lookback_days: int
    observations: int
    breaches: int
    breach_days: tuple[int, ...]
    daily_var: tuple[float, ...]
    daily_loss: tuple[float, ...]
    kupiec: KupiecResult


def log_returns(closes: ArrayLike) -> NDArray[np.float64]:
    """Daily log-returns ``log(p_t / p_{t-1})`` of a days × instruments close matrix, oldest first.

    A 1-D series is one instrument. The result has one row fewer than `closes`.
    """
    prices = _float_array(closes, "closes")
    if prices.ndim == 1:
        prices = prices[:, np.newaxis]
    if prices.ndim != 2:
        raise VarInputError("BAD_INPUT", f"closes must be days × instruments, not of shape {prices.shape}.")
    if prices.shape[0] < 2:
        raise VarInputError("NO_HISTORY", "A log-return needs at least two closes.")
    if not np.all(prices > 0):
        raise VarInputError("BAD_INPUT", "Every close must be a positive number.")
    return np.diff(np.log(prices), axis=0)


def value_at_risk(
    inputs: VarInputs, *, threads: int | None = None, progress: Callable[[float], None] | None = None
) -> VarResult:
    """VaR and ES of `inputs` by its method; `threads` only splits Monte Carlo work (default 2).
    Monte Carlo calls `progress` with the fraction of paths done after each block of paths, from
    whichever thread drew it; an exception it raises stops the run."""
    if inputs.method in ("historical", "parametric"):
        closed = historical_var if inputs.method == "historical" else parametric_var
        return closed(
            exposures=inputs.exposures,
            returns=inputs.returns,
            confidence=inputs.confidence,
            horizon_days=inputs.horizon_days,
            lookback_days=inputs.lookback_days,
        )
    if inputs.method == "monte_carlo":
        return monte_carlo_var(
            exposures=inputs.exposures,
            returns=inputs.returns,
            confidence=inputs.confidence,
            horizon_days=inputs.horizon_days,
            lookback_days=inputs.lookback_days,
            paths=inputs.paths,
            seed=inputs.seed,
            chunk_paths=inputs.chunk_paths,
            threads=threads,
            progress=progress,
        )
    raise VarInputError("BAD_METHOD", f"method must be one of {', '.join(VAR_METHODS)}, not {inputs.method!r}.")


def historical_var(
    *,
    exposures: ArrayLike,
    returns: ArrayLike,
    confidence: float,
    horizon_days: int = 1,
    lookback_days: int | None = None,
) -> VarResult:
    """Historical simulation: revalue the positions under every overlapping N-day return of the lookback."""
    weights, daily = _lookback_rows(exposures, returns, confidence, horizon_days, lookback_days)
    horizon = _overlapping_sums(daily, horizon_days)
    np.expm1(horizon, out=horizon)
    return _result_from_scenarios("historical", confidence, horizon_days, horizon @ weights)


def parametric_var(
    *,
    exposures: ArrayLike,
    returns: ArrayLike,
    confidence: float,
    horizon_days: int = 1,
    lookback_days: int | None = None,
) -> VarResult:
    """Delta-normal VaR and ES in closed form, the mean included (see the module docstring).

    eᵀΣe is the sample variance of the daily linear P&L ``returns @ e``. So the covariance
    matrix is never formed: O(days × instruments) rather than O(days × instruments²).
    """
    weights, daily = _lookback_rows(exposures, returns, confidence, horizon_days, lookback_days)
    linear_pnl = daily @ weights
    mean = horizon_days * float(linear_pnl.mean())
    sigma = math.sqrt(horizon_days) * float(linear_pnl.std(ddof=1))
    var, es = _normal_var_es(mean, sigma, confidence)
    return VarResult(
        method="parametric",
        confidence=confidence,
        horizon_days=horizon_days,
        var=var,
        es=es,
        pnl_mean=mean,
        pnl_std=sigma,
        scenarios=0,
        histogram_edges=(),
        histogram_counts=(),
    )


def monte_carlo_var(
    *,
    exposures: ArrayLike,
    returns: ArrayLike,
    confidence: float,
    horizon_days: int = 1,
    lookback_days: int | None = None,
    paths: int = 100_000,
    seed: int = 0,
    chunk_paths: int | None = None,
    threads: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> VarResult:
    """Correlated normal N-day log-returns, revalued in full; seedable, chunked, on `threads` threads.

    For a given (seed, paths) the result does not depend on `chunk_paths` or `threads`, to float32
    rounding (see the module docstring).
    """
    weights, daily = _lookback_rows(exposures, returns, confidence, horizon_days, lookback_days)
    _check_simulation(paths, chunk_paths, seed)
    factor = _covariance_factor(horizon_days * np.cov(daily, rowvar=False, ddof=1).reshape(daily.shape[1], -1))
    mean = horizon_days * daily.mean(axis=0)
    pnl = _simulate_pnl(
        factor_t=np.ascontiguousarray(factor.T, dtype=np.float32),
        mean=mean.astype(np.float32),
        weights=weights.astype(np.float32),
        paths=int(paths),
        seed=int(seed),
        chunk_paths=chunk_paths,
        threads=threads if threads is not None else min(MONTE_CARLO_THREADS, os.cpu_count() or 1),
        progress=progress,
    )
    return _result_from_scenarios("monte_carlo", confidence, horizon_days, pnl)


def var_inputs_check(inputs: VarInputs) -> None:
    """Raise the `VarInputError` that running `inputs` would raise, without running it."""
    if inputs.method not in VAR_METHODS:
        raise VarInputError("BAD_METHOD", f"method must be one of {', '.join(VAR_METHODS)}, not {inputs.method!r}.")
    _lookback_rows(inputs.exposures, inputs.returns, inputs.confidence, inputs.horizon_days, inputs.lookback_days)
    if inputs.method == "monte_carlo":
        _check_simulation(inputs.paths, inputs.chunk_paths, inputs.seed)


def kupiec_pof(*, breaches: int, observations: int, confidence: float, significance: float = 0.05) -> KupiecResult:
    """Kupiec's proportion-of-failures likelihood ratio and its chi-square(1) p-value.

    LR = −2 ln[(1 − p)^(T−x) p^x] + 2 ln[(1 − x/T)^(T−x) (x/T)^x], with p = 1 − confidence,
    x breaches in T observations and 0 ln 0 = 0. So x = 0 gives LR = −2T ln(1 − p), and x = T
    gives LR = −2T ln p. The p-value of chi-square with one degree of freedom is erfc(sqrt(LR / 2)).

    It is computed as the equal G-statistic 2 Σ [O ln(O/E) − (O − E)] over the breach and pass
    cells. The difference of the two log-likelihoods would cancel to a rounding residue of ~1e-14
    when x/T is close to p. Through the square root, that residue would move the p-value by 1e-7.
    """
    _check_confidence(confidence)
    if not 0 < significance < 1:
        raise VarInputError("BAD_CONFIDENCE", f"significance must lie strictly between 0 and 1, not {significance}.")
    if not _is_whole(observations) or not _is_whole(breaches) or observations < 1 or not 0 <= breaches <= observations:
        raise VarInputError(
            "BAD_INPUT", f"need 0 <= breaches <= observations and observations >= 1, not {breaches}/{observations}."
        )
    expected = 1.0 - confidence
    observed = breaches / observations
    lr = 2.0 * (
        _g_term(breaches, observations * expected) + _g_term(observations - breaches, observations * confidence)
    )
    p_value = math.erfc(math.sqrt(lr / 2.0))
    return KupiecResult(
        breaches=breaches,
        observations=observations,
        expected_rate=expected,
        observed_rate=observed,
        lr=lr,
        p_value=p_value,
        significance=significance,
        rejected=p_value < significance,
    )


def var_backtest(
    *,
    exposures: ArrayLike,
    returns: ArrayLike,
    confidence: float,
    lookback_days: int,
    window_days: int | None = None,
    method: BacktestMethod = "historical",
    significance: float = 0.05,
) -> BacktestResult:
    """Count the days of the last `window_days` whose loss beat the one-day VaR of the days before.

    Day t's VaR comes from rows [t − lookback_days, t) of `returns` only, so it never sees day t.
    `method` is historical (the confidence quantile of the lookback's full-revaluation losses) or
    parametric (z σ − μ of the lookback's linear P&L). The realized loss is always a full
    revaluation. `window_days` defaults to every day that has a full lookback before it.
    """
    if method not in BACKTEST_METHODS:
        raise VarInputError("BAD_METHOD", f"a backtest method is one of {', '.join(BACKTEST_METHODS)}, not {method!r}.")
    weights, rows = _validated(exposures, returns, confidence, 1, lookback_days)
    days = rows.shape[0]
    window = days - lookback_days if window_days is None else window_days
    if not _is_whole(window) or window < 1 or days < lookback_days + window:
        raise VarInputError(
            "NO_HISTORY",
            f"A backtest of {window} day(s) after a {lookback_days}-day lookback needs {lookback_days + window} "
            f"daily returns; there are {days}.",
        )
    first = days - window
    if method == "historical":
        history = -(np.expm1(rows[first - lookback_days : days - 1]) @ weights)
        var = np.quantile(sliding_window_view(history, lookback_days), confidence, axis=1)
    else:
        linear = sliding_window_view(rows[first - lookback_days : days - 1] @ weights, lookback_days)
        z = NormalDist().inv_cdf(confidence)
        var = z * linear.std(axis=1, ddof=1) - linear.mean(axis=1)
    realized = -(np.expm1(rows[first:]) @ weights)
    breach_days = np.flatnonzero(realized > var) + first
    return BacktestResult(
        method=method,
        confidence=confidence,
        lookback_days=lookback_days,
        observations=window,
        breaches=int(breach_days.size),
        breach_days=tuple(breach_days.tolist()),
        daily_var=tuple(var.tolist()),
        daily_loss=tuple(realized.tolist()),
        kupiec=kupiec_pof(
            breaches=int(breach_days.size), observations=window, confidence=confidence, significance=significance
        ),
    )


# --------------------------------------------------------------------------- internals


def _float_array(values: ArrayLike, name: str) -> NDArray[np.float64]:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise VarInputError("BAD_INPUT", f"{name} must hold numbers.") from error
    if not np.all(np.isfinite(array)):
        raise VarInputError("BAD_INPUT", f"{name} must hold finite numbers only.")
    return array


def _is_whole(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _g_term(observed: int, expected: float) -> float:
    """O ln(O/E) − (O − E) ≥ 0, as E ((1 + u) ln(1 + u) − u) with u = O/E − 1: no cancellation near O = E."""
    if observed == 0:
        return expected
    u = (observed - expected) / expected
    return expected * ((1.0 + u) * math.log1p(u) - u)


def _check_confidence(confidence: float) -> None:
    if not isinstance(confidence, float | int) or isinstance(confidence, bool) or not 0 < confidence < 1:
        raise VarInputError("BAD_CONFIDENCE", f"confidence must lie strictly between 0 and 1, not {confidence!r}.")


def _validated(
    exposures: ArrayLike, returns: ArrayLike, confidence: float, horizon_days: int, lookback_days: int | None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The exposures and every row of returns as float64, or the first applicable `VarInputError`."""
    weights = _float_array(exposures, "exposures")
    if weights.ndim != 1:
        raise VarInputError("BAD_INPUT", f"exposures must be one value per instrument, not of shape {weights.shape}.")
    if weights.size == 0 or not np.any(weights):
        raise VarInputError("NO_POSITIONS", "There is no position to measure: every exposure is zero or none is given.")
    _check_confidence(confidence)
    if not _is_whole(horizon_days) or not 1 <= horizon_days <= MAX_HORIZON_DAYS:
        raise VarInputError(
            "BAD_HORIZON", f"horizon_days must be a whole number in [1, {MAX_HORIZON_DAYS}], not {horizon_days!r}."
        )
    if lookback_days is not None and (not _is_whole(lookback_days) or lookback_days < MIN_RETURN_DAYS):
        raise VarInputError(
            "BAD_LOOKBACK",
            f"lookback_days must be a whole number of at least {MIN_RETURN_DAYS}, not {lookback_days!r}.",
        )
    daily = _float_array(returns, "returns")
    if daily.ndim == 1 and weights.size == 1:
        daily = daily[:, np.newaxis]
    if daily.ndim != 2 or daily.shape[1] != weights.size:
        raise VarInputError(
            "BAD_INPUT", f"returns must be days × {weights.size} instrument(s), not of shape {daily.shape}."
        )
    needed = lookback_days if lookback_days is not None else MIN_RETURN_DAYS
    if daily.shape[0] < needed:
        raise VarInputError("NO_HISTORY", f"{needed} daily returns are needed; there are {daily.shape[0]}.")
    lookback = lookback_days if lookback_days is not None else daily.shape[0]
    if lookback < horizon_days:
        raise VarInputError(
            "LOOKBACK_SHORTER_THAN_HORIZON",
            f"A {horizon_days}-day horizon needs a lookback of at least {horizon_days} days, not {lookback}.",
        )
    return weights, daily


def _check_simulation(paths: int, chunk_paths: int | None, seed: int) -> None:
    if not _is_whole(paths) or not MIN_PATHS <= paths <= MAX_PATHS:
        raise VarInputError(
            "BAD_PATHS", f"paths must be a whole number in [{MIN_PATHS:,}, {MAX_PATHS:,}], not {paths}."
        )
    if chunk_paths is not None and (not _is_whole(chunk_paths) or chunk_paths < 1):
        raise VarInputError("BAD_PATHS", f"chunk_paths must be a positive whole number, not {chunk_paths}.")
    if not _is_whole(seed) or seed < 0:
        raise VarInputError("BAD_SEED", f"seed must be a non-negative whole number, not {seed!r}.")


def _lookback_rows(
    exposures: ArrayLike, returns: ArrayLike, confidence: float, horizon_days: int, lookback_days: int | None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    weights, daily = _validated(exposures, returns, confidence, horizon_days, lookback_days)
    return weights, daily if lookback_days is None else daily[-lookback_days:]


def _overlapping_sums(daily: NDArray[np.float64], days: int) -> NDArray[np.float64]:
    """The sums of `days` consecutive rows, in one new array (the caller exponentiates it in place).

    N shifted adds over contiguous rows beat one cumulative sum down the columns: NumPy walks that
    one with a stride, ~16 times slower per element. Past `SHIFTED_SUM_MAX_DAYS` the cumulative
    sum wins. Each fresh multi-megabyte temporary also costs its page faults.
    """
    scenarios = daily.shape[0] - days + 1
    if days <= SHIFTED_SUM_MAX_DAYS:
        sums = daily[:scenarios].copy()
        for offset in range(1, days):
            sums += daily[offset : offset + scenarios]
        return sums
    cumulative = np.cumsum(daily, axis=0)
    sums = np.empty((scenarios, daily.shape[1]))
    sums[0] = cumulative[days - 1]
    np.subtract(cumulative[days:], cumulative[: scenarios - 1], out=sums[1:])
    return sums


def _var_es(losses: NDArray[np.float64], confidence: float) -> tuple[float, float]:
    var = float(np.quantile(losses, confidence))
    tail = losses[losses >= var]
    # The interpolated quantile never exceeds the largest loss, so the tail is never empty.
    return var, float(tail.mean())


def _normal_var_es(mean: float, sigma: float, confidence: float) -> tuple[float, float]:
    normal = NormalDist()
    z = normal.inv_cdf(confidence)
    return z * sigma - mean, normal.pdf(z) / (1.0 - confidence) * sigma - mean


def _result_from_scenarios(
    method: VarMethod, confidence: float, horizon_days: int, pnl: NDArray[np.float64]
) -> VarResult:
    var, es = _var_es(-pnl, confidence)
    counts, edges = _histogram(pnl)
    return VarResult(
        method=method,
        confidence=confidence,
        horizon_days=horizon_days,
        var=var,
        es=es,
        pnl_mean=float(pnl.mean()),
        pnl_std=float(pnl.std(ddof=1)) if pnl.size > 1 else 0.0,
        scenarios=int(pnl.size),
        histogram_edges=tuple(edges.tolist()),
        histogram_counts=tuple(counts.tolist()),
    )


def _histogram(pnl: NDArray[np.float64]) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """np.histogram(pnl, HISTOGRAM_BINS) by arithmetic and bincount: twice as fast at 1M paths.

    Same bins and the same all-equal case (a range of ±0.5). A value within rounding of an inner
    edge may land in the neighbouring bin, which np.histogram settles by comparing with the edges.
    """
    low, high = float(pnl.min()), float(pnl.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    index = ((pnl - low) * (HISTOGRAM_BINS / (high - low))).astype(np.intp)
    np.minimum(index, HISTOGRAM_BINS - 1, out=index)
    return np.bincount(index, minlength=HISTOGRAM_BINS), np.linspace(low, high, HISTOGRAM_BINS + 1)


def _covariance_factor(covariance: NDArray[np.float64]) -> NDArray[np.float64]:
    """A with A Aᵀ = covariance: Cholesky, or the eigen factor of the PSD part (module docstring)."""
    try:
        return np.asarray(np.linalg.cholesky(covariance), dtype=np.float64)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(covariance)
        tolerance = max(float(values[-1]), 0.0) * covariance.shape[0] * np.finfo(np.float64).eps
        keep = values > tolerance
        return np.asarray(vectors[:, keep] * np.sqrt(values[keep]), dtype=np.float64)


def _simulate_pnl(
    *,
    factor_t: NDArray[np.float32],
    mean: NDArray[np.float32],
    weights: NDArray[np.float32],
    paths: int,
    seed: int,
    chunk_paths: int | None,
    threads: int,
    progress: Callable[[float], None] | None = None,
) -> NDArray[np.float64]:
    """The P&L of every path, drawn block by block (module docstring) on `threads` threads."""
    factors, instruments = factor_t.shape
    if chunk_paths is None:
        chunk_paths = max(256, CHUNK_BYTES // (4 * max(factors, instruments, 1)))
    chunk_paths = min(chunk_paths, STREAM_BLOCK_PATHS)
    pnl = np.empty(paths)
    block_count = -(-paths // STREAM_BLOCK_PATHS)
    blocks = iter(range(block_count))
    take_lock = threading.Lock()
    done_blocks = [0]

    def next_blocks() -> Iterator[int]:
        while True:
            with take_lock:
                block = next(blocks, None)
            if block is None:
                return
            yield block

    def worker() -> None:
        normals = np.empty((chunk_paths, factors), dtype=np.float32)
        horizon = np.empty((chunk_paths, instruments), dtype=np.float32)
        chunk_pnl = np.empty(chunk_paths, dtype=np.float32)
        for block in next_blocks():
            generator = np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed, spawn_key=(block,))))
            stop = min((block + 1) * STREAM_BLOCK_PATHS, paths)
            for start in range(block * STREAM_BLOCK_PATHS, stop, chunk_paths):
                rows = min(chunk_paths, stop - start)
                generator.standard_normal(out=normals[:rows], dtype=np.float32)
                np.matmul(normals[:rows], factor_t, out=horizon[:rows])
                horizon[:rows] += mean
                np.expm1(horizon[:rows], out=horizon[:rows])
                np.matmul(horizon[:rows], weights, out=chunk_pnl[:rows])
                pnl[start : start + rows] = chunk_pnl[:rows]
            if progress is not None:
                with take_lock:
                    done_blocks[0] += 1
                    fraction = done_blocks[0] / block_count
                progress(fraction)

    if threads <= 1:
        worker()
    else:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="var-mc") as pool:
            for done in [pool.submit(worker) for _ in range(threads)]:
                done.result()
    return pnl
