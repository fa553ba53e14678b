"""In-process parts of bench/order_placement.py, run through `manage.py shell -c` on the bench
database: the setup of the bench trader, and the engine-alone measurement."""

from __future__ import annotations

import json
import random
import threading
import time
from decimal import Decimal

FUNDING = {"USDT": "1000000000", "BTC": "100000", "ETH": "1000000", "BNB": "1000000", "SOL": "1000000"}


def bench_setup() -> None:
    """Seed the demo market, lift the open-order limit, and give a bench trader four funded
    accounts and a read + trade API key; prints `SETUP=<json>`."""
    from marketdata.models import Asset, Venue
    from portal.api_keys import api_key_create
    from portal.choices import ApiKeyScope, Role
    from portal.models import User
    from portal.users import user_set_role
    from riskmgmt.services import risk_limit_set
    from trading.demo import demo_market_seed
    from trading.services import account_create, deposit_create

    demo_market_seed()
    venue = Venue.objects.get()
    risk_limit_set(actor="bench", values={"max_open_orders": None})  # resting orders pile up in a bench run
    user = User.objects.create_user(username="bench-trader", email="bench@tradeport.local")
    user_set_role(user=user, role=Role.TRADER, actor="bench")
    accounts = []
    for name in ("A", "B", "C", "D"):
        account = account_create(owner=user, venue=venue, name=name, actor="bench")
        for code, amount in FUNDING.items():
            asset = Asset.objects.get(code=code)
            deposit_create(account=account, asset=asset, amount=Decimal(amount), reason="bench", actor="bench")
        accounts.append(account.pk)
    key = api_key_create(user=user, name="bench", scopes=[ApiKeyScope.READ, ApiKeyScope.TRADE])
    print("SETUP=" + json.dumps({"key": key.raw_key, "accounts": accounts}))


def _request(rng: random.Random, instrument):
    from portal.decimals import ceil_to
    from trading.order_rules import OrderRequest

    reference = instrument.reference_price
    side = rng.choice(["BUY", "SELL"])
    smallest = max(instrument.min_qty, ceil_to(Decimal(6) / reference, instrument.lot_size))
    quantity = smallest * rng.randint(1, 4)
    roll = rng.random()
    if roll < 0.1:
        return OrderRequest(side=side, type="MARKET", quantity=quantity)
    if roll < 0.3:
        price = reference * (Decimal("1.01") if side == "BUY" else Decimal("0.99"))
    else:
        away = Decimal(rng.randint(20, 300)) / 10000
        price = reference * (1 - away if side == "BUY" else 1 + away)
    price = (price / instrument.tick_size).quantize(Decimal(1)) * instrument.tick_size
    return OrderRequest(side=side, type="LIMIT", quantity=quantity, price=price)


def engine_run(*, threads: int, orders: int, spread: bool) -> None:
    """`order_place` from `threads` threads, on BTCUSDT only or on all four instruments;
    prints `ENGINE=<json>` with orders/s and latency percentiles."""
    from django.db import connections

    from marketdata.models import Instrument
    from trading.models import TradingAccount
    from trading.order_rules import OrderRejected
    from trading.services import order_place

    accounts = list(TradingAccount.objects.filter(owner__username="bench-trader").order_by("id"))
    instruments = list(Instrument.objects.order_by("symbol"))
    hot = Instrument.objects.get(symbol="BTCUSDT")
    latencies: list[float] = []
    rejected = [0]
    lock = threading.Lock()

    def worker(index: int) -> None:
        rng = random.Random(index)
        mine = []
        for n in range(orders // threads):
            instrument = rng.choice(instruments) if spread else hot
            started = time.perf_counter()
            try:
                order_place(
                    account=accounts[(index + n) % len(accounts)],
                    instrument=instrument,
                    request=_request(rng, instrument),
                    actor="bench",
                )
            except OrderRejected:
                with lock:
                    rejected[0] += 1
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
        connections.close_all()

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    result = {
        "orders": len(latencies),
        "seconds": elapsed,
        "rate": len(latencies) / elapsed,
        "rejected": rejected[0],
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }
    print("ENGINE=" + json.dumps(result))
