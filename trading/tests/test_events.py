"""Events after commit: order, fill, balance, tape and book events go out only once the transaction
commits, each numbered in its stream."""

from decimal import Decimal

import pytest
from django.db import transaction

from trading.events import trading_events_committed
from trading.services import deposit_create

D = Decimal


@pytest.fixture
def received():
    collected = []

    def receiver(sender, events, **kwargs):
        collected.extend(events)

    trading_events_committed.connect(receiver)
    yield collected
    trading_events_committed.disconnect(receiver)


@pytest.mark.django_db(transaction=True)
def test_order_fill_balance_tape_and_book_events_are_published_after_commit_and_numbered(
    place, funded_account, received
):
    seller = funded_account("seller", BTC="5")
    buyer = funded_account("buyer", USDT="1000")
    received.clear()
    place(seller, "SELL", qty="1", price="100")
    place(buyer, "BUY", qty="1", price="100")
    fills = [event for event in received if event.kind == "fill"]
    assert {(event.account_id, event.data["side"], event.data["role"]) for event in fills} == {
        (seller.pk, "SELL", "MAKER"),
        (buyer.pk, "BUY", "TAKER"),
    }
    assert all(Decimal(event.data["price"]) == D("100") for event in fills)
    for account in (seller, buyer):
        for kind in ("order", "fill", "balance"):
            seqs = [event.seq for event in received if event.kind == kind and event.account_id == account.pk]
            assert seqs and seqs == list(range(seqs[0], seqs[0] + len(seqs))), (account.name, kind, seqs)
    (tape,) = [event for event in received if event.kind == "trades"]
    assert tape.seq == 1 and Decimal(tape.data["trades"][0]["quantity"]) == D("1")
    book = [event for event in received if event.kind == "book"]
    assert [event.seq for event in book] == [1, 2]
    assert book[0].data == {"bids": [], "asks": [["100.00000000", "1.00000000"]]}
    assert book[1].data == {"bids": [], "asks": [["100.00000000", "0.00000000"]]}
    seller.refresh_from_db()
    assert (seller.orders_seq, seller.fills_seq, seller.balances_seq) == (2, 1, 4)  # after the deposit's 1


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
