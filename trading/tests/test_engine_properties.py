"""Property-based: random sequences of place / cancel / deposit keep every invariant after every step.

After each step: reconcile is clean (balance = ledger, conservation per asset, nothing
negative, no crossed book, exact order locks, executed = trades ≤ quantity) and every trade
of the step honoured price-time priority against the book as it stood before the step.
"""

import contextlib
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketdata.models import Asset
from trading.choices import OPEN_STATUSES, Side
from trading.models import Order, Trade
from trading.order_rules import OrderRejected, OrderRequest
from trading.reconcile import reconcile_run
from trading.services import deposit_create, order_cancel, order_place

D = Decimal

place_step = st.tuples(
    st.just("place"),
    st.integers(0, 2),  # account
    st.integers(0, 1),  # instrument
    st.sampled_from(["BUY", "SELL"]),
    st.sampled_from(
        ["LIMIT", "LIMIT", "LIMIT", "MARKET", "LIMIT_MAKER", "IOC", "FOK", "STOP_LOSS_LIMIT", "MARKET_QUOTE"]
    ),
    st.integers(1, 30),  # quantity in tenths
    st.integers(-6, 6),  # price offset in half units around the reference
)
cancel_step = st.tuples(st.just("cancel"), st.integers(0, 2), st.integers(0, 10))
deposit_step = st.tuples(
    st.just("deposit"), st.integers(0, 2), st.sampled_from(["USDT", "BTC", "ETH"]), st.integers(1, 500)
)
steps_strategy = st.lists(
    st.one_of(place_step, place_step, place_step, cancel_step, deposit_step), min_size=1, max_size=25
)


def _request(side, kind, tenths, offset, reference):
    quantity = D(tenths) / 10
    price = reference + D(offset) / 2
    if kind == "MARKET":
        return OrderRequest(side=side, type="MARKET", quantity=quantity)
    if kind == "MARKET_QUOTE":
        return OrderRequest(side=side, type="MARKET", quote_quantity=quantity * reference)
    if kind in ("IOC", "FOK"):
        return OrderRequest(side=side, type="LIMIT", quantity=quantity, price=price, time_in_force=kind)
    if kind == "STOP_LOSS_LIMIT":
        stop = reference - 1 if side == Side.SELL else reference + 1
        return OrderRequest(side=side, type=kind, quantity=quantity, price=stop, stop_price=stop)
    return OrderRequest(side=side, type=kind, quantity=quantity, price=price)


def _priority_violations(snapshot, new_trades):
    """Trades whose maker was behind a still-open order of another account at a better place in the queue."""
    problems = []
    current = {o.pk: o for o in Order.objects.filter(pk__in=[o["pk"] for o in snapshot])}
    for trade in new_trades:
        maker = trade.maker_order
        for other in snapshot:
            if other["side"] != maker.side or other["instrument_id"] != maker.instrument_id:
                continue
            if other["account_id"] == trade.taker_account_id or other["pk"] == maker.pk:
                continue
            better = other["price"] < maker.price if maker.side == Side.SELL else other["price"] > maker.price
            earlier = other["price"] == maker.price and other["priority"] < maker.priority
            if (better or earlier) and current[other["pk"]].status in OPEN_STATUSES:
                problems.append(f"trade {trade.pk} hit order {maker.pk} before order {other['pk']}")
    return problems


@pytest.mark.django_db
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(steps=steps_strategy)
def test_random_sequences_keep_every_invariant(market, funded_account, steps):
    with transaction.atomic():
        accounts = [funded_account(f"u{i}", name=f"acct{i}", USDT="2000", BTC="10", ETH="20") for i in range(3)]
        instruments = [market.btcusdt, market.ethusdt]
        assets = {asset.code: asset for asset in Asset.objects.all()}
        for step in steps:
            snapshot = list(
                Order.objects.filter(status__in=OPEN_STATUSES, is_working=True).values(
                    "pk", "side", "price", "priority", "account_id", "instrument_id"
                )
            )
            last_trade = Trade.objects.order_by("-id").values_list("id", flat=True).first() or 0
            if step[0] == "place":
                _, who, which, side, kind, tenths, offset = step
                instrument = instruments[which]
                with contextlib.suppress(OrderRejected):
                    order_place(
                        account=accounts[who],
                        instrument=instrument,
                        request=_request(side, kind, tenths, offset, instrument.reference_price),
                        actor="property",
                    )
            elif step[0] == "cancel":
                _, who, index = step
                open_orders = list(Order.objects.filter(account=accounts[who], status__in=OPEN_STATUSES).order_by("id"))
                if open_orders:
                    order_cancel(order=open_orders[index % len(open_orders)], actor="property")
            else:
                _, who, code, amount = step
                deposit_create(account=accounts[who], asset=assets[code], amount=D(amount), reason="top-up", actor="p")
            report = reconcile_run()
            assert report.ok, [f"[{b.check}] {b.detail}" for b in report.breaks]
            new_trades = list(Trade.objects.filter(id__gt=last_trade).select_related("maker_order"))
            assert _priority_violations(snapshot, new_trades) == []
            for trade in new_trades:
                assert trade.maker_order.executed_qty <= trade.maker_order.quantity
        transaction.set_rollback(True)
