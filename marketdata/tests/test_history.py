"""History from elsewhere: backfill_history synthesizes it, import_klines loads Binance klines;
both stay before the venue's own trades and never leave a file half-imported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from marketdata.candles import INTERVAL_SECONDS, Bar, bars_merge
from marketdata.history import history_backfill
from marketdata.models import Candle, CandleOrigin
from marketdata.tests.test_candles import T0, clock, cross  # noqa: F401 - fixtures
from trading.reconcile import reconcile_run
from trading.tests.fixtures import assert_reconciled

D = Decimal
NOW = datetime(2026, 11, 23, 12, 30, 15, tzinfo=UTC)


def _rows(instrument, interval):
    return list(Candle.objects.filter(instrument=instrument, interval=interval).order_by("open_time"))


def test_backfill_writes_every_interval_as_the_exact_aggregate_of_its_minutes(market):
    written = history_backfill(instrument=market.btcusdt, days=2, seed=7, now=NOW)
    minutes = _rows(market.btcusdt, "1m")
    assert len(minutes) == 2 * 24 * 60
    assert minutes[0].open_time == datetime(2026, 11, 21, 12, 30, tzinfo=UTC)
    assert minutes[-1].open_time == datetime(2026, 11, 23, 12, 29, tzinfo=UTC)
    assert minutes[-1].close == market.btcusdt.reference_price  # history joins the present price
    assert all(m.origin == CandleOrigin.BACKFILL and m.low <= min(m.open, m.close) for m in minutes)
    assert all(m.high >= max(m.open, m.close) and m.volume > 0 and m.trade_count >= 1 for m in minutes)
    assert all(a.close == b.open for a, b in zip(minutes, minutes[1:], strict=False))
    expected = bars_merge((m.open_time, Bar.of_candle(m)) for m in minutes)
    stored = Candle.objects.filter(instrument=market.btcusdt).exclude(interval="1m")
    assert stored.count() > 0 and written == len(minutes) + stored.count()
    for candle in stored:
        assert Bar.of_candle(candle) == expected[(candle.interval, candle.open_time)]
        assert candle.open_time >= minutes[0].open_time  # only whole buckets
    assert {c.interval for c in stored} == set(INTERVAL_SECONDS) - {"1m"}


def test_backfill_is_reproducible_by_seed_and_a_second_run_extends_it_backwards(market):
    history_backfill(instrument=market.ethusdt, days=1, seed=3, now=NOW)
    first = [Bar.of_candle(c) for c in _rows(market.ethusdt, "1h")]
    earliest = _rows(market.ethusdt, "1m")[0]
    assert history_backfill(instrument=market.ethusdt, days=1, seed=99, now=NOW) > 0
    minutes = _rows(market.ethusdt, "1m")
    assert len(minutes) == 2 * 24 * 60 and minutes[24 * 60] == earliest
    assert minutes[24 * 60 - 1].close == earliest.open  # continuous where the two runs meet
    assert [Bar.of_candle(c) for c in _rows(market.ethusdt, "1h")][-len(first) :] == first  # untouched
    Candle.objects.all().delete()
    history_backfill(instrument=market.ethusdt, days=1, seed=3, now=NOW)
    assert [Bar.of_candle(c) for c in _rows(market.ethusdt, "1h")] == first


def test_backfill_stops_before_the_first_trade_and_reconcile_stays_clean(cross, clock, market):  # noqa: F811
    cross("100", "1")  # first trade at 09:58:30
    history_backfill(instrument=market.btcusdt, days=1, seed=1, now=T0 + timedelta(hours=3))
    history = Candle.objects.filter(instrument=market.btcusdt, origin=CandleOrigin.BACKFILL)
    assert history.order_by("-open_time").first().open_time == datetime(2026, 11, 23, 9, 57, tzinfo=UTC)
    assert not history.filter(interval="1h", open_time=datetime(2026, 11, 23, 9, tzinfo=UTC)).exists()
    assert_reconciled()
    latest = history.filter(interval="1m").order_by("-open_time").first()
    Candle.objects.filter(pk=latest.pk).update(open_time=datetime(2026, 11, 23, 10, 5, tzinfo=UTC))
    assert "candle_history_before_trades" in {b.check for b in reconcile_run().breaks}


def test_backfill_history_command_covers_every_symbol_or_the_ones_named(market, capsys):
    call_command("backfill_history", "--days", "1", "--seed", "5", "--symbol", "ethusdt")
    assert "ETHUSDT: " in capsys.readouterr().out
    assert not Candle.objects.filter(instrument=market.btcusdt).exists()
    call_command("backfill_history", "--days", "1", "--only-empty")
    assert "ETHUSDT: has candles, skipped" in capsys.readouterr().out
    assert Candle.objects.filter(instrument=market.btcusdt, interval="1m").count() == 24 * 60
    with pytest.raises(CommandError, match="NOPE"):
        call_command("backfill_history", "--days", "1", "--symbol", "NOPE")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("backfill_history", "--days", "0")


def test_daily_history_extends_the_record_backwards_by_whole_days_and_feeds_var(market, capsys):
    call_command("backfill_history", "--days", "1", "--daily-days", "300", "--seed", "2", "--symbol", "BTCUSDT")
    minutes = _rows(market.btcusdt, "1m")
    days = [c for c in _rows(market.btcusdt, "1d") if c.open_time < minutes[0].open_time]
    assert len(days) == 300
    assert days[-1].open_time == minutes[0].open_time.replace(hour=0, minute=0) - timedelta(days=1)
    assert days[-1].close == minutes[0].open  # continuous with the minute history
    assert all(b.open_time - a.open_time == timedelta(days=1) for a, b in zip(days, days[1:], strict=False))
    assert all(c.low <= min(c.open, c.close) and c.high >= max(c.open, c.close) for c in days)
    assert_reconciled()


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _kline(open_time: datetime, o="100", h="105", lo="95", c="101", v="2.5", width=timedelta(hours=1), scale=1):
    return (
        f"{_ms(open_time) * scale},{o},{h},{lo},{c},{v},{(_ms(open_time + width) - 1) * scale},252.5,42,1.2,121.2,0\n"
    )


def test_import_klines_loads_a_binance_file_in_milliseconds_or_microseconds(market, tmp_path, capsys):
    start = datetime(2024, 3, 1, tzinfo=UTC)
    plain = tmp_path / "BTCUSDT-1h-2024-03.csv"
    plain.write_text("open_time,open,high,low,close,volume,close_time,quote_volume,count,tbbv,tbqv,ignore\n")
    with plain.open("a") as out:
        for hour in range(3):
            out.write(_kline(start + timedelta(hours=hour)))
    call_command("import_klines", "BTCUSDT", "1h", str(plain))
    assert "3 candles imported from 3 rows" in capsys.readouterr().out
    rows = _rows(market.btcusdt, "1h")
    assert [(r.open_time.hour, r.high, r.trade_count, r.origin) for r in rows] == [
        (0, D("105"), 42, CandleOrigin.IMPORT),
        (1, D("105"), 42, CandleOrigin.IMPORT),
        (2, D("105"), 42, CandleOrigin.IMPORT),
    ]
    micro = tmp_path / "BTCUSDT-1h-2025-01.csv"
    micro.write_text(_kline(start + timedelta(hours=1), c="102", scale=1000))  # replaces that hour
    call_command("import_klines", "btcusdt", "1h", str(micro))
    assert [r.close for r in _rows(market.btcusdt, "1h")] == [D("101"), D("102"), D("101")]


def test_a_bad_kline_file_names_every_bad_line_and_imports_nothing(market, tmp_path, capsys):
    start = datetime(2024, 3, 1, tzinfo=UTC)
    lines = [
        _kline(start),
        _kline(start + timedelta(minutes=30)),  # 2: not on the hour
        _kline(start + timedelta(hours=1), h="90"),  # 3: high below low
        _kline(start + timedelta(hours=2), v="abc"),  # 4: not a number
        "1,2,3\n",  # 5: too few columns
        _kline(start),  # 6: repeats line 1
        _kline(start + timedelta(hours=3), v="0.123456789"),  # 7: more than 8 decimals
        _kline(datetime(2030, 1, 1, tzinfo=UTC)),  # 8: after now
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("".join(lines))
    with pytest.raises(CommandError, match="7 bad row"):
        call_command("import_klines", "BTCUSDT", "1h", str(bad))
    errors = capsys.readouterr().err
    for number in (2, 3, 4, 5, 6, 7, 8):
        assert f"line {number}:" in errors
    assert "line 1:" not in errors
    assert not Candle.objects.exists()
    with pytest.raises(CommandError, match="Unknown interval"):
        call_command("import_klines", "BTCUSDT", "2h", str(bad))
    with pytest.raises(CommandError, match="Unknown symbol"):
        call_command("import_klines", "NOPE", "1h", str(bad))
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_klines", "BTCUSDT", "1h", str(tmp_path / "missing.csv"))


def test_imported_history_never_overlaps_the_venues_trades(cross, clock, market, tmp_path, capsys):  # noqa: F811
    cross("100", "1")  # 09:58:30
    overlapping = tmp_path / "overlap.csv"
    overlapping.write_text(
        _kline(datetime(2026, 11, 23, 9, tzinfo=UTC)) + _kline(datetime(2026, 11, 23, 8, tzinfo=UTC))
    )
    with pytest.raises(CommandError, match="1 bad row"):
        call_command("import_klines", "BTCUSDT", "1h", str(overlapping))
    assert "line 1: the bucket at 2026-11-23 09:00 does not end before" in capsys.readouterr().err
    assert not Candle.objects.filter(origin=CandleOrigin.IMPORT).exists()
