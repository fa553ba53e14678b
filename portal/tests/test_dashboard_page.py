"""The dashboard page without a browser: portfolio value, allocation chart, positions, trading
stats over the chosen period, recent orders; empty states; a bad period is a form error."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from conftest import TEST_PASSWORD
from portal.choices import Role
from trading.models import Order, Trade

D = Decimal
pytestmark = pytest.mark.django_db


def _client_of(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=TEST_PASSWORD)
    return client


@pytest.fixture
def traded(funded_account, place):
    """tina bought 1.5 BTC @ 100 and sold 0.5 of it @ 104 (+2 realized), both as taker; BTC last
    traded @ 104."""
    tina = funded_account("tina", USDT="1000")
    other = funded_account("olga", BTC="5", USDT="1000")
    place(other, "SELL", qty="1.5", price="100")
    place(tina, "BUY", qty="1.5", price="100")
    place(other, "BUY", qty="0.5", price="104")
    place(tina, "SELL", qty="0.5", price="104")
    return tina


def test_the_dashboard_shows_value_allocation_positions_stats_and_recent_orders(traded):
    response = _client_of("tina").get("/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    summary, stats = response.context["summary"], response.context["stats"]

    # USDT: 1000 − 150 − 0.3 (taker fee 0.2 %) + 52 − 0.104; BTC: 1 at the last price 104.
    assert summary.total_value == D("901.596") + D("104")
    assert "1005.60" in html
    segments = response.context["segments"]
    assert [(s.asset, s.percent) for s in segments] == [("USDT", D("89.66")), ("BTC", D("10.34"))]
    assert html.count('data-testid="allocation-segment"') == 2
    assert "USDT 89.66 %" in html and "BTC 10.34 %" in html

    assert 'data-symbol="BTCUSDT"' in html
    assert stats.trade_count == 2 and stats.realized_pnl == D("2") and stats.win_rate_pct == D("100.00")
    assert stats.orders.total == 2 and stats.orders.filled == 2
    assert "100.00 %" in html  # win rate and fill ratio
    assert response.context["period_label"] == "Last 30 days"
    assert [order.pk for order in response.context["recent_orders"]] == list(
        Order.objects.filter(account=traded).order_by("-id").values_list("pk", flat=True)
    )
    assert 'href="/orders/"' in html
    assert 'href="/dashboard/" aria-current="page"' in html  # in the navigation, right after Home


def test_the_period_chooser_narrows_the_stats(traded):
    Trade.objects.filter(taker_account=traded).update(executed_at=timezone.now() - timedelta(days=20))
    client = _client_of("tina")
    week = client.get("/dashboard/", {"period": "7d"})
    assert week.status_code == 200
    assert week.context["stats"].trade_count == 0 and "No trades in this period." in week.content.decode()
    assert week.context["period_label"] == "Last 7 days"

    today = timezone.now().date()
    custom = client.get(
        "/dashboard/", {"period": "custom", "start": str(today - timedelta(days=21)), "end": str(today)}
    )
    assert custom.status_code == 200
    stats = custom.context["stats"]
    assert stats.trade_count == 2 and stats.realized_pnl == D("2")
    assert stats.end - stats.start == timedelta(days=22)  # whole days, the last one included


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"period": "custom", "start": "2025-03-10", "end": "2025-03-01"}, "Must not be before the start."),
        ({"period": "custom", "start": "2023-01-01", "end": "2025-01-01"}, "more than 366 days"),
        ({"period": "custom", "start": "not-a-date", "end": "2025-03-01"}, "Enter a valid date."),
        ({"period": "custom", "end": "2025-03-01"}, "Required for a custom period."),
        ({"period": "1y"}, "Select a valid choice."),
    ],
)
def test_a_bad_period_is_a_form_error_not_a_server_error(traded, query, message):
    response = _client_of("tina").get("/dashboard/", query)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-testid="period-error"' in html and message in html
    assert "stats" not in response.context and "Choose a valid period to see the stats." in html
    assert response.context["summary"].total_value > 0  # the portfolio still shows


def test_an_account_with_nothing_shows_empty_states(funded_account):
    funded_account("nina")
    response = _client_of("nina").get("/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    for text in (
        "Nothing to allocate yet",
        "No balances yet",
        "No positions: nothing traded yet.",
        "No trades in this period.",
        "No orders yet.",
    ):
        assert text in html
    assert 'data-testid="allocation-segment"' not in html
    assert response.context["stats"].orders.fill_ratio_pct is None


def test_a_user_without_an_account_is_told_so(make_user):
    make_user(username="vera", role=Role.VIEWER)
    response = _client_of("vera").get("/dashboard/")
    assert response.status_code == 200
    assert 'data-testid="no-account"' in response.content.decode()


def test_the_account_switcher_shows_the_chosen_account_only_to_its_owner(traded, funded_account):
    algo = funded_account("tina", name="Algo", ETH="3")
    client = _client_of("tina")
    response = client.get("/dashboard/", {"account": algo.pk, "period": "30d"})
    assert response.context["account"] == algo
    assert [h.asset for h in response.context["summary"].assets] == ["ETH"]
    assert 'data-testid="account-select"' in response.content.decode()
    other = Order.objects.exclude(account__owner__username="tina").first().account
    foreign = client.get("/dashboard/", {"account": other.pk})
    assert foreign.status_code == 200
    assert foreign.context["account"] == traded  # someone else's id is ignored: back to tina's first account


def test_the_dashboard_reads_in_a_bounded_number_of_queries(traded, django_assert_max_num_queries):
    client = _client_of("tina")
    with django_assert_max_num_queries(16):
        assert client.get("/dashboard/").status_code == 200


def test_the_dashboard_needs_a_login(client):
    response = client.get("/dashboard/")
    assert response.status_code == 302 and "/login/" in response["Location"]
