"""Pre-trade risk and order filters: every refusal is stored as REJECTED with a stable reason code."""

from decimal import Decimal

import pytest

from audit.models import AuditEvent
from riskmgmt.services import instrument_status_set, kill_switch_engage, kill_switch_release, risk_limit_set
from trading.models import LedgerEntry, Order, Trade
from trading.tests.fixtures import assert_reconciled, balance_of

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture
def trader_account(funded_account):
    return funded_account("alice", USDT="10000", BTC="10")


def _rejected(place, account, *args, **kwargs):
    entries_before = LedgerEntry.objects.count()
    trades_before = Trade.objects.count()
    rejection = place(account, *args, expect_reject=True, **kwargs)
    order = rejection.order
    assert order is not None and order.status == "REJECTED" and order.reject_reason == rejection.code
    assert rejection.extra == {"order_id": order.pk, "reject_reason": rejection.code}
    assert AuditEvent.objects.filter(action="order.reject", target_id=str(order.pk)).exists()
    assert LedgerEntry.objects.count() == entries_before, "a refused order must not touch the ledger"
    assert Trade.objects.count() == trades_before
    return rejection


@pytest.mark.parametrize(
    ("args", "kwargs", "code"),
    [
        (("BUY", "LIMIT", "0.0015", "100"), {}, "LOT_SIZE"),
        (("BUY", "LIMIT", "2000", "100"), {}, "LOT_SIZE"),
        (("BUY", "LIMIT", "1", "100.001"), {}, "TICK_SIZE"),
        (("BUY", "LIMIT", "0.005", "100"), {}, "MIN_NOTIONAL"),
        (("BUY", "LIMIT", "1", None), {}, "PRICE_REQUIRED"),
        (("BUY", "MARKET", "1", "100"), {}, "PRICE_NOT_ALLOWED"),
        (("BUY", "MARKET", "1", None), {"time_in_force": "GTC"}, "INVALID_TIME_IN_FORCE"),
        (("SELL", "STOP_LOSS", "1", None), {}, "STOP_PRICE_REQUIRED"),
        (("BUY", "LIMIT", "1", "100"), {"stop": "99"}, "STOP_PRICE_NOT_ALLOWED"),
        (("BUY", "LIMIT", None, "100"), {"quote": "50"}, "QUOTE_QUANTITY_NOT_ALLOWED"),
        (("BUY", "LIMIT", "1", "200"), {}, "PRICE_BAND"),
        (("BUY", "LIMIT", "200", "100"), {}, "INSUFFICIENT_BALANCE"),
        (("SELL", "LIMIT", "11", "100"), {}, "INSUFFICIENT_BALANCE"),
    ],
)
def test_bad_orders_are_rejected_with_their_reason_code(place, trader_account, args, kwargs, code):
    assert _rejected(place, trader_account, *args, **kwargs).code == code
    assert_reconciled()


@pytest.mark.parametrize(
    ("qty", "price", "code"),
    [("0", "100", "INVALID_QUANTITY"), ("-1", "100", "INVALID_QUANTITY"), ("1", "-5", "INVALID_PRICE")],
)
def test_quantities_and_prices_that_cannot_exist_are_refused_without_a_row(place, trader_account, qty, price, code):
    rejection = place(trader_account, "BUY", "LIMIT", qty, price, expect_reject=True)
    assert rejection.code == code and rejection.order is None
    assert not Order.objects.exists() and not LedgerEntry.objects.filter(kind="LOCK").exists()


def test_halted_instrument_rejects_new_orders_and_resumes(place, trader_account, market):
    instrument_status_set(instrument=market.btcusdt, status="HALT", reason="news pending", actor="ops")
    rejection = _rejected(place, trader_account, "BUY", "LIMIT", "1", "100")
    assert rejection.code == "INSTRUMENT_HALTED" and "news pending" in rejection.message
    instrument_status_set(instrument=market.btcusdt, status="TRADING", reason="news out", actor="ops")
    assert place(trader_account, "BUY", "LIMIT", "1", "100").status == "NEW"
    assert set(AuditEvent.objects.values_list("action", flat=True)) >= {"instrument.halt", "instrument.resume"}


def test_kill_switch_cancels_open_orders_in_scope_and_blocks_until_released(place, trader_account, funded_account):
    other = funded_account("bob", USDT="10000")
    mine = place(trader_account, "BUY", "LIMIT", "1", "95")
    theirs = place(other, "BUY", "LIMIT", "1", "95")
    switch = kill_switch_engage(account=trader_account, reason="runaway bot", actor="ops")
    assert switch.canceled_orders == 1
    assert Order.objects.get(pk=mine.pk).status == "CANCELED"
    assert Order.objects.get(pk=theirs.pk).status == "NEW"
    assert balance_of(trader_account, "USDT") == (D("10000"), D("0"))
    assert _rejected(place, trader_account, "BUY", "LIMIT", "1", "95").code == "KILL_SWITCH"
    kill_switch_release(switch=switch, reason="bot fixed", actor="ops")
    assert place(trader_account, "BUY", "LIMIT", "1", "95").status == "NEW"
    assert set(AuditEvent.objects.values_list("action", flat=True)) >= {"kill_switch.engage", "kill_switch.release"}
    assert_reconciled()


def test_venue_kill_switch_cancels_every_open_order(place, trader_account, funded_account):
    other = funded_account("bob", USDT="10000")
    place(trader_account, "BUY", "LIMIT", "1", "95")
    place(other, "BUY", "LIMIT", "1", "96")
    kill_switch_engage(account=None, reason="venue incident", actor="ops")
    assert not Order.objects.filter(status__in=["NEW", "PARTIALLY_FILLED"]).exists()
    assert _rejected(place, other, "BUY", "LIMIT", "1", "95").code == "KILL_SWITCH"
    assert_reconciled()


@pytest.mark.parametrize(
    ("values", "args", "code"),
    [
        ({"max_order_qty": D("2")}, ("BUY", "LIMIT", "3", "100"), "MAX_ORDER_QTY"),
        ({"max_order_notional": D("250")}, ("BUY", "LIMIT", "3", "100"), "MAX_NOTIONAL"),
        ({"max_position_qty": D("2")}, ("BUY", "LIMIT", "3", "100"), "MAX_POSITION"),
        ({"price_band_pct": D("1")}, ("BUY", "LIMIT", "1", "98"), "PRICE_BAND"),
    ],
)
def test_risk_limits_refuse_orders_beyond_them(place, trader_account, market, values, args, code):
    risk_limit_set(actor="ops", account=trader_account, values=values)
    assert _rejected(place, trader_account, *args).code == code
    assert AuditEvent.objects.filter(action="risk_limit.create").exists()


def test_tightest_limit_of_venue_instrument_and_account_applies(place, trader_account, market):
    risk_limit_set(actor="ops", values={"max_order_qty": D("100")})
    risk_limit_set(actor="ops", instrument=market.btcusdt, values={"max_order_qty": D("5")})
    risk_limit_set(actor="ops", account=trader_account, values={"max_order_qty": D("50")})
    assert _rejected(place, trader_account, "BUY", "LIMIT", "6", "100").code == "MAX_ORDER_QTY"
    assert place(trader_account, "BUY", "LIMIT", "5", "100").status == "NEW"


def test_max_open_orders(place, trader_account):
    risk_limit_set(actor="ops", account=trader_account, values={"max_open_orders": 2})
    place(trader_account, "BUY", "LIMIT", "1", "95")
    place(trader_account, "BUY", "LIMIT", "1", "96")
    assert _rejected(place, trader_account, "BUY", "LIMIT", "1", "97").code == "MAX_OPEN_ORDERS"


def test_daily_loss_limit_refuses_orders_once_the_realized_loss_reaches_it(place, trader_account, funded_account):
    other = funded_account("bob", USDT="100000", BTC="100")
    place(other, "SELL", "LIMIT", "2", "100")
    place(trader_account, "BUY", "LIMIT", "2", "100")  # long 2 @ 100
    place(other, "BUY", "LIMIT", "2", "95")
    place(trader_account, "SELL", "LIMIT", "2", "95")  # realizes −10
    risk_limit_set(actor="ops", account=trader_account, values={"daily_loss_limit": D("10")})
    assert _rejected(place, trader_account, "BUY", "LIMIT", "1", "95").code == "DAILY_LOSS_LIMIT"


def test_duplicate_client_order_id_among_open_orders_is_a_conflict(place, trader_account):
    place(trader_account, "BUY", "LIMIT", "1", "95", client_order_id="abc")
    rejection = _rejected(place, trader_account, "BUY", "LIMIT", "1", "95", client_order_id="abc")
    assert rejection.code == "DUPLICATE_CLIENT_ORDER_ID" and rejection.status == 409


def test_client_order_id_is_free_again_once_the_order_is_done(place, trader_account):
    from trading.services import order_cancel

    first = place(trader_account, "BUY", "LIMIT", "1", "95", client_order_id="abc")
    order_cancel(order=first, actor="test")
    assert place(trader_account, "BUY", "LIMIT", "1", "95", client_order_id="abc").status == "NEW"
