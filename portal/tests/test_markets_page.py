"""The markets overview: every instrument with its 24 h ticker and a sparkline of its last day."""

from decimal import Decimal

import pytest
from django.test import Client

from conftest import TEST_PASSWORD
from marketdata.history import history_backfill
from portal.web.market_views import sparkline_points

pytestmark = pytest.mark.django_db


def test_markets_lists_every_instrument_with_its_day_and_a_sparkline(funded_account, market, place):
    history_backfill(instrument=market.btcusdt, days=2, seed=5)
    seller = funded_account("seller", ETH="10")
    buyer = funded_account("buyer", USDT="10000")
    place(seller, "SELL", qty="1", price="51", instrument=market.ethusdt)
    place(buyer, "BUY", qty="1", price="51", instrument=market.ethusdt)  # ETHUSDT: one trade today, no hourly history
    client = Client()
    assert client.login(username="buyer", password=TEST_PASSWORD)
    page = client.get("/markets/")
    assert page.status_code == 200
    html = page.content.decode()
    rows = {item["row"].instrument.symbol: item["row"] for item in page.context["rows"]}
    assert list(rows) == ["BTCUSDT", "ETHUSDT"]
    # 23 whole hours of history; the current hour has no candle until something trades
    assert len(rows["BTCUSDT"].closes) == 23 and 'aria-label="BTCUSDT, last 24 hours"' in html
    assert rows["ETHUSDT"].ticker.last == Decimal("51") and rows["ETHUSDT"].ticker.trade_count == 1
    assert 'href="/trade/?symbol=ETHUSDT"' in html
    assert '<a href="/markets/" aria-current="page">Markets</a>' in html


def test_a_sparkline_spans_its_box_highest_value_on_top():
    points = sparkline_points([Decimal("10"), Decimal("20"), Decimal("15")], width=100, height=20)
    assert points == "0.0,20.0 50.0,0.0 100.0,10.0"
    assert sparkline_points([Decimal("5")]) == ""
    assert sparkline_points([Decimal("5"), Decimal("5")], width=10, height=4) == "0.0,4.0 10.0,4.0"


def test_markets_needs_a_login(client):
    response = client.get("/markets/")
    assert response.status_code == 302 and "/login/" in response["Location"]
