"""Reads of market data: instruments, candles and the 24 h ticker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from django.db.models import FloatField, Max, Min, OuterRef, Subquery, Sum
from django.db.models.functions import Cast
from django.utils import timezone

from marketdata.candles import bucket_close_time, bucket_start
from marketdata.models import Candle, CandleInterval, Instrument
from portal.decimals import ZERO
from portal.errors import NotFoundError


def instrument_get(*, symbol: str) -> Instrument:
    """The instrument `symbol` names (any case), with its venue and assets; 404 UNKNOWN_SYMBOL otherwise."""
    instrument = Instrument.objects.select_related("venue", "base", "quote").filter(symbol__iexact=symbol).first()
    if instrument is None:
        raise NotFoundError("UNKNOWN_SYMBOL", f"No instrument {symbol!r}.")
    return instrument


#: Most candles one query returns (Binance's kline limit).
CANDLES_MAX = 1000


class CandleRow(NamedTuple):
    """A stored candle's values (a row, not a model instance: a chart reads a thousand)."""

    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trade_count: int


def tape_seqs(*, symbols: set[str]) -> dict[str, int]:
    """The current `tape_seq` of each known instrument among `symbols` (exact symbols)."""
    return dict(Instrument.objects.filter(symbol__in=symbols).values_list("symbol", "tape_seq"))


def candles_range(
    *,
    instrument: Instrument,
    interval: str,
    limit: int,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[CandleRow]:
    """Stored candles of `interval` opening from `start` to `end` (both included), oldest
    first, at most `limit`: the first ones from `start` when it is given, else the latest up
    to `end`. Buckets without trades have no candle. Served by the bucket's unique index."""
    candles = Candle.objects.filter(instrument=instrument, interval=interval)
    if start is not None:
        candles = candles.filter(open_time__gte=start)
    if end is not None:
        candles = candles.filter(open_time__lte=end)
    rows = candles.order_by("open_time" if start is not None else "-open_time").values_list(*CandleRow._fields)
    found = [CandleRow._make(row) for row in rows[:limit]]
    return found if start is not None else found[::-1]


def candle_columns(
    *, instrument: Instrument, interval: str, start: datetime, end: datetime
) -> tuple[list[datetime], list[tuple[float, float, float, float, float]]]:
    """Every stored candle of `interval` opening in [start, end), oldest first: their open times,
    and their open, high, low, close and volume as floats (cast by the database: a backtest reads
    a year of minutes)."""
    as_float = {name: Cast(name, FloatField()) for name in ("open", "high", "low", "close", "volume")}
    rows = (
        Candle.objects.filter(instrument=instrument, interval=interval, open_time__gte=start, open_time__lt=end)
        .order_by("open_time")
        .annotate(**{f"{name}_float": value for name, value in as_float.items()})
        .values_list("open_time", *(f"{name}_float" for name in as_float))
    )
    times, values = [], []
    for row in rows.iterator(chunk_size=20_000):
        times.append(row[0])
        values.append(row[1:])
    return times, values


@dataclass(frozen=True)
class Ticker:
    """24 hours of an instrument's trading: the 1,440 one-minute buckets up to the current
    one. Prices are None when nothing traded in the window; `last` is the last trade's price
    whenever it was."""

    symbol: str
    open_time: datetime
    close_time: datetime
    open: Decimal | None
    high: Decimal | None
    low: Decimal | None
    last: Decimal | None
    change: Decimal | None
    change_percent: Decimal | None
    base_volume: Decimal
    quote_volume: Decimal
    trade_count: int


def ticker_24h(*, instrument: Instrument, now: datetime | None = None) -> Ticker:
    """The rolling 24 h ticker of `instrument` (see `tickers_24h`)."""
    return tickers_24h(instruments=[instrument], now=now)[instrument.pk]


def tickers_24h(*, instruments: Sequence[Instrument], now: datetime | None = None) -> dict[int, Ticker]:
    """The rolling 24 h ticker of each of `instruments`, by id, from their one-minute candles:
    one grouped read, index-backed, of at most 1,440 rows per instrument."""
    now = now or timezone.now()
    close_time = bucket_close_time(bucket_start(now, CandleInterval.M1), CandleInterval.M1)
    open_time = close_time + timedelta(milliseconds=1) - timedelta(days=1)
    window = Candle.objects.filter(interval=CandleInterval.M1, open_time__gte=open_time)
    first_open = window.filter(instrument=OuterRef("instrument")).order_by("open_time").values("open")[:1]
    totals = {
        row["instrument"]: row
        for row in window.filter(instrument__in=[i.pk for i in instruments])
        .values("instrument")
        .annotate(
            high=Max("high"),
            low=Min("low"),
            volume=Sum("volume"),
            quote_volume=Sum("quote_volume"),
            count=Sum("trade_count"),
            first=Subquery(first_open),
        )
        .order_by()
    }
    return {i.pk: _ticker(i, totals.get(i.pk, {}), open_time, close_time) for i in instruments}


def _ticker(instrument: Instrument, totals: Mapping[str, Any], open_time: datetime, close_time: datetime) -> Ticker:
    first = totals.get("first")
    last = instrument.last_price
    change = last - first if first is not None and last is not None else None
    return Ticker(
        symbol=instrument.symbol,
        open_time=open_time,
        close_time=close_time,
        open=first,
        high=totals.get("high"),
        low=totals.get("low"),
        last=last,
        change=change,
        change_percent=(change * 100 / first).quantize(Decimal("0.01")) if change is not None and first else None,
        base_volume=totals.get("volume") or ZERO,
        quote_volume=totals.get("quote_volume") or ZERO,
        trade_count=totals.get("count") or 0,
    )


def indicator_candles(
    *,
    instrument: Instrument,
    interval: str,
    warmup: int,
    since_day_start: bool,
    limit: int,
    start: datetime | None = None,
    end: datetime | None = None,
) -> tuple[list[CandleRow], int]:
    """The candles `candles_range` gives, preceded by up to `warmup` earlier ones (and, with
    `since_day_start`, every earlier one of the first candle's UTC day); and how many of the
    result are the window's own (the last ones)."""
    window = candles_range(instrument=instrument, interval=interval, start=start, end=end, limit=limit)
    if not window:
        return [], 0
    before = window[0].open_time - timedelta(microseconds=1)
    prior = candles_range(instrument=instrument, interval=interval, end=before, limit=warmup) if warmup else []
    if since_day_start:
        day_start = bucket_start(window[0].open_time, CandleInterval.D1)
        same_day = candles_range(instrument=instrument, interval=interval, start=day_start, end=before, limit=1440)
        prior = same_day if len(same_day) > len(prior) else prior
    return prior + window, len(window)


@dataclass(frozen=True)
class MarketRow:
    """One instrument of the markets overview: its 24 h ticker and the closes of its hourly
    candles of the last 24 hours (oldest first) for a sparkline."""

    instrument: Instrument
    ticker: Ticker
    closes: list[Decimal]


def market_overview(*, now: datetime | None = None) -> list[MarketRow]:
    """Every instrument by symbol, with its ticker and sparkline closes (three reads in all,
    whatever the number of instruments)."""
    now = now or timezone.now()
    instruments = list(Instrument.objects.order_by("symbol"))
    tickers = tickers_24h(instruments=instruments, now=now)
    closes: dict[int, list[Decimal]] = {instrument.pk: [] for instrument in instruments}
    hourly = Candle.objects.filter(
        interval=CandleInterval.H1, open_time__gte=bucket_start(now, CandleInterval.H1) - timedelta(hours=23)
    )
    for instrument_id, close in hourly.order_by("instrument", "open_time").values_list("instrument", "close"):
        closes[instrument_id].append(close)
    return [MarketRow(instrument=i, ticker=tickers[i.pk], closes=closes[i.pk]) for i in instruments]
