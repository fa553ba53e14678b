"""Matching rules: price-time priority, partial fills, fees, order types, time in force, STP, stops."""

from decimal import Decimal

import pytest

from audit.models import AuditEvent
from trading.models import Order, Trade
from trading.order_rules import OrderRejected, OrderRequest
from trading.services import order_cancel, order_cancel_all, order_cancel_replace
from trading.tests.fixtures import assert_reconciled, balance_of

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture
def seller(funded_account):
    return funded_account("seller", BTC="100", USDT="100000")


@pytest.fixture
def buyer(funded_account):
    return funded_account("buyer", USDT="100000", BTC="100")


def test_better_price_fills_first_then_earlier_order_at_the_same_price(place, seller, funded_account, buyer):
    second_seller = funded_account("seller2", BTC="100")
    late_at_100 = place(second_seller, "SELL", qty="1", price="100")
    early_at_101 = place(seller, "SELL", qty="1", price="101")
    # An earlier order at 100 from a third account, placed after: time priority must put late_at_100 first.
    third = funded_account("seller3", BTC="100")
    later_at_100 = place(third, "SELL", qty="1", price="100")

    taker = place(buyer, "BUY", qty="2.5", price="101")

    trades = list(Trade.objects.order_by("id").values_list("maker_order_id", "price", "quantity"))
    assert trades == [
        (late_at_100.pk, D("100"), D("1")),
        (later_at_100.pk, D("100"), D("1")),
        (early_at_101.pk, D("101"), D("0.5")),
    ]
    assert taker.status == "FILLED"
    early_at_101.refresh_from_db()
    assert early_at_101.status == "PARTIALLY_FILLED" and early_at_101.executed_qty == D("0.5")
    assert_reconciled()


@pytest.mark.parametrize("resting_side", ["BUY", "SELL"])
def test_a_sweep_across_many_pages_of_the_book_keeps_price_time_priority(place, funded_account, resting_side):
    """More resting orders than a book page (8, then 40): each side is read best price first,
    then oldest first, across page boundaries (bids come from their own index)."""
    makers = [funded_account(f"maker{n}", BTC="100", USDT="100000") for n in range(3)]
    prices = ["99", "98", "97"] if resting_side == "BUY" else ["101", "102", "103"]
    resting = []
    for round_ in range(5):
        for n, price in enumerate(prices):  # interleaved: time order differs from price order
            resting.append(place(makers[(round_ + n) % 3], resting_side, qty="1", price=price))
    taker_side = "SELL" if resting_side == "BUY" else "BUY"
    taker = place(funded_account("taker", BTC="100", USDT="100000"), taker_side, "MARKET", qty="15")

    better_first = sorted(resting, key=lambda o: (-o.price if resting_side == "BUY" else o.price, o.pk))
    assert list(Trade.objects.order_by("id").values_list("maker_order_id", flat=True)) == [o.pk for o in better_first]
    taker.refresh_from_db()
    assert taker.status == "FILLED"
    assert_reconciled()


def test_trade_executes_at_the_resting_orders_price_and_partial_fill_rests(place, seller, buyer):
    place(seller, "SELL", qty="1", price="99")
    taker = place(buyer, "BUY", qty="3", price="100")

    trade = Trade.objects.get()
    assert trade.price == D("99") and trade.quantity == D("1") and trade.aggressor_side == "BUY"
    taker.refresh_from_db()
    assert taker.status == "PARTIALLY_FILLED"
    assert taker.executed_qty == D("1")
    # The rest (2 at 100) stays locked at its own price plus the taker fee; the better fill's saving is freed.
    assert taker.locked_amount == D("2") * D("100") * D("1.002")
    assert balance_of(buyer, "USDT")[1] == taker.locked_amount
    assert_reconciled()


def test_maker_and_taker_fees_go_to_the_venue_fee_account(place, seller, buyer, market):
    place(seller, "SELL", qty="2", price="100")
    place(buyer, "BUY", qty="2", price="100")

    trade = Trade.objects.get()
    assert trade.maker_fee == D("0.2")  # 200 × 0.1 %
    assert trade.taker_fee == D("0.4")  # 200 × 0.2 %
    assert balance_of(market.fee_account, "USDT") == (D("0.6"), D("0"))
    assert balance_of(buyer, "BTC") == (D("102"), D("0"))
    assert balance_of(buyer, "USDT") == (D("100000") - D("200.4"), D("0"))
    assert balance_of(seller, "USDT") == (D("100000") + D("199.8"), D("0"))
    assert balance_of(seller, "BTC") == (D("98"), D("0"))
    assert_reconciled()


def test_buy_locks_price_times_quantity_plus_the_maximum_fee_and_sell_locks_quantity(place, buyer, seller):
    bid = place(buyer, "BUY", qty="2", price="90")
    ask = place(seller, "SELL", qty="1.5", price="110")
    assert bid.locked_amount == D("180.36")
    assert balance_of(buyer, "USDT") == (D("100000") - D("180.36"), D("180.36"))
    assert ask.locked_amount == D("1.5")
    assert balance_of(seller, "BTC") == (D("98.5"), D("1.5"))


def test_cancel_releases_exactly_what_the_order_held(place, buyer):
    bid = place(buyer, "BUY", qty="2", price="90")
    canceled = order_cancel(order=bid, actor="test")
    assert canceled.status == "CANCELED" and canceled.locked_amount == 0
    assert balance_of(buyer, "USDT") == (D("100000"), D("0"))
    assert AuditEvent.objects.filter(action="order.cancel", target_id=str(bid.pk)).exists()


def test_market_order_that_runs_out_of_liquidity_expires_its_remainder(place, seller, buyer):
    place(seller, "SELL", qty="1", price="101")
    order = place(buyer, "BUY", "MARKET", qty="3")
    assert order.status == "EXPIRED" and order.expire_reason == "NO_LIQUIDITY"
    assert order.executed_qty == D("1")
    assert balance_of(buyer, "USDT")[1] == 0
    assert_reconciled()


def test_market_buy_by_quote_amount_spends_at_most_that_amount(place, seller, buyer):
    place(seller, "SELL", qty="1", price="100")
    place(seller, "SELL", qty="5", price="102")
    order = place(buyer, "BUY", "MARKET", quote="250")
    assert order.status == "FILLED"
    assert order.executed_quote <= D("250")
    assert order.executed_qty == D("1") + D("1.47")  # 100 at 100, then floor(150 / 102) lots of 0.001
    assert balance_of(buyer, "USDT")[1] == 0
    assert_reconciled()


def test_market_sell_by_quote_amount_receives_about_that_amount(place, buyer, seller):
    place(buyer, "BUY", qty="10", price="100")
    order = place(seller, "SELL", "MARKET", quote="250")
    assert order.status == "FILLED"
    assert order.executed_qty == D("2.5") and order.executed_quote == D("250")
    assert balance_of(seller, "BTC")[1] == 0
    assert_reconciled()


def test_market_order_never_executes_beyond_the_price_band(place, seller, buyer, market):
    place(seller, "SELL", qty="1", price="102")
    place(seller, "SELL", qty="1", price="105")
    from riskmgmt.services import risk_limit_set

    risk_limit_set(actor="test", instrument=market.btcusdt, values={"price_band_pct": D("3")})
    order = place(buyer, "BUY", "MARKET", qty="2")
    # 102 is inside the 3 % band around the reference 100; 105 is not, so the rest expires.
    assert order.executed_qty == D("1")
    assert order.status == "EXPIRED" and order.expire_reason == "NO_LIQUIDITY"
    assert_reconciled()


def test_limit_maker_that_would_cross_is_rejected(place, seller, buyer):
    place(seller, "SELL", qty="1", price="100")
    rejection = place(buyer, "BUY", "LIMIT_MAKER", qty="1", price="100", expect_reject=True)
    assert rejection.code == "LIMIT_MAKER_WOULD_CROSS"
    assert rejection.order.status == "REJECTED" and rejection.order.reject_reason == "LIMIT_MAKER_WOULD_CROSS"
    resting = place(buyer, "BUY", "LIMIT_MAKER", qty="1", price="99.99")
    assert resting.status == "NEW"
    assert Trade.objects.count() == 0


def test_ioc_fills_what_it_can_and_expires_the_rest(place, seller, buyer):
    place(seller, "SELL", qty="1", price="100")
    order = place(buyer, "BUY", qty="2", price="100", time_in_force="IOC")
    assert order.status == "EXPIRED" and order.executed_qty == D("1")
    assert balance_of(buyer, "USDT")[1] == 0
    assert_reconciled()


def test_fok_order_that_cannot_fill_entirely_is_expired_and_unlocks_funds(place, seller, buyer):
    maker = place(seller, "SELL", qty="1", price="100")
    order = place(buyer, "BUY", qty="2", price="100", time_in_force="FOK")
    assert order.status == "EXPIRED" and order.executed_qty == 0 and order.expire_reason == "FOK_NOT_FILLED"
    assert Trade.objects.count() == 0
    maker.refresh_from_db()
    assert maker.status == "NEW" and maker.executed_qty == 0
    assert balance_of(buyer, "USDT") == (D("100000"), D("0"))
    assert_reconciled()


def test_fok_order_that_can_fill_entirely_fills(place, seller, buyer):
    place(seller, "SELL", qty="1", price="100")
    place(seller, "SELL", qty="1", price="100.5")
    order = place(buyer, "BUY", qty="2", price="101", time_in_force="FOK")
    assert order.status == "FILLED" and Trade.objects.count() == 2


def test_self_trade_prevention_expires_the_taker_by_default(place, buyer):
    ask = place(buyer, "SELL", qty="1", price="100")
    order = place(buyer, "BUY", qty="1", price="100")
    assert order.status == "EXPIRED" and order.expire_reason == "SELF_TRADE_PREVENTION"
    ask.refresh_from_db()
    assert ask.status == "NEW"
    assert Trade.objects.count() == 0
    assert_reconciled()


@pytest.mark.parametrize(
    ("mode", "taker_status", "maker_status"),
    [("EXPIRE_MAKER", "FILLED", "EXPIRED"), ("EXPIRE_BOTH", "EXPIRED", "EXPIRED")],
)
def test_self_trade_prevention_modes(place, buyer, seller, mode, taker_status, maker_status):
    buyer.stp_mode = mode
    buyer.save()
    own_ask = place(buyer, "SELL", qty="1", price="99")
    place(seller, "SELL", qty="1", price="100")
    taker = place(buyer, "BUY", qty="1", price="100")
    own_ask.refresh_from_db()
    assert own_ask.status == maker_status and own_ask.expire_reason == "SELF_TRADE_PREVENTION"
    assert taker.status == taker_status
    assert not Trade.objects.filter(maker_account=buyer).exists()
    assert_reconciled()


def test_stop_loss_triggers_on_the_last_trade_price_and_executes_at_market(place, buyer, seller, funded_account):
    stopper = funded_account("stopper", BTC="5")
    stop = place(stopper, "SELL", "STOP_LOSS", qty="1", stop="98")
    assert stop.status == "NEW" and not stop.is_working
    place(buyer, "BUY", qty="1", price="97")  # the bid the stop will hit
    place(buyer, "BUY", qty="1", price="98")
    # A trade at 98 reaches the stop price.
    place(seller, "SELL", qty="1", price="98")
    stop.refresh_from_db()
    assert stop.is_working and stop.status == "FILLED"
    assert Trade.objects.filter(taker_order=stop, price=D("97")).exists()
    assert AuditEvent.objects.filter(action="order.trigger", target_id=str(stop.pk)).exists()
    assert_reconciled()


def test_take_profit_limit_enters_the_book_as_a_limit_order_when_triggered(place, buyer, seller, funded_account):
    taker_account = funded_account("tp", BTC="5")
    order = place(taker_account, "SELL", "TAKE_PROFIT_LIMIT", qty="1", price="105", stop="102")
    place(seller, "SELL", qty="1", price="102")
    place(buyer, "BUY", qty="1", price="102")  # last price 102 → triggers
    order.refresh_from_db()
    assert order.is_working and order.status == "NEW" and order.priority is not None
    assert_reconciled()


def test_stop_order_already_reached_is_rejected(place, buyer):
    rejection = place(buyer, "SELL", "STOP_LOSS", qty="1", stop="100", expect_reject=True)
    assert rejection.code == "WOULD_TRIGGER_IMMEDIATELY"


def test_cancel_of_a_filled_order_is_a_conflict_with_its_status(place, seller, buyer):
    ask = place(seller, "SELL", qty="1", price="100")
    place(buyer, "BUY", qty="1", price="100")
    from portal.errors import ConflictError

    with pytest.raises(ConflictError) as caught:
        order_cancel(order=ask, actor="test")
    assert caught.value.code == "ORDER_NOT_OPEN" and caught.value.extra == {"order_status": "FILLED"}


def test_cancel_all_cancels_only_the_scope(place, buyer):
    btc_bid = place(buyer, "BUY", qty="1", price="90")
    btc_ask = place(buyer, "SELL", qty="1", price="110")
    canceled = order_cancel_all(account_ids=[buyer.pk], side="BUY", actor="test")
    assert [o.pk for o in canceled] == [btc_bid.pk]
    assert Order.objects.get(pk=btc_ask.pk).status == "NEW"
    assert_reconciled()


def test_cancel_replace_swaps_the_order_atomically(place, buyer):
    old = place(buyer, "BUY", qty="1", price="90", client_order_id="mine")
    new = order_cancel_replace(
        order=old,
        request=OrderRequest(side="BUY", type="LIMIT", quantity=D("2"), price=D("91"), client_order_id="mine"),
        actor="test",
    )
    old.refresh_from_db()
    assert old.status == "CANCELED" and new.status == "NEW" and new.replaces_id == old.pk
    assert balance_of(buyer, "USDT")[1] == new.locked_amount
    assert_reconciled()


def test_cancel_replace_may_spend_what_the_replaced_order_held(place, funded_account):
    """The replacement's balance check counts the replaced order's unlock, written in the same
    transaction: 1000 USDT, 901.8 of it locked by the old bid, the new bid needs 951.9."""
    alice = funded_account("alice", USDT="1000")
    old = place(alice, "BUY", qty="9", price="100")
    assert balance_of(alice, "USDT") == (D("98.2"), D("901.8"))

    new = order_cancel_replace(
        order=old, request=OrderRequest(side="BUY", type="LIMIT", quantity=D("9.5"), price=D("100")), actor="test"
    )
    assert new.status == "NEW" and new.locked_amount == D("951.9")
    assert balance_of(alice, "USDT") == (D("48.1"), D("951.9"))
    assert_reconciled()

    with pytest.raises(OrderRejected) as caught:  # more than the account has, even counting the unlock
        order_cancel_replace(
            order=new, request=OrderRequest(side="BUY", type="LIMIT", quantity=D("10"), price=D("100")), actor="test"
        )
    assert caught.value.code == "INSUFFICIENT_BALANCE"
    assert Order.objects.get(pk=new.pk).status == "NEW"
    assert_reconciled()


def test_cancel_replace_with_a_refused_new_order_leaves_the_old_one(place, buyer):
    old = place(buyer, "BUY", qty="1", price="90")
    from trading.order_rules import OrderRejected

    with pytest.raises(OrderRejected) as caught:
        order_cancel_replace(
            order=old, request=OrderRequest(side="BUY", type="LIMIT", quantity=D("1"), price=D("90.001")), actor="test"
        )
    assert caught.value.code == "TICK_SIZE"
    old.refresh_from_db()
    assert old.status == "NEW"
    assert Order.objects.filter(status="REJECTED", replaces=old).exists()
    assert_reconciled()


def test_every_placement_and_fill_is_audited(place, seller, buyer):
    ask = place(seller, "SELL", qty="1", price="100")
    bid = place(buyer, "BUY", qty="1", price="100")
    trade = Trade.objects.get()
    actions = set(AuditEvent.objects.values_list("action", "target_id"))
    assert ("order.place", str(ask.pk)) in actions
    assert ("order.place", str(bid.pk)) in actions
    assert ("order.fill", str(trade.pk)) in actions
