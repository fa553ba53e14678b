"""`manage.py run_strategies` as a process of its own, killed (SIGKILL) while bars keep coming and
started again: the strategy resumes, and no order is placed twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

from portal.tests.servers import full_stack_env, full_stack_required
from trading.choices import StrategyStatus
from trading.models import Order, Strategy
from trading.strategies.services import StrategyDefinition, strategy_create, strategy_start
from trading.tests.bars import START, candles_of, candles_store, random_walk

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

D = Decimal


class Runner:
    """`manage.py run_strategies` in a process group of its own, stopped by its PID."""

    def __init__(self, log: Path):
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our own command
                [sys.executable, "manage.py", "run_strategies"],
                cwd=settings.BASE_DIR,
                env={**os.environ, **full_stack_env()},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self, signum: int = signal.SIGKILL) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signum)
        self.proc.wait(timeout=30)

    def wait_for(self, condition, *, seconds: float = 180) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, f"timed out; the runner's log ends:\n{self.log.read_text()[-3000:]}"
            time.sleep(0.2)


@pytest.fixture
def runner(tmp_path):
    """The runner process of a test, killed at its end whatever happened."""
    process = Runner(tmp_path / "runner.log")
    yield process
    process.kill()


def test_a_runner_killed_mid_run_and_started_again_places_no_order_twice(market, funded_account, place, runner):
    full_stack_required()
    alice = funded_account("alice", USDT="100000", BTC="5")
    bob = funded_account("bob", USDT="1000000", BTC="1000")
    place(bob, "SELL", qty="500", price="101")  # liquidity for the strategy's market orders
    place(bob, "BUY", qty="500", price="99")
    walk = random_walk(300, seed=5)
    candles_store(market.btcusdt, candles_of(walk.close[:40].tolist()))
    definition = StrategyDefinition(
        name="cross",
        kind="ma_crossover",
        params={"fast": 2, "slow": 5, "quantity": 0.1},
        account_id=alice.pk,
        symbol="BTCUSDT",
    )
    strategy = strategy_start(strategy=create(alice, definition), actor=alice.owner)
    runner.start()
    runner.wait_for(lambda: Strategy.objects.get(pk=strategy.pk).last_bar_at is not None)

    def feed(first: int, last: int) -> None:
        for start in range(first, last, 10):
            candles_store(market.btcusdt, candles_of(walk.close[start : start + 10].tolist(), first=start))
            time.sleep(0.3)

    feed(40, 200)
    runner.wait_for(lambda: Order.objects.filter(strategy=strategy).count() >= 5)
    runner.kill()  # as a machine that lost power: no goodbye
    placed_before = Order.objects.filter(strategy=strategy).count()
    feed(200, 300)
    runner.start()
    last_open = START + 60 * 299
    runner.wait_for(lambda: Strategy.objects.get(pk=strategy.pk).last_bar_at.timestamp() == last_open)
    runner.kill(signal.SIGTERM)

    orders = list(Order.objects.filter(strategy=strategy).order_by("id"))
    ids = Counter(order.client_order_id for order in orders)
    assert len(orders) > placed_before >= 5, (len(orders), placed_before)
    assert max(ids.values()) == 1, [name for name, count in ids.items() if count > 1]
    assert all(name.startswith(f"st{strategy.pk}r1-") for name in ids)
    sides = [order.side for order in orders]
    assert sides == ["BUY", "SELL"] * (len(sides) // 2) + ["BUY"] * (len(sides) % 2)  # long-only, never twice
    strategy.refresh_from_db()
    assert strategy.status == StrategyStatus.RUNNING
    assert strategy.position == (D("0.1") if len(sides) % 2 else D("0"))


def create(account, definition):
    return strategy_create(user=account.owner, definition=definition, actor=account.owner)
