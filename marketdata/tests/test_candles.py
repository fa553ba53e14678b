"""Candles: built from trades one flush at a time, equal to candles recomputed from scratch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from hypothesis import given
from hypothesis import strategies as st

from marketdata.candles import INTERVAL_SECONDS, Bar, bars_from_trades, bucket_close_time, bucket_start
from marketdata.models import Candle
from trading.tests.fixtures import assert_reconciled

D = Decimal
T0 = datetime(2026, 11, 23, 9, 58, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Print:
    executed_at: datetime
    price: Decimal
    quantity: Decimal
    quote_quantity: Decimal


prints = st.lists(
    st.tuples(st.integers(0, 90_000), st.integers(1, 10_000), st.integers(1, 500)), min_size=1, max_size=60
).map(
    lambda rows: [
        Print(T0 + timedelta(seconds=offset), D(price) / 100, D(qty) / 1000, D(price) / 100 * D(qty) / 1000)
        for offset, price, qty in sorted(rows, key=lambda row: row[0])
    ]
)


@given(trades=prints, cuts=st.lists(st.integers(0, 60), max_size=10))
def test_merging_flush_after_flush_gives_the_candles_of_all_trades_at_once(trades, cuts):
    stored: dict = {}
    bounds = sorted({0, len(trades), *(c for c in cuts if c < len(trades))})
    for start, end in zip(bounds, bounds[1:], strict=False):
        for key, bar in bars_from_trades(trades[start:end]).items():
            stored[key] = stored[key].then(bar) if key in stored else bar
    assert stored == bars_from_trades(trades)


def test_buckets_start_at_multiples_of_the_interval_in_utc():
    moment = datetime(2026, 11, 23, 13, 47, 59, 999000, tzinfo=UTC)
    assert bucket_start(moment, "1m") == datetime(2026, 11, 23, 13, 47, tzinfo=UTC)
    assert bucket_start(moment, "15m") == datetime(2026, 11, 23, 13, 45, tzinfo=UTC)
    assert bucket_start(moment, "4h") == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert bucket_start(moment, "1d") == datetime(2026, 11, 23, tzinfo=UTC)
    assert bucket_start(datetime(2026, 11, 23, 14, 0, tzinfo=UTC), "1h") == datetime(2026, 11, 23, 14, tzinfo=UTC)
    berlin = datetime(2026, 11, 24, 0, 30, tzinfo=timezone(timedelta(hours=1)))  # 23:30 UTC the day before
    assert bucket_start(berlin, "1d") == datetime(2026, 11, 23, tzinfo=UTC)
    assert bucket_close_time(datetime(2026, 11, 23, tzinfo=UTC), "1d") == datetime(
        2026, 11, 23, 23, 59, 59, 999000, tzinfo=UTC
    )
    assert list(INTERVAL_SECONDS) == ["1m", "5m", "15m", "1h", "4h", "1d"]


@pytest.fixture
def clock(monkeypatch):
    """The engine's clock, set by the test (the session reads it once per transaction)."""
    now = {"value": T0}
    monkeypatch.setattr("trading.engine.timezone.now", lambda: now["value"])
    return now


@pytest.fixture
def cross(funded_account, place, market):
    """cross(price, qty): a resting sell and a buy that takes it: one trade at `price`."""
    seller = funded_account("seller", BTC="100")
    buyer = funded_account("buyer", USDT="1000000")

    def make(price: str, qty: str, instrument=None) -> None:
        instrument = instrument or market.btcusdt
        place(seller, "SELL", qty=qty, price=price, instrument=instrument)
        place(buyer, "BUY", qty=qty, price=price, instrument=instrument)

    return make


def test_the_engine_writes_each_trade_into_the_candle_of_every_interval(cross, clock, market):
    cross("100", "1")
    clock["value"] = T0 + timedelta(seconds=20)  # 09:58:50, same minute
    cross("104", "0.5")
    cross("99", "2")
    clock["value"] = T0 + timedelta(seconds=40)  # 09:59:10, the next minute
    cross("101", "1")
    minute = list(Candle.objects.filter(instrument=market.btcusdt, interval="1m").order_by("open_time"))
    assert [(c.open_time.minute, c.open, c.high, c.low, c.close, c.trade_count) for c in minute] == [
        (58, D("100"), D("104"), D("99"), D("99"), 3),
        (59, D("101"), D("101"), D("101"), D("101"), 1),
    ]
    assert minute[0].volume == D("3.5") and minute[0].quote_volume == D("100") + D("52") + D("198")
    hour = Candle.objects.get(instrument=market.btcusdt, interval="1h")
    assert hour.open_time == datetime(2026, 11, 23, 9, tzinfo=UTC)
    assert (hour.open, hour.high, hour.low, hour.close, hour.volume, hour.trade_count) == (
        D("100"),
        D("104"),
        D("99"),
        D("101"),
        D("4.5"),
        4,
    )
    assert Candle.objects.filter(instrument=market.ethusdt).count() == 0
    assert Candle.objects.filter(instrument=market.btcusdt).count() == 2 + 5  # two 1m, one of every other
    assert_reconciled()


def test_reconcile_reports_a_candle_that_its_trades_do_not_make(cross, clock, market, capsys):
    cross("100", "1")
    Candle.objects.filter(interval="5m").update(high=D("120"))
    with pytest.raises(CommandError, match="1 break"):
        call_command("reconcile")
    assert "candle_equals_trades" in capsys.readouterr().out


def test_a_refused_order_leaves_the_candles_as_they_were(cross, clock, market, funded_account, place):
    cross("100", "1")
    before = list(Candle.objects.values_list("interval", "open_time", "close", "trade_count").order_by("pk"))
    poor = funded_account("poor", USDT="1")
    place(poor, "BUY", "MARKET", qty="1", expect_reject=True)
    assert list(Candle.objects.values_list("interval", "open_time", "close", "trade_count").order_by("pk")) == before
    assert Bar.of_candle(Candle.objects.get(interval="1d")).close == D("100")
