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
