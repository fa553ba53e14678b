"""Concurrency on PostgreSQL: 8 threads × 250 random orders across 2 instruments through the
service layer. Afterwards reconcile is clean and no order is lost or duplicated."""

import random
import threading
from decimal import Decimal

import pytest
from django.db import connection, connections

from trading.choices import OPEN_STATUSES
from trading.models import Order
from trading.order_rules import OrderRejected, OrderRequest
from trading.services import order_cancel, order_place
from trading.tests.fixtures import assert_reconciled

D = Decimal
THREADS = 8
ORDERS_PER_THREAD = 250


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_orders_on_two_instruments_keep_every_invariant(market, funded_account):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL); CI runs on it")
    # Four accounts shared by the threads, so the same balances are contended from both instruments.
    accounts = [funded_account(f"c{i}", USDT="1000000", BTC="1000", ETH="1000") for i in range(4)]
    instruments = [market.btcusdt, market.ethusdt]
    placed: list[list[int]] = [[] for _ in range(THREADS)]
    rejected = [0] * THREADS
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker(index: int) -> None:
        rng = random.Random(index)
        try:
            start.wait()
            for n in range(ORDERS_PER_THREAD):
                account = rng.choice(accounts)
                instrument = rng.choice(instruments)
                reference = instrument.reference_price
                roll = rng.random()
                side = rng.choice(["BUY", "SELL"])
                quantity = D(rng.randint(1, 20)) / 10
                if roll < 0.1:
                    request = OrderRequest(side=side, type="MARKET", quantity=quantity, client_order_id=f"t{index}-{n}")
                else:
                    offset = D(rng.randint(-20, 20)) / 10
                    request = OrderRequest(
                        side=side,
                        type="LIMIT",
                        quantity=quantity,
                        price=reference + offset,
                        client_order_id=f"t{index}-{n}",
                    )
                try:
                    order = order_place(
                        account=account, instrument=instrument, request=request, actor=f"thread-{index}"
                    )
                    placed[index].append(order.pk)
                    if order.is_open and rng.random() < 0.2:
                        try:
                            order_cancel(order=order, actor=f"thread-{index}")
                        except Exception as error:  # a fill may have completed it meanwhile
                            if getattr(error, "code", "") != "ORDER_NOT_OPEN":
                                raise
                except OrderRejected as rejection:
                    rejected[index] += 1
                    assert rejection.order is not None
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    accepted = sum(len(ids) for ids in placed)
    assert accepted + sum(rejected) == THREADS * ORDERS_PER_THREAD
    client_ids = list(Order.objects.exclude(client_order_id="").values_list("client_order_id", flat=True))
    assert len(client_ids) == THREADS * ORDERS_PER_THREAD, "every order stored exactly once (accepted or REJECTED)"
    assert len(set(client_ids)) == len(client_ids)
    assert Order.objects.filter(pk__in=[pk for ids in placed for pk in ids]).count() == accepted
    assert Order.objects.filter(status__in=OPEN_STATUSES).exists()
    assert_reconciled()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_instruments_crediting_an_accounts_first_balance_of_an_asset_both_trade(market, funded_account, place):
    """Carol holds no USDT yet; her sells on two instruments both credit that missing row. The
    second must add to the row the first created, not be refused. The audit chain lock is held
    from outside while both wait for it, so both have issued their balance writes first."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL); CI runs on it")
    import time

    import psycopg

    from audit.services import _CHAIN_LOCK_ID
    from trading.tests.fixtures import balance_of

    carol = funded_account("carol", BTC="1", ETH="1")
    place(funded_account("buyer1", USDT="1000"), "BUY", qty="0.1", price="100")
    place(funded_account("buyer2", USDT="1000"), "BUY", qty="0.1", price="50", instrument=market.ethusdt)
    settings = connection.settings_dict
    holder = psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], dbname=settings["NAME"]
    )
    holder.autocommit = True
    holder.execute("SELECT pg_advisory_lock(%s)", [_CHAIN_LOCK_ID])
    results: dict[str, str] = {}

    def sell(name, instrument, price):
        try:
            results[name] = place(carol, "SELL", qty="0.1", price=price, instrument=instrument).status
        except OrderRejected as rejection:
            results[name] = f"REJECTED {rejection.code}"
        finally:
            connections.close_all()

    sellers = [
        threading.Thread(target=sell, args=("BTCUSDT", market.btcusdt, "100")),
        threading.Thread(target=sell, args=("ETHUSDT", market.ethusdt, "50")),
    ]
    try:
        for thread in sellers:
            thread.start()
        # Both sellers blocked: on the chain lock, or the second on the row the first inserted.
        waiting_sql = "SELECT count(*) FROM pg_locks WHERE NOT granted"
        deadline = time.monotonic() + 10
        while holder.execute(waiting_sql).fetchone()[0] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        holder.execute("SELECT pg_advisory_unlock(%s)", [_CHAIN_LOCK_ID])
        for thread in sellers:
            thread.join()
        holder.close()

    assert results == {"BTCUSDT": "FILLED", "ETHUSDT": "FILLED"}
    fees = D("0.1") * D("100") * D("0.002") + D("0.1") * D("50") * D("0.002")  # carol's sells take: taker fees
    assert balance_of(carol, "USDT") == (D("15") - fees, D("0"))
    assert_reconciled()
