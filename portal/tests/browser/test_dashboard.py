"""The dashboard in a real browser: portfolio value, the allocation donut, switching the period."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from trading.models import Trade

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_trader_sees_value_and_allocation_and_switches_the_period(
    funded_account, market, place, page, login, live_server, console_errors, artifacts_dir
):
    tina = funded_account("tina", USDT="1000", ETH="2")
    seller = funded_account("seller", BTC="5")
    place(seller, "SELL", qty="1.5", price="100")
    place(tina, "BUY", qty="1.5", price="100")  # 150 + 0.3 fee: USDT 849.7, BTC 1.5 at 100, ETH 2 at 50
    Trade.objects.filter(taker_account=tina).update(executed_at=timezone.now() - timedelta(days=10))

    login(page, "tina")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    page.wait_for_url(f"{live_server.url}/dashboard/")

    expect(page.get_by_test_id("portfolio-value")).to_contain_text("1099.70")  # 849.7 + 150 + 100
    segments = page.get_by_test_id("allocation-segment")
    expect(segments).to_have_count(3)
    assert [segments.nth(i).get_attribute("data-asset") for i in range(3)] == ["USDT", "BTC", "ETH"]
    legend = page.get_by_test_id("allocation-legend")
    expect(legend.locator("tr[data-asset='USDT']")).to_contain_text("77.27 %")
    expect(legend.locator("tr[data-asset='BTC']")).to_contain_text("13.64 %")
    expect(legend.locator("tr[data-asset='ETH']")).to_contain_text("9.09 %")
    assert segments.first.bounding_box()["width"] > 50  # the arcs are drawn, not just in the markup
    expect(page.get_by_test_id("stat-trades")).to_contain_text("1")
    expect(page.get_by_test_id("period-start")).to_be_hidden()  # a preset period needs no dates

    page.get_by_test_id("period-select").select_option("7d")  # submits at once
    page.wait_for_url(re.compile(r"/dashboard/\?.*period=7d"))
    expect(page.get_by_test_id("period-label")).to_have_text("Last 7 days")
    expect(page.get_by_test_id("stat-trades")).to_contain_text("0")
    expect(page.get_by_test_id("stats-by-symbol")).to_contain_text("No trades in this period.")

    page.get_by_test_id("period-select").select_option("custom")
    today = timezone.now().date()
    page.get_by_test_id("period-start").fill(str(today - timedelta(days=11)))
    page.get_by_test_id("period-end").fill(str(today))
    page.get_by_test_id("period-apply").click()
    expect(page.get_by_test_id("period-label")).to_have_text(f"{today - timedelta(days=11)} to {today}")
    expect(page.get_by_test_id("stats-by-symbol")).to_contain_text("BTCUSDT")
    page.screenshot(path=str(artifacts_dir / "dashboard.png"), full_page=True)
    assert console_errors == []
