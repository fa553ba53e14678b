"""Market history from elsewhere: synthesized (`history_backfill`) or imported from Binance
kline files (`klines_import`).

History only fills buckets that end before the instrument's first trade (or before now when
it has none), so a bucket never mixes history with the venue's own trades and `reconcile`
can keep proving that every trade candle is what its trades make. Existing history is
replaced by an import (real data beats synthesized data), never by a backfill.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from marketdata.candles import (
    BUCKET_FIELDS,
    INTERVAL_SECONDS,
    MERGED_FIELDS,
    Bar,
    bars_merge,
    bucket_close_time,
    bucket_start,
)
from marketdata.models import Candle, CandleInterval, CandleOrigin, Instrument
from portal import rawsql
from portal.decimals import AMOUNT_UNIT, ceil_to, fits_storage, floor_to
from portal.errors import DomainError

_MINUTE = timedelta(minutes=1)
_MINUTES_PER_YEAR = 365 * 24 * 60
_INSERT_BATCH = 5000
_REPLACED_FIELDS = (*MERGED_FIELDS, "origin")


def history_cutoff(instrument: Instrument, now: datetime | None = None) -> datetime:
    """History may fill buckets that end before this moment: the instrument's first trade,
    or now when it has not traded."""
    from trading.selectors import first_trade_at  # trading depends on marketdata, not the other way round

    first = first_trade_at(instrument_id=instrument.pk)
    return first if first is not None else (now or timezone.now())


def history_fits(open_time: datetime, interval: str, cutoff: datetime) -> bool:
    """True when the bucket ends before `cutoff` (see `history_cutoff`)."""
    return bucket_close_time(open_time, interval) < cutoff


# -- backfill --------------------------------------------------------------------------


@dataclass(frozen=True)
class WalkParameters:
    """A geometric random walk like a spot crypto pair's: yearly volatility and drift, and a
    typical quote volume per minute (volumes and trade counts vary log-normally around it)."""

    volatility: float = 0.60
    drift: float = 0.0
    quote_volume_per_minute: float = 25_000.0


def _minute_bars(
    instrument: Instrument,
    start: datetime,
    minutes: int,
    anchor: Decimal,
    walk: WalkParameters,
    rng: random.Random,
    *,
    bar_minutes: int = 1,
) -> Iterator[tuple[datetime, Bar]]:
    """`minutes` bars of `bar_minutes` each (one-minute bars by default) from `start` whose last
    close is `anchor` (the walk is drawn, then scaled to end there)."""
    sigma = walk.volatility / math.sqrt(_MINUTES_PER_YEAR / bar_minutes)
    mu = walk.drift / (_MINUTES_PER_YEAR / bar_minutes) - sigma * sigma / 2
    returns = [rng.gauss(mu, sigma) for _ in range(minutes)]
    level = math.log(float(anchor)) - sum(returns)
    tick, lot = instrument.tick_size, instrument.lot_size
    close = _on_tick(math.exp(level), tick, ROUND_FLOOR)
    for minute, step in enumerate(returns):
        level += step
        open_ = close
        close = anchor if minute == minutes - 1 else _on_tick(math.exp(level), tick, ROUND_FLOOR)
        wick = abs(rng.gauss(0, sigma / 2))
        high = max(open_, close, _on_tick(float(max(open_, close)) * math.exp(wick), tick, ROUND_CEILING))
        low = min(open_, close, _on_tick(float(min(open_, close)) * math.exp(-wick), tick, ROUND_FLOOR))
        quote_volume = walk.quote_volume_per_minute * bar_minutes * math.exp(rng.gauss(-0.125, 0.5))
        volume = max(lot, (Decimal(quote_volume) / close / lot).to_integral_value(ROUND_FLOOR) * lot)
        bar = Bar(
            open=open_,
            high=high,
            low=low,
            close=close,
            volume=volume,
            quote_volume=(volume * (high + low) / 2).quantize(AMOUNT_UNIT),
            trade_count=max(1, int(rng.lognormvariate(3, 0.6)) * bar_minutes),
        )
        yield start + minute * bar_minutes * _MINUTE, bar


def _on_tick(price: float, tick: Decimal, rounding: str) -> Decimal:
    """`price` on the tick grid (down, or up with ROUND_CEILING), never below one tick."""
    return max(tick, (ceil_to if rounding == ROUND_CEILING else floor_to)(Decimal(price), tick))


def history_backfill(
    *,
    instrument: Instrument,
    days: int,
    seed: int | None = None,
    walk: WalkParameters | None = None,
    now: datetime | None = None,
) -> int:
    """Synthesize `days` of one-minute history and write the candles of every interval it
    makes, each the exact aggregate of its minutes, in whole buckets only.

    The history ends where the instrument's record begins: at its earliest one-minute candle
    (or, without any, its earliest candle) if it has one (history written before, or its
    first trades), ending at that candle's open price;
    else at the history cutoff, ending at the reference price. So running it again extends
    the history backwards, continuous with what is stored, and never touches a stored bucket.
    The same seed gives the same history. Returns the candles written."""
    if days < 1:
        raise DomainError("validation_error", "days must be at least 1.", status=400)
    cutoff = history_cutoff(instrument, now)
    record = Candle.objects.filter(instrument=instrument).order_by("open_time")
    earliest = record.filter(interval=CandleInterval.M1).first() or record.first()
    if earliest is not None and earliest.open_time < cutoff:
        cutoff, anchor = earliest.open_time, earliest.open
    else:
        anchor = instrument.reference_price
    end = bucket_start(cutoff, CandleInterval.M1)
    start = end - timedelta(days=days)
    rng = random.Random(seed)  # noqa: S311 - a simulation, reproducible by its seed
    minutes = int((end - start) / _MINUTE)
    bars = bars_merge(_minute_bars(instrument, start, minutes, anchor, walk or WalkParameters(), rng))
    candles = (
        Candle(instrument=instrument, interval=interval, open_time=open_time, origin=CandleOrigin.BACKFILL, **vars(bar))
        for (interval, open_time), bar in bars.items()
        if history_fits(open_time, interval, cutoff) and open_time >= start
    )
    return _write(candles, replace=False)


def history_backfill_daily(
    *, instrument: Instrument, days: int, seed: int | None = None, walk: WalkParameters | None = None
) -> int:
    """Synthesize `days` daily candles (only daily: cheap, for VaR and long charts) before the
    instrument's record: ending at the start of the day of its earliest candle (at that candle's
    open price), or at today's start at the reference price when it has none. Days that have a
    daily candle already are kept. Returns the candles written."""
    if days < 1:
        raise DomainError("validation_error", "days must be at least 1.", status=400)
    earliest = Candle.objects.filter(instrument=instrument).order_by("open_time").first()
    cutoff = history_cutoff(instrument)
    if earliest is not None and earliest.open_time < cutoff:
        end, anchor = bucket_start(earliest.open_time, CandleInterval.D1), earliest.open
    else:
        end, anchor = bucket_start(cutoff, CandleInterval.D1), instrument.reference_price
    start = end - timedelta(days=days)
    rng = random.Random(seed)  # noqa: S311 - a simulation, reproducible by its seed
    day_minutes = 24 * 60
    bars = _minute_bars(instrument, start, days, anchor, walk or WalkParameters(), rng, bar_minutes=day_minutes)
    candles = (
        Candle(
            instrument=instrument,
            interval=CandleInterval.D1,
            open_time=open_time,
            origin=CandleOrigin.BACKFILL,
            **vars(bar),
        )
        for open_time, bar in bars
    )
    return _write(candles, replace=False)


def _write(candles: Iterable[Candle], *, replace: bool) -> int:
    """Insert `candles` in batches, in one transaction; where a bucket has a candle already,
    keep it, or with `replace` overwrite it. Only history is ever overwritten: every bucket
    written here ends before the first trade, and a trade candle's bucket holds a trade."""
    written = 0
    with transaction.atomic():
        batch: list[Candle] = []
        for candle in candles:
            batch.append(candle)
            if len(batch) == _INSERT_BATCH:
                written += _write_batch(batch, replace=replace)
                batch = []
        written += _write_batch(batch, replace=replace)
    return written


def _write_batch(batch: list[Candle], *, replace: bool) -> int:
    if not batch:
        return 0
    if replace:
        rawsql.upsert_issue(batch, BUCKET_FIELDS, _REPLACED_FIELDS)
        return len(batch)
    return rawsql.insert_unless_conflict_many(batch, BUCKET_FIELDS)


# -- import ----------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import did, or why it did nothing: each bad row with its line number."""

    rows: int = 0
    written: int = 0
    errors: list[str] = field(default_factory=list)


def klines_import(
    *, instrument: Instrument, interval: str, lines: Iterable[str], now: datetime | None = None
) -> ImportReport:
    """Import candles of `interval` from a CSV in Binance's kline layout (open time, open,
    high, low, close, volume, close time, quote volume, trades, …; times in Unix milliseconds,
    or microseconds as in Binance's files since 2025; an optional header line). Every row is
    checked first; if any is bad, the report lists each with its line number and nothing is
    written. Otherwise all rows are written in one transaction, replacing history candles of
    the same buckets."""
    if interval not in INTERVAL_SECONDS:
        raise DomainError(
            "validation_error", f"Unknown interval {interval!r}: use one of {', '.join(INTERVAL_SECONDS)}."
        )
    report = ImportReport()
    cutoff = history_cutoff(instrument, now)
    candles: list[Candle] = []
    seen: dict[datetime, int] = {}
    for number, row in enumerate(csv.reader(lines), start=1):
        if not row or (number == 1 and row[0].strip().lower().replace(" ", "_") in ("open_time", "opentime")):
            continue
        report.rows += 1
        try:
            candle = _kline_candle(instrument, interval, row, cutoff)
        except ValueError as problem:
            report.errors.append(f"line {number}: {problem}")
            continue
        if candle.open_time in seen:
            report.errors.append(
                f"line {number}: open time {candle.open_time:%Y-%m-%d %H:%M} repeats line {seen[candle.open_time]}"
            )
            continue
        seen[candle.open_time] = number
        candles.append(candle)
    if report.rows == 0:
        report.errors.append("the file has no kline rows")
    if not report.errors:
        report.written = _write(candles, replace=True)
    return report


def _kline_candle(instrument: Instrument, interval: str, row: list[str], cutoff: datetime) -> Candle:
    if len(row) < 9:
        raise ValueError(f"{len(row)} columns, expected at least 9 (open time … number of trades)")
    open_time = _instant(row[0], "open time")
    close_time = _instant(row[6], "close time")
    width = timedelta(seconds=INTERVAL_SECONDS[interval])
    if bucket_start(open_time, interval) != open_time:
        raise ValueError(f"open time {open_time:%Y-%m-%d %H:%M:%S} is not the start of a {interval} bucket")
    if not open_time < close_time < open_time + width:
        raise ValueError(f"close time {close_time:%Y-%m-%d %H:%M:%S.%f} is not inside the {interval} bucket")
    if not history_fits(open_time, interval, cutoff):
        raise ValueError(
            f"the bucket at {open_time:%Y-%m-%d %H:%M} does not end before {instrument.symbol}'s "
            f"first trade or now ({cutoff:%Y-%m-%d %H:%M:%S}); history never overlaps the venue's trades"
        )
    open_, high, low, close, volume = (
        _amount(row[i], name) for i, name in enumerate(("open", "high", "low", "close", "volume"), 1)
    )
    quote_volume = _amount(row[7], "quote volume")
    if not (0 < low <= min(open_, close) and max(open_, close) <= high):
        raise ValueError(f"prices are inconsistent: open {open_}, high {high}, low {low}, close {close}")
    if not row[8].strip().isdigit():
        raise ValueError(f"number of trades {row[8]!r} is not a whole number")
    return Candle(
        instrument=instrument,
        interval=interval,
        open_time=open_time,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        quote_volume=quote_volume,
        trade_count=int(row[8]),
        origin=CandleOrigin.IMPORT,
    )


def _instant(text: str, name: str) -> datetime:
    text = text.strip()
    if not text.isdigit():
        raise ValueError(f"{name} {text!r} is not Unix time")
    value = int(text)
    seconds = value / 1_000_000 if value >= 10**14 else value / 1000  # microseconds since 2025's files
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{name} {text!r} is out of range") from None


def _amount(text: str, name: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not fits_storage(value) or value < 0:
        raise ValueError(f"{name} {text!r} is negative, has more than 8 decimals, or is too large")
    return value
