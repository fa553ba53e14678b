"""Several orders matched in one transaction (ADR 0005): in order, each checked against what
the ones before it did, each recorded as its own caller's."""

from decimal import Decimal

import pytest

from audit.context import AuditContext
from audit.models import AuditEvent
from riskmgmt.services import risk_limit_set
from trading.models import Order, Trade
from trading.order_rules import OrderRejected, OrderRequest
from trading.services import OrderEntry, order_place_batch
from trading.tests.fixtures import assert_reconciled, balance_of

D = Decimal
pytestmark = pytest.mark.django_db


def entry(account, side, qty, price, *, type_="LIMIT", request_id="", **extra) -> OrderEntry:
    request = OrderRequest(side=side, type=type_, quantity=D(qty), price=D(price) if price else None, **extra)
    return OrderEntry(account, request, actor=account.owner, context=AuditContext(request_id=request_id))


def batch(market, *entries: OrderEntry):
    return order_place_batch(instrument=market.btcusdt.symbol, entries=list(entries))


@pytest.fixture
def alice(funded_account):
    return funded_account("alice", USDT="100000", BTC="100")


@pytest.fixture
def bob(funded_account):
    return funded_account("bob", USDT="100000", BTC="100")


def test_orders_of_a_batch_match_in_their_order_and_trade_with_each_other(market, alice, bob):
    sell, buy = batch(market, entry(bob, "SELL", "1", "100"), entry(alice, "BUY", "1.5", "100"))

    sell.refresh_from_db()
    buy.refresh_from_db()
    assert (sell.status, buy.status) == ("FILLED", "PARTIALLY_FILLED")
    assert buy.priority > sell.priority
    trade = Trade.objects.get()
    assert (trade.maker_order_id, trade.taker_order_id, trade.quantity) == (sell.pk, buy.pk, D("1"))
    assert_reconciled()


def test_each_order_is_audited_as_its_own_callers_request(market, alice, bob):
    sell, buy = batch(
        market,
        entry(bob, "SELL", "1", "100", request_id="req-bob"),
        entry(alice, "BUY", "1", "100", request_id="req-alice"),
    )

    placed = {e.target_id: e for e in AuditEvent.objects.filter(action="order.place")}
    assert (placed[str(sell.pk)].actor_label, placed[str(sell.pk)].request_id) == ("bob", "req-bob")
    assert (placed[str(buy.pk)].actor_label, placed[str(buy.pk)].request_id) == ("alice", "req-alice")
    assert AuditEvent.objects.get(action="order.fill").request_id == "req-alice"  # the aggressor's request


def test_a_refused_order_is_stored_in_the_batch_and_the_others_go_on(market, alice, bob):
    first, refused, last = batch(
        market,
        entry(alice, "BUY", "1", "90"),
        entry(alice, "BUY", "1", "90.001"),
        entry(bob, "SELL", "1", "110", request_id="req-bob"),
    )

    assert isinstance(refused, OrderRejected) and refused.code == "TICK_SIZE"
    assert Order.objects.get(pk=refused.order.pk).status == "REJECTED"
    assert AuditEvent.objects.filter(action="order.reject", target_id=str(refused.order.pk)).exists()
    assert Order.objects.get(pk=first.pk).status == "NEW" and Order.objects.get(pk=last.pk).status == "NEW"
    assert_reconciled()


def test_the_balance_check_counts_what_earlier_orders_of_the_batch_locked(market, funded_account):
    carol = funded_account("carol", USDT="150")
    first, second = batch(market, entry(carol, "BUY", "1", "100"), entry(carol, "BUY", "1", "100"))

    assert first.status == "NEW"
    assert isinstance(second, OrderRejected) and second.code == "INSUFFICIENT_BALANCE"
    assert balance_of(carol, "USDT") == (D("49.8"), D("100.2"))
    assert_reconciled()


def test_the_balance_check_counts_what_earlier_fills_of_the_batch_paid_out(market, funded_account, bob):
    """Carol has no USDT until her sell fills inside the batch; her buy may then spend it."""
    carol = funded_account("carol", BTC="1")
    batch(market, entry(bob, "BUY", "1", "100"))
    _, bid = batch(market, entry(carol, "SELL", "1", "100"), entry(carol, "BUY", "0.5", "99"))

    assert not isinstance(bid, OrderRejected) and bid.status == "NEW"
    assert_reconciled()


def test_the_position_limit_counts_earlier_fills_of_the_batch(market, alice, bob):
    risk_limit_set(actor="ops", account=alice, values={"max_position_qty": D("1")})
    batch(market, entry(bob, "SELL", "2", "100"))

    first, second = batch(market, entry(alice, "BUY", "1", "100"), entry(alice, "BUY", "1", "100"))

    assert first.status == "FILLED"
    assert isinstance(second, OrderRejected) and second.code == "MAX_POSITION"
    assert_reconciled()


def test_the_open_order_limit_counts_orders_the_batch_closed(market, alice, bob):
    risk_limit_set(actor="ops", account=alice, values={"max_open_orders": 2})
    batch(market, entry(alice, "BUY", "1", "100"), entry(alice, "BUY", "1", "99"))

    sell, bid = batch(market, entry(bob, "SELL", "1", "100"), entry(alice, "BUY", "1", "98"))

    assert sell.status == "FILLED"
    assert not isinstance(bid, OrderRejected) and bid.status == "NEW"
    (refused,) = batch(market, entry(alice, "BUY", "1", "97"))
    assert isinstance(refused, OrderRejected) and refused.code == "MAX_OPEN_ORDERS"


def test_the_daily_loss_limit_counts_losses_realized_earlier_in_the_batch(market, alice, bob):
    batch(market, entry(bob, "SELL", "1", "100"), entry(alice, "BUY", "1", "100"))  # alice long 1 @ 100
    risk_limit_set(actor="ops", account=alice, values={"daily_loss_limit": D("10")})
    batch(market, entry(bob, "BUY", "1", "90"))

    loss, next_order = batch(market, entry(alice, "SELL", "1", "90"), entry(alice, "BUY", "1", "90"))

    assert loss.status == "FILLED"  # realizes −10: the limit is reached
    assert isinstance(next_order, OrderRejected) and next_order.code == "DAILY_LOSS_LIMIT"
    assert_reconciled()
