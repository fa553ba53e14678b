"""The trade page over a real daphne: book, tape, chart and the trader's own panels follow the
WebSocket streams, with orders placed through the REST API (issue #4)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from playwright.sync_api import expect

from marketdata.history import history_backfill
from portal.api_keys import api_key_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _order(base_url: str, key: str, account: int, side: str, qty: str, price: str) -> dict:
    body = {"account": account, "symbol": "BTCUSDT", "side": side, "type": "LIMIT", "quantity": qty, "price": price}
    request = urllib.request.Request(
        f"{base_url}/api/v1/orders",
        method="POST",
        data=json.dumps(body).encode(),
        headers={"X-API-Key": key, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - 127.0.0.1 only
        return json.loads(response.read())


def test_the_trade_page_is_live_over_the_websocket(
    funded_account, market, daphne_url, daphne_login, console_errors, artifacts_dir
):
    history_backfill(instrument=market.btcusdt, days=1, seed=5)
    seller = funded_account("seller", BTC="5")
    tina = funded_account("tina", USDT="10000")
    seller_key = api_key_create(user=seller.owner, name="browser", scopes=["trade"]).raw_key
    tina_key = api_key_create(user=tina.owner, name="browser", scopes=["trade"]).raw_key
    page = daphne_login(tina.owner)
    page.goto("/trade/?symbol=BTCUSDT")
    panel = page.locator("#market-panel")
    expect(panel).to_have_attribute("data-book-seq", "0")  # the book's snapshot came over the socket
    assert page.evaluate("TradeportLive.isOpen()")

    _order(daphne_url, seller_key, seller.pk, "SELL", "0.25", "101.5")
    expect(page.get_by_test_id("book-levels")).to_contain_text("101.5", timeout=2000)
    _order(daphne_url, tina_key, tina.pk, "BUY", "0.25", "101.5")
    tape = page.get_by_test_id("tape")
    expect(tape.locator("tr").first).to_contain_text("101.5", timeout=2000)
    expect(page.get_by_test_id("book-levels")).not_to_contain_text("101.5", timeout=2000)
    expect(page.get_by_test_id("balances")).to_contain_text("9974.57425", timeout=2000)  # 10000 − 25.375 − 0.2 % fee
    expect(page.get_by_test_id("fills")).to_contain_text("101.5", timeout=2000)
    expect(page.get_by_test_id("ticker").locator("[data-cell=last]")).to_have_text("101.5", timeout=3000)
    expect(page.get_by_test_id("ticker")).to_have_attribute("data-ticker-seq", "1")  # the tape's first trade
    expect(page.get_by_test_id("chart-status")).to_contain_text("candles of 1m")
    expect(page.locator("#price-chart canvas").first).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "trade-live-websocket.png"), full_page=True)

    page.goto("/markets/")
    row = page.locator("tr[data-symbol=BTCUSDT]")
    _order(daphne_url, seller_key, seller.pk, "SELL", "0.5", "102")
    _order(daphne_url, tina_key, tina.pk, "BUY", "0.5", "102")
    expect(row.locator("[data-cell=last]")).to_have_text("102", timeout=3000)
    expect(row).to_have_attribute("data-ticker-seq", "2")
    assert console_errors == []
