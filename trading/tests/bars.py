"""Hand-made candles and a venue's rules for the strategy and backtester tests (no database)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from trading.strategies.backtest import Candles
from trading.strategies.base import Rules

D = Decimal
#: A Monday, 00:00 UTC.
START = 1_767_571_200
RULES = Rules(
    symbol="BTCUSDT",
    tick_size=D("0.01"),
    lot_size=D("0.001"),
    min_qty=D("0.001"),
    max_qty=D("1000"),
    min_notional=D("1"),
    maker_fee_rate=D("0.001"),
    taker_fee_rate=D("0.002"),
)


def candles_of(
    closes: Sequence[float],
    *,
    opens: Sequence[float] | None = None,
    highs: Sequence[float] | None = None,
    lows: Sequence[float] | None = None,
    interval: int = 60,
    first: int = 0,
) -> Candles:
    """One-minute bars with these closes, the first being bar number `first` after START; each
    opens at the previous close unless told, and its high and low are its open and close unless
    told."""
    close = np.asarray(closes, dtype=float)
    open_ = np.asarray(opens, dtype=float) if opens is not None else np.concatenate(([close[0]], close[:-1]))
    high = np.asarray(highs, dtype=float) if highs is not None else np.maximum(open_, close)
    low = np.asarray(lows, dtype=float) if lows is not None else np.minimum(open_, close)
    times = START + (first + np.arange(len(close), dtype=np.int64)) * interval
    return Candles(times, open_, high, low, close, np.ones(len(close)), interval)


def random_walk(count: int, *, seed: int, start: float = 100.0, sigma: float = 0.004, interval: int = 60) -> Candles:
    """`count` bars of a seeded geometric random walk, prices on the 0.01 tick."""
    rng = np.random.default_rng(seed)
    close = np.round(start * np.exp(np.cumsum(rng.normal(0, sigma, count))), 2)
    open_ = np.concatenate(([start], close[:-1]))
    wick = np.round(np.abs(rng.normal(0, sigma * start / 4, (2, count))), 2)
    return candles_of(
        close.tolist(),
        opens=open_.tolist(),
        highs=np.round(np.maximum(open_, close) + wick[0], 2).tolist(),
        lows=np.round(np.minimum(open_, close) - wick[1], 2).tolist(),
        interval=interval,
    )


def candles_store(instrument, candles: Candles, *, interval: str = "1m") -> None:
    """Store `candles` as the instrument's history (their open times, prices as Decimals)."""
    from marketdata.models import Candle, CandleOrigin

    def money(value: float) -> Decimal:
        return Decimal(repr(value))

    Candle.objects.bulk_create(
        (
            Candle(
                instrument=instrument,
                interval=interval,
                open_time=datetime.fromtimestamp(int(time), tz=UTC),
                open=money(open_),
                high=money(high),
                low=money(low),
                close=money(close),
                volume=money(volume),
                quote_volume=money(volume * close),
                trade_count=1,
                origin=CandleOrigin.BACKFILL,
            )
            for time, open_, high, low, close, volume in zip(
                candles.time.tolist(),
                candles.open.tolist(),
                candles.high.tolist(),
                candles.low.tolist(),
                candles.close.tolist(),
                candles.volume.tolist(),
                strict=True,
            )
        ),
        batch_size=5000,
    )
