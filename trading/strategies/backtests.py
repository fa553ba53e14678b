"""Backtests as jobs (ADR 0008, ADR 0007): `backtest_submit` checks a request and freezes its
inputs (a bad one is a 400 before anything is queued), `backtest_execute` is the job's body:
it reads the candles, proves them the ones counted at the request, runs the strategy over them
(trading.strategies.backtest) and stores the metrics, the equity curve and the fills.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from marketdata.candles import INTERVAL_SECONDS
from marketdata.models import Candle
from marketdata.selectors import candle_columns, instrument_get
from portal.choices import JobKind, Role
from portal.decimals import AMOUNT_UNIT
from portal.errors import DomainError, NotFoundError
from portal.jobs import JobRun, job_submit, job_succeed
from portal.models import User
from trading.models import Backtest, BacktestFill, Strategy
from trading.strategies.backtest import Candles, backtest_run
from trading.strategies.base import Caps, Holding, Rules, params_validate
from trading.strategies.builtin import strategy_type_get
from trading.strategies.metrics import backtest_metrics

#: Points of the stored equity and drawdown curves at most (a chart's worth).
EQUITY_POINTS = 2_000
#: Bars one backtest reads at most: two years of minutes.
BARS_MAX = 2 * 525_600
#: Slippage accepted, in basis points.
SLIPPAGE_BPS_MAX = Decimal(1000)
_FILLS_BATCH = 5_000


@dataclass(frozen=True)
class BacktestRequest:
    kind: str
    params: dict[str, Any]
    symbol: str
    interval: str
    start: datetime
    end: datetime
    starting_balance: Decimal
    slippage_bps: Decimal = Decimal(0)
    caps: Caps = Caps()
    name: str = ""


def backtest_submit(*, user: User, request: BacktestRequest, strategy: Strategy | None = None) -> Backtest:
    """Check `request`, count its candles, freeze the instrument's fees, and queue the job."""
    kind = strategy_type_get(request.kind)
    params = params_validate(kind, request.params)
    instrument = instrument_get(symbol=request.symbol)
    _request_check(request)
    bars = Candle.objects.filter(
        instrument=instrument, interval=request.interval, open_time__gte=request.start, open_time__lt=request.end
    ).count()
    if bars == 0:
        raise DomainError(
            "no_data",
            f"No {request.interval} candles of {instrument.symbol} from {request.start:%Y-%m-%d %H:%M} "
            f"to {request.end:%Y-%m-%d %H:%M} UTC.",
            status=400,
            errors={"start": ["No candles in this period."]},
        )
    if bars > BARS_MAX:
        raise DomainError(
            "too_many_bars",
            f"The period holds {bars:,} {request.interval} candles; a backtest reads at most {BARS_MAX:,}.",
            status=400,
            errors={"start": [f"At most {BARS_MAX:,} candles: a shorter period or a wider interval."]},
        )
    params_shown = {
        "kind": request.kind,
        "symbol": instrument.symbol,
        "interval": request.interval,
        "start": request.start.isoformat(),
        "end": request.end.isoformat(),
    }
    with transaction.atomic():
        job = job_submit(kind=JobKind.BACKTEST, owner=user, params=params_shown)
        return Backtest.objects.create(
            job=job,
            owner=user,
            strategy=strategy,
            name=request.name[:100],
            kind=request.kind,
            params=params,
            instrument=instrument,
            interval=request.interval,
            start=request.start,
            end=request.end,
            starting_balance=request.starting_balance,
            slippage_bps=request.slippage_bps,
            maker_fee_rate=instrument.maker_fee_rate,
            taker_fee_rate=instrument.taker_fee_rate,
            max_position=request.caps.max_position,
            max_order_qty=request.caps.max_order_qty,
            max_daily_loss=request.caps.max_daily_loss,
            bars=bars,
        )


def backtest_execute(run: JobRun) -> None:
    """The job's body: candles, the run, the figures, stored with the job's success."""
    backtest = Backtest.objects.select_related("instrument").get(job=run.job)
    run.progress(1, "Reading the candles")
    candles = _candles(backtest)
    if len(candles) != backtest.bars:
        raise DomainError(
            "history_changed",
            f"The period held {backtest.bars:,} candles when the backtest was requested and holds "
            f"{len(candles):,} now (an import?): request it again.",
        )
    kind = strategy_type_get(backtest.kind)
    rules = replace(
        Rules.of(backtest.instrument), maker_fee_rate=backtest.maker_fee_rate, taker_fee_rate=backtest.taker_fee_rate
    )

    def progress(done: int, total: int) -> None:
        run.progress(10 + 80 * done / total, f"{done:,} of {total:,} bars")

    outcome = backtest_run(
        kind(backtest.params),
        candles,
        rules=rules,
        caps=Caps(backtest.max_position, backtest.max_order_qty, backtest.max_daily_loss),
        starting_quote=backtest.starting_balance,
        slippage_bps=backtest.slippage_bps,
        progress=progress,
    )
    run.progress(92, "Storing the result")
    holding = Holding()
    fills = []
    for seq, fill in enumerate(outcome.fills, start=1):
        before = len(holding.closed)
        realized = holding.apply(fill)
        fills.append(
            BacktestFill(
                backtest=backtest,
                seq=seq,
                at=datetime.fromtimestamp(fill.time, tz=UTC),
                side=fill.side,
                price=fill.price,
                quantity=fill.quantity,
                fee=fill.fee,
                realized_pnl=realized if len(holding.closed) > before else None,
                position=holding.position,
            )
        )
    initial = float(backtest.starting_balance)
    metrics = backtest_metrics(
        equity=outcome.equity,
        exposed=outcome.exposed,
        initial=initial,
        interval_seconds=candles.interval_seconds,
        closed_pnls=holding.closed,
        fills=len(outcome.fills),
    )
    money = {"fees": holding.fees, "realized_pnl": holding.realized_pnl, "position": holding.position}
    metrics.update({name: f"{value.quantize(AMOUNT_UNIT):f}" for name, value in money.items()})
    backtest.metrics = metrics
    backtest.candles_digest = candles_digest(candles)
    backtest.equity = _curves(candles, outcome.equity, initial)
    backtest.log = outcome.log[:200]
    backtest.finished_at = timezone.now()
    summary = {"backtest": backtest.pk, **{name: metrics[name] for name in ("total_return", "sharpe", "max_drawdown")}}
    with transaction.atomic():
        backtest.save()
        for start in range(0, len(fills), _FILLS_BATCH):
            BacktestFill.objects.bulk_create(fills[start : start + _FILLS_BATCH])
        job_succeed(run.job, result=summary)


def backtests_visible_to(user: User) -> QuerySet[Backtest]:
    """A user's own backtests; operators see every one."""
    backtests = Backtest.objects.select_related("job__owner", "instrument", "owner")
    return backtests if user.has_role_at_least(Role.OPERATOR) else backtests.filter(owner=user)


def backtest_get_visible(*, user: User, backtest_id: int) -> Backtest:
    backtest = backtests_visible_to(user).filter(pk=backtest_id).first()
    if backtest is None:
        raise NotFoundError("not_found", f"No backtest #{backtest_id} among yours.")
    return backtest


# -- internals --------------------------------------------------------------------------------


def _request_check(request: BacktestRequest) -> None:
    if request.interval not in INTERVAL_SECONDS:
        raise DomainError(
            "bad_interval", f"Unknown interval {request.interval!r}.", status=400, errors={"interval": ["Unknown."]}
        )
    if request.end <= request.start:
        raise DomainError(
            "bad_range", "The period must end after it starts.", status=400, errors={"end": ["Must be after start."]}
        )
    if request.starting_balance <= 0:
        raise DomainError(
            "bad_balance",
            "The starting balance must be positive.",
            status=400,
            errors={"starting_balance": ["Must be positive."]},
        )
    if not Decimal(0) <= request.slippage_bps <= SLIPPAGE_BPS_MAX:
        raise DomainError(
            "bad_slippage",
            f"Slippage is from 0 to {SLIPPAGE_BPS_MAX} basis points.",
            status=400,
            errors={"slippage_bps": [f"From 0 to {SLIPPAGE_BPS_MAX}."]},
        )


def _candles(backtest: Backtest) -> Candles:
    times, values = candle_columns(
        instrument=backtest.instrument, interval=backtest.interval, start=backtest.start, end=backtest.end
    )
    columns = np.array(values, dtype=float).reshape(-1, 5)
    return Candles(
        time=np.array([int(moment.timestamp()) for moment in times], dtype=np.int64),
        open=columns[:, 0].copy(),
        high=columns[:, 1].copy(),
        low=columns[:, 2].copy(),
        close=columns[:, 3].copy(),
        volume=columns[:, 4].copy(),
        interval_seconds=INTERVAL_SECONDS[backtest.interval],
    )


def candles_digest(candles: Candles) -> str:
    """SHA-256 of the bars a backtest read (times and prices)."""
    digest = hashlib.sha256()
    for column in (candles.time, candles.open, candles.high, candles.low, candles.close, candles.volume):
        digest.update(np.ascontiguousarray(column).tobytes())
    return digest.hexdigest()


def _curves(candles: Candles, equity: np.ndarray, initial: float) -> dict[str, list]:
    """Equity, drawdown and the instrument's close at the end of at most EQUITY_POINTS equal
    runs of bars (the drawdown: the deepest of its run, so a chart never hides the worst)."""
    peaks = np.maximum.accumulate(np.concatenate(([initial], equity)))[1:]
    drawdown = equity / peaks - 1.0
    count = len(equity)
    edges = np.unique(np.linspace(0, count, min(count, EQUITY_POINTS) + 1).astype(int))
    ends = edges[1:] - 1
    deepest = np.minimum.reduceat(drawdown, edges[:-1])
    closing = candles.time[ends] + candles.interval_seconds
    return {
        "time": closing.tolist(),
        "equity": np.round(equity[ends], 8).tolist(),
        "drawdown": np.round(deepest, 8).tolist(),
        "close": candles.close[ends].tolist(),
    }
