"""Indicators over stored candles: TA-Lib's values, checked against plain NumPy, warmed up by
earlier candles; bad requests are problems."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from marketdata.candles import bucket_start
from marketdata.history import history_backfill
from marketdata.models import Candle

NOW = datetime(2026, 11, 23, 12, 30, 15, tzinfo=UTC)
URL = "/api/v1/markets/BTCUSDT/indicators"


@pytest.fixture
def history(market):
    history_backfill(instrument=market.btcusdt, days=2, seed=11, now=NOW)
    return list(Candle.objects.filter(instrument=market.btcusdt, interval="15m").order_by("open_time"))


def _get(api_client, *indicators, **query):
    return api_client.get(URL, {"interval": "15m", "indicator": list(indicators), **query})


def test_indicators_agree_with_plain_numpy_over_the_window(api_client, history):
    body = _get(api_client, "sma:5", "bbands:20:2", "macd", "rsi", "atr:14", "ema:10", "vwap", limit=50).json()
    closes = np.array([float(c.close) for c in history])
    assert len(body["open_times"]) == 50 and body["open_times"][-1] == history[-1].open_time.isoformat().replace(
        "+00:00", "Z"
    )
    series = {item["key"]: item["outputs"] for item in body["indicators"]}
    assert list(series) == ["sma:5", "bbands:20:2", "macd:12:26:9", "rsi:14", "atr:14", "ema:10", "vwap"]
    assert series["sma:5"]["value"][-1] == pytest.approx(closes[-5:].mean(), rel=1e-9)
    bands = series["bbands:20:2"]
    assert bands["middle"][-1] == pytest.approx(closes[-20:].mean(), rel=1e-9)
    assert bands["upper"][-1] - bands["middle"][-1] == pytest.approx(2 * closes[-20:].std(), rel=1e-6)
    macd = series["macd:12:26:9"]
    assert macd["histogram"][-1] == pytest.approx(macd["macd"][-1] - macd["signal"][-1], abs=1e-6)
    assert all(0 <= v <= 100 for v in series["rsi:14"]["value"])
    assert all(v is not None and v > 0 for v in series["atr:14"]["value"])
    alpha, ema = 2 / 11, closes[:10].mean()  # TA-Lib seeds its EMA with the first period's mean
    for close in closes[10:]:
        ema = alpha * close + (1 - alpha) * ema
    assert series["ema:10"]["value"][-1] == pytest.approx(ema, rel=1e-9)
    today = [c for c in history if bucket_start(c.open_time, "1d") == bucket_start(history[-1].open_time, "1d")]
    vwap = sum(float(c.quote_volume) for c in today) / sum(float(c.volume) for c in today)
    assert series["vwap"]["value"][-1] == pytest.approx(vwap, rel=1e-9)
    assert all(v is not None for values in series.values() for output in values.values() for v in output)


def test_without_enough_history_the_first_values_are_null(api_client, history):
    start = history[0].open_time + timedelta(minutes=15 * 3)
    body = _get(api_client, "sma:10", start=start.isoformat(), limit=20).json()
    values = body["indicators"][0]["outputs"]["value"]
    assert values[:6] == [None] * 6 and values[6] is not None  # 3 earlier candles + 7 of the window


def test_an_empty_window_gives_empty_series(api_client, market):
    body = _get(api_client, "rsi").json()
    assert body["open_times"] == [] and body["indicators"][0]["outputs"] == {"value": []}


@pytest.mark.parametrize(
    ("indicators", "message"),
    [
        ((), "at least one"),
        (("stoch",), "Unknown indicator"),
        (("sma:1",), "from 2 to 500"),
        (("sma:abc",), "whole number"),
        (("sma:5:6",), "at most 1 parameter"),
        (("bbands:20:0",), "nbdev must be from"),
        (("macd:26:12:9",), "fast period must be shorter"),
        (tuple(f"sma:{n}" for n in range(2, 11)), "At most 8"),
    ],
)
def test_bad_indicator_requests_are_problems(api_client, market, indicators, message):
    response = _get(api_client, *indicators)
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    assert message in response.json()["detail"]


def test_bad_windows_and_symbols_are_problems_too(api_client, market):
    assert api_client.get(URL, {"indicator": "rsi"}).status_code == 400  # no interval
    assert _get(api_client, "rsi", limit=5000).status_code == 400
    response = api_client.get("/api/v1/markets/NOPE/indicators", {"interval": "1h", "indicator": "rsi"})
    assert response.status_code == 404 and response.json()["code"] == "UNKNOWN_SYMBOL"
