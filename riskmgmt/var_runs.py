"""Value-at-Risk runs of an account (DESIGN §6, ADR 0007): the request is checked and its inputs
frozen when it is made (a bad one is a 400 before anything is queued), the job computes it with
`riskmgmt.var` and stores the figures and a backtest next to the inputs.

Inputs: each open position of the account valued at its instrument's last price (reference price
before any trade) in the quote asset; the daily closes of those instruments on the days where all
of them have one, up to yesterday (today's candle is not closed). The job reads the same window
again and proves it unchanged by the digest of the returns matrix, so a stored run can be
repeated exactly.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from marketdata.models import Candle, CandleInterval, Instrument
from portal.choices import JobKind, Role
from portal.decimals import AMOUNT_UNIT
from portal.errors import DomainError
from portal.jobs import JobRun, job_submit, job_succeed
from portal.models import User
from riskmgmt.models import VarRun
from riskmgmt.var import (
    MIN_RETURN_DAYS,
    VarInputError,
    VarInputs,
    log_returns,
    value_at_risk,
    var_backtest,
    var_inputs_check,
)
from trading.models import Position, TradingAccount
from trading.selectors import account_get_visible

#: The one-day VaR is backtested over at most this many days after the lookback.
BACKTEST_WINDOW_DAYS = 250
#: Fewer backtest days than this say nothing (Kupiec's test needs observations).
BACKTEST_MIN_DAYS = MIN_RETURN_DAYS
#: The backtest runs the historical model when the run's method has no rolling form.
_BACKTEST_METHOD = {"historical": "historical", "parametric": "parametric", "monte_carlo": "parametric"}


@dataclass(frozen=True)
class VarMarket:
    """What a run measures: positions valued in one currency and the daily returns of their
    instruments, oldest first, in the positions' order; `days` are the days of the closes (one
    more than the returns)."""

    positions: list[dict[str, str]]
    currency: str
    days: list[date]
    returns: np.ndarray

    @property
    def exposures(self) -> np.ndarray:
        return np.array([float(p["exposure"]) for p in self.positions])

    @property
    def digest(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.returns, dtype="<f8").tobytes()).hexdigest()


def var_run_submit(
    *,
    user: User,
    account_id: int,
    method: str,
    confidence: float,
    horizon_days: int,
    lookback_days: int,
    paths: int | None = None,
    seed: int | None = None,
) -> VarRun:
    """Check the request against the account's positions and history now, freeze its inputs and
    queue its job. A Monte Carlo run without a seed gets one, stored, so it can be repeated."""
    account = account_get_visible(user=user, account_id=account_id)
    if method == "monte_carlo":
        paths = 100_000 if paths is None else paths
        seed = secrets.randbelow(2**31) if seed is None else seed
    else:
        paths = seed = None
    market = _market_now(account, rows=lookback_days + BACKTEST_WINDOW_DAYS)
    var_inputs_check(_inputs(market, method, confidence, horizon_days, lookback_days, paths, seed))
    params: dict[str, Any] = {
        "account": account.pk,
        "method": method,
        "confidence": confidence,
        "horizon_days": horizon_days,
        "lookback_days": lookback_days,
        "paths": paths,
        "seed": seed,
    }
    with transaction.atomic():
        job = job_submit(kind=JobKind.VAR, owner=user, account=account, params=params)
        return VarRun.objects.create(
            job=job,
            account=account,
            method=method,
            confidence=Decimal(str(confidence)),
            horizon_days=horizon_days,
            lookback_days=lookback_days,
            paths=paths,
            seed=seed,
            currency=market.currency,
            positions=market.positions,
            window_start=market.days[0],
            window_end=market.days[-1],
            returns_digest=market.digest,
            numpy_version=np.__version__,
        )


def var_run_execute(run: JobRun) -> None:
    """The job's body: read the frozen window again, compute VaR and ES, backtest, store."""
    var_run = VarRun.objects.select_related("account").get(job=run.job)
    run.progress(2, "Reading the daily closes")
    market = _market_frozen(var_run)
    if market.digest != var_run.returns_digest:
        raise DomainError(
            "history_changed",
            "The daily history of these instruments changed since the run was requested (an import?): "
            "request the run again.",
        )
    inputs = _inputs(
        market,
        var_run.method,
        float(var_run.confidence),
        var_run.horizon_days,
        var_run.lookback_days,
        var_run.paths,
        var_run.seed,
    )
    result = _computed(run, inputs)
    run.progress(92, "Backtesting the one-day VaR")
    backtest = _backtest(market, var_run)
    var_run.var, var_run.es = _money(result.var), _money(result.es)
    var_run.pnl_mean, var_run.pnl_std = _money(result.pnl_mean), _money(result.pnl_std)
    var_run.scenarios = result.scenarios
    var_run.histogram = {"edges": list(result.histogram_edges), "counts": list(result.histogram_counts)}
    var_run.backtest = backtest
    var_run.finished_at = timezone.now()
    summary = {
        "var": str(var_run.var),
        "es": str(var_run.es),
        "currency": var_run.currency,
        "method": var_run.method,
        "confidence": float(var_run.confidence),
        "horizon_days": var_run.horizon_days,
        "var_run": var_run.pk,
    }
    with transaction.atomic():
        var_run.save()
        job_succeed(run.job, result=summary)


def var_runs_visible_to(user: User) -> QuerySet[VarRun]:
    """A user's own accounts' runs; operators see every run."""
    runs = VarRun.objects.select_related("job", "account")
    return runs if user.has_role_at_least(Role.OPERATOR) else runs.filter(account__owner=user)


# -- internals --------------------------------------------------------------------------------


def _computed(run: JobRun, inputs: VarInputs):
    """Run the maths on a thread of its own while this one reports its progress (Monte Carlo
    reports a fraction per block of paths; a canceled job stops the simulation)."""
    state: dict[str, Any] = {"fraction": 0.0, "stop": False}

    def on_block(fraction: float) -> None:
        state["fraction"] = fraction
        if state["stop"]:
            raise InterruptedError("canceled")

    outcome: dict[str, Any] = {}

    def compute() -> None:
        try:
            outcome["result"] = value_at_risk(inputs, progress=on_block)
        except BaseException as error:  # noqa: BLE001 - handed to the job's thread
            outcome["error"] = error

    worker = threading.Thread(target=compute, name="var-run", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(timeout=0.2)
            run.progress(5 + 85 * state["fraction"], "Computing")
    except BaseException:
        state["stop"] = True
        worker.join()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _backtest(market: VarMarket, var_run: VarRun) -> dict[str, Any]:
    """Breaches of the one-day VaR over the days after the lookback, with Kupiec's verdict; or
    why there is none."""
    window = min(BACKTEST_WINDOW_DAYS, market.returns.shape[0] - var_run.lookback_days)
    if window < BACKTEST_MIN_DAYS:
        return {
            "available": False,
            "reason": f"A backtest needs {var_run.lookback_days + BACKTEST_MIN_DAYS} daily returns; "
            f"there are {market.returns.shape[0]}.",
        }
    result = var_backtest(
        exposures=market.exposures,
        returns=market.returns,
        confidence=float(var_run.confidence),
        lookback_days=var_run.lookback_days,
        window_days=window,
        method=_BACKTEST_METHOD[var_run.method],  # type: ignore[arg-type]
    )
    kupiec = result.kupiec
    return {
        "available": True,
        "method": result.method,
        "observations": result.observations,
        "breaches": result.breaches,
        "expected_breaches": round(result.observations * kupiec.expected_rate, 2),
        "breach_rate": kupiec.observed_rate,
        "kupiec_lr": kupiec.lr,
        "kupiec_p_value": kupiec.p_value,
        "significance": kupiec.significance,
        "verdict": "rejected" if kupiec.rejected else "accepted",
        "first_day": market.days[-window].isoformat(),
        "last_day": market.days[-1].isoformat(),
    }


def _inputs(
    market: VarMarket,
    method: str,
    confidence: float,
    horizon_days: int,
    lookback_days: int,
    paths: int | None,
    seed: int | None,
) -> VarInputs:
    return VarInputs(
        exposures=market.exposures,
        returns=market.returns,
        method=method,  # type: ignore[arg-type]
        confidence=confidence,
        horizon_days=horizon_days,
        lookback_days=lookback_days,
        paths=paths or 0,
        seed=seed or 0,
    )


def _market_now(account: TradingAccount, *, rows: int) -> VarMarket:
    positions = list(
        Position.objects.filter(account=account)
        .exclude(quantity=0)
        .select_related("instrument__quote")
        .order_by("instrument__symbol")
    )
    if not positions:
        raise VarInputError("NO_POSITIONS", f"Account #{account.pk} holds no position: there is no risk to measure.")
    currencies = {position.instrument.quote.code for position in positions}
    if len(currencies) > 1:
        raise VarInputError(
            "BAD_INPUT", f"The positions are valued in several currencies ({', '.join(sorted(currencies))})."
        )
    valued = []
    for position in positions:
        price = position.instrument.last_price or position.instrument.reference_price
        valued.append(
            {
                "symbol": position.instrument.symbol,
                "quantity": str(position.quantity),
                "price": str(price),
                "exposure": str((position.quantity * price).quantize(AMOUNT_UNIT)),
            }
        )
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    instruments = [position.instrument for position in positions]
    days, closes = _common_closes(instruments, before=today, limit=rows + 1)
    return _market(valued, currencies.pop(), days, closes)


def _market_frozen(var_run: VarRun) -> VarMarket:
    symbols = [position["symbol"] for position in var_run.positions]
    by_symbol = {instrument.symbol: instrument for instrument in Instrument.objects.filter(symbol__in=symbols)}
    instruments = [by_symbol[symbol] for symbol in symbols]
    start = datetime.combine(var_run.window_start, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(var_run.window_end, datetime.min.time(), tzinfo=UTC) + timedelta(days=1)
    days, closes = _common_closes(instruments, before=end, since=start)
    return _market(var_run.positions, var_run.currency, days, closes)


def _market(positions: list[dict[str, str]], currency: str, days: list[date], closes: np.ndarray) -> VarMarket:
    if len(days) < 2:
        raise VarInputError(
            "NO_HISTORY",
            f"There are {len(days)} daily closes common to {', '.join(p['symbol'] for p in positions)}: "
            "no returns to measure.",
        )
    return VarMarket(positions=positions, currency=currency, days=days, returns=log_returns(closes))


def _common_closes(
    instruments: list[Instrument], *, before: datetime, since: datetime | None = None, limit: int | None = None
) -> tuple[list[date], np.ndarray]:
    """The daily closes of `instruments` (columns in their order) on the days all of them have
    one, opening before `before` (and from `since`), the latest `limit` of them, oldest first."""
    candles = Candle.objects.filter(instrument__in=instruments, interval=CandleInterval.D1, open_time__lt=before)
    if since is not None:
        candles = candles.filter(open_time__gte=since)
    column = {instrument.pk: index for index, instrument in enumerate(instruments)}
    by_day: dict[date, list[float | None]] = {}
    for instrument_id, open_time, close in candles.values_list("instrument_id", "open_time", "close").iterator():
        by_day.setdefault(open_time.date(), [None] * len(instruments))[column[instrument_id]] = float(close)
    days = sorted(day for day, closes in by_day.items() if None not in closes)
    if limit is not None:
        days = days[-limit:]
    matrix = np.array([by_day[day] for day in days], dtype=np.float64).reshape(len(days), len(instruments))
    return days, matrix


def _money(value: float) -> Decimal:
    return Decimal(repr(round(value, 8)))
