"""The trade page's chart in a real browser: candles from the API, interval switch, indicators."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from marketdata.history import history_backfill

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_chart_draws_candles_switches_interval_and_adds_indicators(
    funded_account, market, page, login, console_errors, artifacts_dir
):
    history_backfill(instrument=market.btcusdt, days=1, seed=3)
    funded_account("tina", USDT="1000")
    login(page, "tina")
    page.goto("/trade/?symbol=BTCUSDT")
    chart = page.get_by_test_id("price-chart")
    expect(page.get_by_test_id("chart-status")).to_have_text("500 candles of 1m")
    expect(chart.locator("canvas").first).to_be_visible()
    expect(page.get_by_test_id("chart-attribution")).to_have_attribute("href", "https://www.tradingview.com/")

    page.get_by_test_id("intervals").get_by_role("button", name="1h", exact=True).click()
    expect(page.get_by_test_id("chart-status")).to_have_text(re.compile(r"^2[34] candles of 1h$"))
    panes_before = chart.locator("canvas").count()
    with page.expect_response(lambda r: "/indicators?" in r.url and "rsi" in r.url and r.status == 200):
        page.get_by_label("SMA 20").check()
        page.get_by_test_id("pane-select").select_option("rsi:14")
    expect(chart.locator("canvas")).not_to_have_count(panes_before)  # the RSI pane drew its own canvases
    page.screenshot(path=str(artifacts_dir / "trade-chart.png"), full_page=True)
    assert console_errors == []


def test_a_trade_placed_elsewhere_prints_on_the_open_trade_page_within_two_seconds(
    funded_account, market, place, page, login, console_errors, artifacts_dir
):
    seller = funded_account("seller", BTC="5")
    buyer = funded_account("tina", USDT="10000")
    login(page, "tina")
    page.goto("/trade/?symbol=BTCUSDT")
    expect(page.get_by_test_id("tape")).to_contain_text("No trades yet.")
    place(seller, "SELL", qty="0.25", price="101.5")
    expect(page.get_by_test_id("book-levels")).to_contain_text("101.5", timeout=2000)
    place(buyer, "BUY", qty="0.25", price="101.5")  # the trade, through the engine, not this page
    tape = page.get_by_test_id("tape")
    expect(tape.locator("tr").first).to_contain_text("101.5", timeout=2000)
    expect(tape.locator("tr").first).to_contain_text("0.25")
    expect(page.get_by_test_id("book-levels")).not_to_contain_text("101.5", timeout=2000)
    page.screenshot(path=str(artifacts_dir / "trade-live.png"), full_page=True)
    assert console_errors == []
