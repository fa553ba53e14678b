"""REST market data: candles by range and the 24 h ticker, and their bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from marketdata.tests.test_candles import T0, clock, cross  # noqa: F401 - fixtures

D = Decimal


@pytest.fixture
def traded(cross, clock):  # noqa: F811
    """Trades in three minutes: 09:58 (100, 104, 99), 09:59 (101), 10:03 (98)."""
    cross("100", "1")
    clock["value"] = T0 + timedelta(seconds=20)
    cross("104", "0.5")
    cross("99", "2")
    clock["value"] = T0 + timedelta(seconds=40)
    cross("101", "1")
    clock["value"] = T0 + timedelta(minutes=5)
    cross("98", "1")
    return clock


def test_candles_come_oldest_first_by_range_or_latest_by_limit(api_client, traded):
    url = "/api/v1/markets/btcusdt/candles"
    every = api_client.get(url, {"interval": "1m"}).json()
    assert [c["open_time"] for c in every] == ["2026-11-23T09:58:00Z", "2026-11-23T09:59:00Z", "2026-11-23T10:03:00Z"]
    assert every[0] == {
        "open_time": "2026-11-23T09:58:00Z",
        "close_time": "2026-11-23T09:58:59.999000Z",
        "open": "100.00000000",
        "high": "104.00000000",
        "low": "99.00000000",
        "close": "99.00000000",
        "volume": "3.50000000",
        "quote_volume": "350.00000000",
        "trade_count": 3,
    }
    latest = api_client.get(url, {"interval": "1m", "limit": 2}).json()
    assert [c["open_time"][11:16] for c in latest] == ["09:59", "10:03"]
    start_ms = int(datetime(2026, 11, 23, 9, 59, tzinfo=UTC).timestamp() * 1000)
    from_start = api_client.get(url, {"interval": "1m", "start": start_ms, "limit": 1}).json()
    assert [c["open_time"][11:16] for c in from_start] == ["09:59"]
    window = api_client.get(url, {"interval": "1m", "start": "2026-11-23T09:58:30", "end": "2026-11-23T10:00:00Z"})
    assert [c["open_time"][11:16] for c in window.json()] == ["09:59"]
    five = api_client.get(url, {"interval": "5m"}).json()
    assert [(c["open_time"][11:16], c["open"], c["close"], c["trade_count"]) for c in five] == [
        ("09:55", "100.00000000", "101.00000000", 4),
        ("10:00", "98.00000000", "98.00000000", 1),
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "interval"),
        ({"interval": "2m"}, "interval"),
        ({"interval": "1m", "limit": "1001"}, "limit"),
        ({"interval": "1m", "limit": "0"}, "limit"),
        ({"interval": "1m", "start": "yesterday"}, "start"),
        ({"interval": "1m", "start": "2026-11-24T00:00:00Z", "end": "2026-11-23T00:00:00Z"}, "start"),
    ],
)
def test_bad_candle_queries_are_problems_naming_the_parameter(api_client, market, query, field):
    response = api_client.get("/api/v1/markets/BTCUSDT/candles", query)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert field in response.json()["errors"]


def test_unknown_symbols_are_404_for_candles_and_ticker(api_client, market):
    for path in ("candles?interval=1m", "ticker"):
        response = api_client.get(f"/api/v1/markets/NOPE/{path}")
        assert response.status_code == 404 and response.json()["code"] == "UNKNOWN_SYMBOL"


def test_the_ticker_rolls_over_the_last_24_hours_of_one_minute_candles(api_client, traded, monkeypatch, market):
    monkeypatch.setattr("marketdata.selectors.timezone.now", lambda: T0 + timedelta(minutes=10))
    ticker = api_client.get("/api/v1/markets/BTCUSDT/ticker").json()
    assert ticker == {
        "symbol": "BTCUSDT",
        "open_time": "2026-11-22T10:09:00Z",
        "close_time": "2026-11-23T10:08:59.999000Z",
        "open": "100.00000000",
        "high": "104.00000000",
        "low": "98.00000000",
        "last": "98.00000000",
        "change": "-2.00000000",
        "change_percent": "-2.00",
        "base_volume": "5.50000000",
        "quote_volume": "549.00000000",
        "trade_count": 5,
    }
    monkeypatch.setattr("marketdata.selectors.timezone.now", lambda: T0 + timedelta(days=1, minutes=1))
    later = api_client.get("/api/v1/markets/BTCUSDT/ticker").json()  # 09:58 and 09:59 left the window
    assert (later["open"], later["high"], later["trade_count"], later["change_percent"]) == (
        "98.00000000",
        "98.00000000",
        1,
        "0.00",
    )
    quiet = api_client.get("/api/v1/markets/ETHUSDT/ticker").json()
    assert (quiet["open"], quiet["last"], quiet["change"], quiet["base_volume"], quiet["trade_count"]) == (
        None,
        None,
        None,
        "0.00000000",
        0,
    )


def test_the_fast_candle_rendering_says_exactly_what_the_serializer_would(traded, market):
    from marketdata.api.v1.serializers import CandleSerializer
    from marketdata.candles import bucket_close_time, candle_json
    from marketdata.selectors import candles_range

    for interval in ("1m", "1d"):
        rows = candles_range(instrument=market.btcusdt, interval=interval, limit=10)
        rows.append(rows[0]._replace(volume=D("0E-8"), quote_volume=D("0")))  # zeros as PostgreSQL returns them
        contract = CandleSerializer(
            [{**row._asdict(), "close_time": bucket_close_time(row.open_time, interval)} for row in rows], many=True
        ).data
        assert [candle_json(row.open_time, interval, row) for row in rows] == [dict(item) for item in contract]
