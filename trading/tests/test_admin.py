"""Operators run the venue from the admin: deposits / withdrawals, halts, order cancels, kill
switches and risk limits — each through the services, each audited, none by editing a row."""

from decimal import Decimal

import pytest
from django.test import Client

from audit.models import AuditEvent
from conftest import TEST_PASSWORD
from portal.choices import Role
from riskmgmt.models import KillSwitch, RiskLimit
from trading.choices import StrategyStatus
from trading.models import Order, Strategy
from trading.strategies.services import StrategyDefinition, strategy_create, strategy_start
from trading.tests.fixtures import assert_reconciled, balance_of

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture
def ops(users) -> Client:
    client = Client()
    assert client.login(username=users[Role.OPERATOR].username, password=TEST_PASSWORD)
    return client


def _action(client, url, action, ids, **fields):
    return client.post(
        url, {"action": action, "_selected_action": [str(i) for i in ids], "apply": "1", **fields}, follow=True
    )


def test_deposit_and_withdrawal_through_the_admin_need_a_reason_and_go_through_the_ledger(ops, funded_account, market):
    account = funded_account("alice", USDT="100")
    url = "/admin/trading/tradingaccount/"
    missing = _action(
        ops, url, "transfer", [account.pk], direction="deposit", asset=market.usdt.pk, amount="50", reason=""
    )
    assert "This field is required" in missing.content.decode()
    assert balance_of(account, "USDT")[0] == D("100")
    done = _action(
        ops, url, "transfer", [account.pk], direction="withdrawal", asset=market.usdt.pk, amount="30", reason="payout"
    )
    assert "booked" in done.content.decode()
    assert balance_of(account, "USDT")[0] == D("70")
    assert AuditEvent.objects.filter(action="ledger.withdrawal").exists()
    assert_reconciled()


def test_balances_and_ledger_are_read_only_in_the_admin(ops, funded_account):
    account = funded_account("alice", USDT="100")
    balance = account.balances.get()
    assert ops.get("/admin/trading/balance/").status_code == 200
    assert ops.post(f"/admin/trading/balance/{balance.pk}/change/", {"free": "1000"}).status_code == 403
    assert ops.get("/admin/trading/ledgerentry/add/").status_code == 403
    assert balance_of(account, "USDT")[0] == D("100")


def test_halt_and_resume_from_the_admin(ops, market, funded_account, place):
    url = "/admin/marketdata/instrument/"
    _action(ops, url, "halt", [market.btcusdt.pk], status="HALT", reason="exchange maintenance")
    market.btcusdt.refresh_from_db()
    assert market.btcusdt.status == "HALT" and market.btcusdt.status_reason == "exchange maintenance"
    account = funded_account("alice", USDT="1000")
    assert place(account, "BUY", qty="1", price="95", expect_reject=True).code == "INSTRUMENT_HALTED"
    _action(ops, url, "resume", [market.btcusdt.pk], reason="done")
    market.btcusdt.refresh_from_db()
    assert market.btcusdt.status == "TRADING"


def test_cancel_selected_orders_from_the_admin(ops, funded_account, place):
    account = funded_account("alice", USDT="1000")
    orders = [place(account, "BUY", qty="1", price=price) for price in ("95", "96")]
    _action(ops, "/admin/trading/order/", "cancel_selected", [o.pk for o in orders], reason="client called")
    assert set(Order.objects.values_list("status", flat=True)) == {"CANCELED"}
    assert AuditEvent.objects.filter(action="order.cancel").count() == 2
    assert_reconciled()


def test_adding_a_kill_switch_engages_it_and_release_needs_a_reason(ops, funded_account, place):
    account = funded_account("alice", USDT="1000")
    place(account, "BUY", qty="1", price="95")
    response = ops.post("/admin/riskmgmt/killswitch/add/", {"account": account.pk, "reason": "runaway"}, follow=True)
    assert response.status_code == 200
    switch = KillSwitch.objects.get()
    assert switch.is_engaged and switch.canceled_orders == 1
    duplicate = ops.post("/admin/riskmgmt/killswitch/add/", {"account": account.pk, "reason": "again"})
    assert "already engaged" in duplicate.content.decode()
    _action(ops, "/admin/riskmgmt/killswitch/", "release", [switch.pk], reason="fixed")
    switch.refresh_from_db()
    assert not switch.is_engaged and switch.release_reason == "fixed"


def test_risk_limits_saved_in_the_admin_are_audited(ops, market):
    response = ops.post(
        "/admin/riskmgmt/risklimit/add/",
        {"instrument": market.btcusdt.pk, "account": "", "max_order_qty": "5", "price_band_pct": "2.5"},
        follow=True,
    )
    assert response.status_code == 200
    limit = RiskLimit.objects.get()
    assert limit.max_order_qty == D("5") and limit.scope_key == f"instrument:{market.btcusdt.pk}"
    assert AuditEvent.objects.filter(action="risk_limit.create").exists()


def test_operators_see_candles_in_the_admin_and_cannot_edit_them(ops, funded_account, place):
    seller = funded_account("seller", BTC="1")
    buyer = funded_account("buyer", USDT="1000")
    place(seller, "SELL", qty="1", price="100")
    place(buyer, "BUY", qty="1", price="100")
    listing = ops.get("/admin/marketdata/candle/?interval__exact=1m")
    assert listing.status_code == 200 and "BTCUSDT" in listing.content.decode()
    assert ops.get("/admin/marketdata/candle/add/").status_code == 403


def test_an_operator_sees_every_strategy_and_stops_one_from_the_admin_with_a_reason(ops, funded_account, market):
    account = funded_account("alice", USDT="1000")
    definition = StrategyDefinition(
        name="cross", kind="ma_crossover", params={"quantity": 1}, account_id=account.pk, symbol="BTCUSDT"
    )
    strategy = strategy_start(
        strategy=strategy_create(user=account.owner, definition=definition, actor="test"), actor="test"
    )

    listing = ops.get("/admin/trading/strategy/").content.decode()
    assert "cross" in listing and f"?strategy__id__exact={strategy.pk}" in listing
    assert ops.get(f"/admin/trading/order/?strategy__id__exact={strategy.pk}").status_code == 200
    _action(ops, "/admin/trading/strategy/", "stop_selected", [strategy.pk], reason="runaway")

    assert Strategy.objects.get(pk=strategy.pk).status == StrategyStatus.STOPPED
    stop = AuditEvent.objects.get(action="strategy.stop")
    assert stop.actor_label == "operator" and "runaway" in stop.after["reason"]
