"""Events after commit: order, trade and balance events go out only once the transaction commits."""

from decimal import Decimal

import pytest
from django.db import transaction

from trading.events import trading_event
from trading.services import deposit_create

D = Decimal


@pytest.fixture
def received():
    events = []

    def receiver(sender, event, **kwargs):
        events.append(event)

    trading_event.connect(receiver)
    yield events
    trading_event.disconnect(receiver)


@pytest.mark.django_db(transaction=True)
def test_order_trade_and_balance_events_are_published_after_commit(place, funded_account, received):
    seller = funded_account("seller", BTC="5")
    buyer = funded_account("buyer", USDT="1000")
    received.clear()
    place(seller, "SELL", qty="1", price="100")
    place(buyer, "BUY", qty="1", price="100")
    kinds = [event.kind for event in received]
    assert kinds.count("trade") == 1
    assert {"order", "trade", "balance"} <= set(kinds)
    trade = next(event for event in received if event.kind == "trade")
    assert Decimal(trade.data["price"]) == D("100")
    assert set(trade.account_ids) == {seller.pk, buyer.pk}


@pytest.mark.django_db(transaction=True)
def test_nothing_is_published_for_rolled_back_work(funded_account, market, received):
    account = funded_account("alice")
    received.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        deposit_create(account=account, asset=market.usdt, amount=D("5"), reason="will roll back", actor="ops")
        assert received == []  # not yet: the outer transaction has not committed
        raise RuntimeError("abort")
    assert received == []
    deposit_create(account=account, asset=market.usdt, amount=D("5"), reason="kept", actor="ops")
    assert [event.kind for event in received] == ["balance"]
