"""Positions and P&L: average price on increase, realized P&L on decrease, flips through zero."""

from decimal import Decimal

import pytest

from trading.models import Position
from trading.positions import PositionState, position_after_fill, unrealized_pnl
from trading.tests.fixtures import assert_reconciled

D = Decimal
FLAT = PositionState(D(0), D(0), D(0))


def test_increase_moves_the_average_price_to_the_weighted_mean():
    state, realized = position_after_fill(FLAT, signed_qty=D("1"), price=D("100"))
    state, realized = position_after_fill(state, signed_qty=D("3"), price=D("104"))
    assert state == PositionState(D("4"), D("103"), D("0")) and realized == 0


def test_decrease_realizes_pnl_and_keeps_the_average_price():
    state = PositionState(D("4"), D("103"), D("0"))
    state, realized = position_after_fill(state, signed_qty=D("-1.5"), price=D("110"))
    assert realized == D("10.5") and state == PositionState(D("2.5"), D("103"), D("10.5"))


def test_closing_to_zero_resets_the_average_price():
    state, realized = position_after_fill(PositionState(D("2"), D("50"), D("1")), signed_qty=D("-2"), price=D("45"))
    assert realized == D("-10") and state == PositionState(D("0"), D("0"), D("-9"))


def test_flip_closes_the_old_side_and_opens_the_rest_at_the_fill_price():
    state, realized = position_after_fill(PositionState(D("1"), D("100"), D("0")), signed_qty=D("-3"), price=D("90"))
    assert realized == D("-10") and state == PositionState(D("-2"), D("90"), D("-10"))
    state, realized = position_after_fill(state, signed_qty=D("1"), price=D("80"))
    assert realized == D("10") and state.quantity == D("-1") and state.average_price == D("90")


def test_unrealized_pnl_from_the_last_price():
    assert unrealized_pnl(quantity=D("-2"), average_price=D("90"), last_price=D("85")) == D("10")
    assert unrealized_pnl(quantity=D("2"), average_price=D("90"), last_price=None) == 0


@pytest.mark.django_db
def test_positions_follow_partial_fills_through_the_engine(place, funded_account):
    seller = funded_account("seller", BTC="10", USDT="10000")
    buyer = funded_account("buyer", USDT="10000", BTC="10")
    place(seller, "SELL", qty="1", price="100")
    place(seller, "SELL", qty="1", price="102")
    place(buyer, "BUY", qty="2", price="102")
    position = Position.objects.get(account=buyer)
    assert position.quantity == D("2") and position.average_price == D("101")
    place(seller, "BUY", qty="3", price="104")
    place(buyer, "SELL", qty="3", price="104")  # sells 2 long and goes 1 short
    position.refresh_from_db()
    assert position.realized_pnl == D("6") and position.quantity == D("-1") and position.average_price == D("104")
    assert_reconciled()
