"""Test data for the engine: a small venue (BTCUSDT, ETHUSDT), funded accounts, order helpers.

Loaded for every test package through `pytest_plugins` in the root conftest.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest

from marketdata.models import Asset, Instrument, Venue
from portal.choices import Role
from trading.models import TradingAccount
from trading.order_rules import OrderRejected, OrderRequest
from trading.services import account_create, deposit_create, fee_account_ensure, order_place

D = Decimal


@dataclass
class Market:
    venue: Venue
    usdt: Asset
    btc: Asset
    eth: Asset
    btcusdt: Instrument
    ethusdt: Instrument
    fee_account: TradingAccount


def instrument_create(venue, base, quote, symbol, **overrides) -> Instrument:
    values = {
        "tick_size": D("0.01"),
        "price_precision": 2,
        "lot_size": D("0.001"),
        "min_qty": D("0.001"),
        "max_qty": D("1000"),
        "min_notional": D("1"),
        "maker_fee_rate": D("0.001"),
        "taker_fee_rate": D("0.002"),
        "reference_price": D("100"),
        **overrides,
    }
    return Instrument.objects.create(venue=venue, base=base, quote=quote, symbol=symbol, **values)


@pytest.fixture
def market(db) -> Market:
    venue = Venue.objects.create(code="test", name="Test venue")
    usdt = Asset.objects.create(code="USDT", name="Tether")
    btc = Asset.objects.create(code="BTC", name="Bitcoin")
    eth = Asset.objects.create(code="ETH", name="Ether")
    return Market(
        venue=venue,
        usdt=usdt,
        btc=btc,
        eth=eth,
        btcusdt=instrument_create(venue, btc, usdt, "BTCUSDT"),
        ethusdt=instrument_create(venue, eth, usdt, "ETHUSDT", reference_price=D("50")),
        fee_account=fee_account_ensure(venue=venue),
    )


@pytest.fixture
def funded_account(market, make_user):
    """funded_account("alice", USDT="1000", BTC="2") → a trading account holding that."""

    def make(username: str = "alice", name: str = "Main", **amounts: str) -> TradingAccount:
        from portal.models import User

        user = User.objects.filter(username=username).first() or make_user(username=username, role=Role.TRADER)
        account = account_create(owner=user, venue=market.venue, name=name, actor="test-setup")
        for code, amount in amounts.items():
            asset = Asset.objects.get(code=code)
            deposit_create(account=account, asset=asset, amount=D(amount), reason="test funding", actor="test-setup")
        return account

    return make


@pytest.fixture
def place(market):
    """place(account, "BUY", "LIMIT", qty="1", price="100", ...) → the Order (or the OrderRejected error)."""

    def make(account, side, type_="LIMIT", qty=None, price=None, *, instrument=None, expect_reject=False, **extra):
        request = OrderRequest(
            side=side,
            type=type_,
            quantity=D(qty) if qty is not None else None,
            price=D(price) if price is not None else None,
            quote_quantity=D(extra.pop("quote")) if "quote" in extra else None,
            stop_price=D(extra.pop("stop")) if "stop" in extra else None,
            **extra,
        )
        try:
            order = order_place(account=account, instrument=instrument or market.btcusdt, request=request, actor="test")
        except OrderRejected as rejection:
            if expect_reject:
                return rejection
            raise
        assert not expect_reject, f"expected a rejection, got {order.status}"
        return order

    return make


def balance_of(account, code: str) -> tuple[Decimal, Decimal]:
    from trading.models import Balance

    row = Balance.objects.filter(account=account, asset__code=code).values_list("free", "locked").first()
    return row if row is not None else (D(0), D(0))


def assert_reconciled() -> None:
    from trading.reconcile import reconcile_run

    report = reconcile_run()
    assert report.ok, "\n".join(f"[{b.check}] {b.detail}" for b in report.breaks)
