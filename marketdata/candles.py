"""Candles built from trades, incrementally, in the transaction that makes the trades.

Every engine flush that made trades (`trading.engine.MatchingSession.flush`) updates the
candle of each interval its trades fall in: it reads those few rows (one statement, sent with
the flush's first round trip), merges its trades into them in memory and writes them back
(one statement, with the second round trip). Nothing is ever recomputed from all trades. The
flush holds the instrument's lock, which serializes it with every other writer of the
instrument's candles, so a merge never loses another's update; and a committed trade is
always in its candles, a rolled-back one never.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from marketdata.models import Candle, CandleInterval, CandleOrigin
from portal import rawsql
from portal.decimals import amount_text

#: Width of each interval in seconds, in CandleInterval's order.
INTERVAL_SECONDS: dict[str, int] = {
    CandleInterval.M1: 60,
    CandleInterval.M5: 5 * 60,
    CandleInterval.M15: 15 * 60,
    CandleInterval.H1: 60 * 60,
    CandleInterval.H4: 4 * 60 * 60,
    CandleInterval.D1: 24 * 60 * 60,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: A candle's values, merged trade by trade; and the fields that name its bucket (unique).
MERGED_FIELDS = ("open", "high", "low", "close", "volume", "quote_volume", "trade_count")
BUCKET_FIELDS = ("instrument", "interval", "open_time")


class TradePrint(Protocol):
    """What a candle needs of a trade (a `trading.models.Trade` is one)."""

    executed_at: datetime
    price: Decimal
    quantity: Decimal
    quote_quantity: Decimal


def bucket_start(moment: datetime, interval: str) -> datetime:
    """The start of the `interval` bucket `moment` falls in: a multiple of the interval's
    width since the Unix epoch, in UTC."""
    width = INTERVAL_SECONDS[interval]
    elapsed = (moment - _EPOCH) // timedelta(seconds=1)
    return _EPOCH + timedelta(seconds=elapsed - elapsed % width)


def bucket_close_time(open_time: datetime, interval: str) -> datetime:
    """The last millisecond of the bucket (Binance's kline close time)."""
    return open_time + timedelta(seconds=INTERVAL_SECONDS[interval]) - timedelta(milliseconds=1)


@dataclass(frozen=True)
class Bar:
    """One bucket's open, high, low, close, volumes and trade count."""

    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trade_count: int

    @classmethod
    def of_trade(cls, trade: TradePrint) -> Bar:
        price = trade.price
        return cls(price, price, price, price, trade.quantity, trade.quote_quantity, 1)

    @classmethod
    def of_candle(cls, candle: Candle) -> Bar:
        return cls(*(getattr(candle, name) for name in MERGED_FIELDS))

    def then(self, later: Bar) -> Bar:
        """This bar followed by `later` (the trades of `later` came after this one's)."""
        return Bar(
            open=self.open,
            high=max(self.high, later.high),
            low=min(self.low, later.low),
            close=later.close,
            volume=self.volume + later.volume,
            quote_volume=self.quote_volume + later.quote_volume,
            trade_count=self.trade_count + later.trade_count,
        )


def bars_merge(pieces: Iterable[tuple[datetime, Bar]]) -> dict[tuple[str, datetime], Bar]:
    """The bars of every interval that `pieces` (bars at a moment, in the order they happened:
    single trades, or one-minute bars of history) make, by (interval, bucket start)."""
    bars: dict[tuple[str, datetime], Bar] = {}
    for moment, bar in pieces:
        for interval in INTERVAL_SECONDS:
            key = (interval, bucket_start(moment, interval))
            earlier = bars.get(key)
            bars[key] = bar if earlier is None else earlier.then(bar)
    return bars


def bars_from_trades(trades: Iterable[TradePrint]) -> dict[tuple[str, datetime], Bar]:
    """The bars of every interval that `trades` (in the order they happened) make."""
    return bars_merge((trade.executed_at, Bar.of_trade(trade)) for trade in trades)


def candles_update_issue(
    instrument_id: int, trades: Sequence[TradePrint]
) -> Callable[[], dict[tuple[str, datetime], Bar]]:
    """Issue the read of the candles `trades` fall in; the function returned merges the trades
    into them, issues their write and returns the candles as written, by (interval, bucket
    start). Call it after the pipeline the read went in, inside the same transaction, with
    the instrument's lock held (see the module's docstring)."""
    bars = bars_from_trades(trades)
    if not bars:
        return dict
    keys = sorted(bars)
    open_time = Candle._meta.get_field("open_time")
    db = rawsql.database()
    existing = rawsql.issue(
        _existing_sql(len(keys)),
        [instrument_id, *(p for i, t in keys for p in (i, open_time.get_db_prep_value(t, db)))],
    )

    def write_issue() -> dict[tuple[str, datetime], Bar]:
        stored = {(row[1], row[2]): Bar(*row[4:]) for row in _existing_values(existing.fetchall())}
        merged = {key: stored[key].then(bars[key]) if key in stored else bars[key] for key in keys}
        rows = [
            (instrument_id, *key, CandleOrigin.TRADES, *(getattr(bar, name) for name in MERGED_FIELDS))
            for key, bar in merged.items()
        ]
        rawsql.upsert_rows_issue(Candle, _WRITTEN, rows, BUCKET_FIELDS, MERGED_FIELDS)
        return merged

    return write_issue


#: The columns the engine reads and writes: the bucket, then the merged fields.
_WRITTEN = ("instrument", "interval", "open_time", "origin", *MERGED_FIELDS)


@functools.cache
def _existing_sql(buckets: int) -> str:
    q = rawsql.quote
    match = " OR ".join([f"({q('interval')} = %s AND {q('open_time')} = %s)"] * buckets)
    return (
        f"SELECT {rawsql.columns(Candle)} FROM {q(Candle._meta.db_table)} "  # noqa: S608 - names only
        f"WHERE {q('instrument_id')} = %s AND ({match})"
    )


def _existing_values(rows: list) -> list[list]:
    """The read rows as (instrument, interval, open_time, origin, the merged fields): converted as the
    ORM would (SQLite returns text and floats), in `_WRITTEN`'s order."""
    order = _read_order()
    return [[row[index] for index in order] for row in rawsql.values(Candle, rows)]


@functools.cache
def _read_order() -> list[int]:
    columns = [field.attname for field in Candle._meta.concrete_fields]
    return [columns.index(name) for name in ("instrument_id", "interval", "open_time", "origin", *MERGED_FIELDS)]


def candle_json(open_time: datetime, interval: str, values: Any) -> dict[str, Any]:
    """One candle as the API shows it (REST and the candle streams): `values` is a `Bar` or
    any row with its fields. Built directly, not by DRF's serializer: charts ask for a
    thousand candles at a time, and DRF's fields cost about 0.1 ms per candle
    (bench/README.md, `candles`); a test holds the two to the same output
    (`marketdata.api.v1.serializers.CandleSerializer` documents the contract)."""
    return {
        "open_time": _instant(open_time),
        "close_time": _instant(bucket_close_time(open_time, interval)),
        "open": amount_text(values.open),
        "high": amount_text(values.high),
        "low": amount_text(values.low),
        "close": amount_text(values.close),
        "volume": amount_text(values.volume),
        "quote_volume": amount_text(values.quote_volume),
        "trade_count": values.trade_count,
    }


def _instant(moment: datetime) -> str:
    text = moment.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
