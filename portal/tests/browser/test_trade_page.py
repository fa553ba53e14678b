"""The trade page in a real browser: place a limit order in the ticket, see it, cancel it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from trading.models import Order
from trading.tests.fixtures import balance_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_trader_places_a_limit_order_sees_it_open_and_cancels_it(funded_account, market, page, login, console_errors):
    account = funded_account("tina", USDT="10000")
    login(page, "tina")
    page.goto("/trade/?symbol=BTCUSDT")
    expect(page.get_by_role("heading", level=1)).to_contain_text("BTCUSDT")

    ticket = page.get_by_test_id("ticket")
    ticket.get_by_label("Buy").check()
    ticket.get_by_label("Quantity").fill("1.5")
    ticket.get_by_label("Price", exact=True).fill("95.01")
    page.get_by_test_id("place-order").click()

    expect(page.locator(".messages")).to_contain_text("NEW")
    order = Order.objects.get(account=account)
    assert order.status == "NEW" and order.price == Decimal("95.01") and order.quantity == Decimal("1.5")
    row = page.get_by_test_id("open-orders").locator(f"tr[data-order-id='{order.pk}']")
    expect(row).to_contain_text("95.01")
    expect(page.get_by_test_id("balances")).to_contain_text("142.800")  # 1.5 × 95.01 × 1.002 locked

    page.get_by_test_id(f"cancel-{order.pk}").click()
    expect(page.get_by_test_id("open-orders")).to_contain_text("No open orders.")
    order.refresh_from_db()
    assert order.status == "CANCELED"
    assert balance_of(account, "USDT") == (Decimal("10000"), Decimal("0"))
    assert console_errors == []


def test_the_ticket_flags_an_off_tick_price_and_the_server_refuses_it_with_the_reason(
    funded_account, market, page, login
):
    funded_account("tina", USDT="10000")
    login(page, "tina")
    page.goto("/trade/?symbol=BTCUSDT")
    ticket = page.get_by_test_id("ticket")
    ticket.get_by_label("Quantity").fill("1")
    ticket.get_by_label("Price", exact=True).fill("95.005")
    page.get_by_test_id("place-order").click()
    # The browser's own validation stops the form: nothing reached the engine.
    assert page.locator("#id_price").evaluate("el => el.validationMessage") != ""
    assert not Order.objects.exists()
