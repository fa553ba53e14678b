"""The live runner against the engine: a strategy's orders go through the same services as a
trader's (risk checks, ledger, audit, with the strategy as the actor), its caps hold, a stop
or the kill switch cancels its open orders, a strategy that raises stops alone, and a runner
that restarts after placing a step's orders never places them twice."""

from __future__ import annotations

from decimal import Decimal

import pytest

from audit.models import AuditEvent
from marketdata.models import InstrumentStatus
from marketdata.simulator import Simulator
from portal.errors import ConflictError
from riskmgmt.services import instrument_status_set, kill_switch_engage
from trading.choices import OPEN_STATUSES, OrderStatus, StrategyStatus
from trading.models import Order, Strategy, StrategyLogLine
from trading.order_rules import OrderRejected, OrderRequest
from trading.services import order_place
from trading.strategies.base import Strategy as StrategyCode
from trading.strategies.builtin import CATALOGUE
from trading.strategies.runner import StrategyRunner
from trading.strategies.services import StrategyDefinition, strategy_create, strategy_start, strategy_stop
from trading.tests.bars import START, candles_of, candles_store

pytestmark = pytest.mark.django_db

D = Decimal
#: Falls, then a sharp rise: with fast 3 / slow 8 the fast average crosses above at bar 14.
CLOSES = [110, 109, 108, 107, 106, 105, 104, 103, 102, 101, 100, 100, 101, 104, 107, 109]
CROSSOVER = {"fast": 3, "slow": 8, "quantity": 0.5}


def store(instrument, closes, *, first: int = 0) -> float:
    """Bars `first`, `first` + 1, … of CLOSES-like closes from START; the moment the last closed."""
    candles = candles_of(closes)
    shifted = type(candles)(
        candles.time + 60 * first, *(getattr(candles, n) for n in ("open", "high", "low", "close", "volume")), 60
    )
    candles_store(instrument, shifted)
    return float(START + 60 * (first + len(closes))) + 1


def create(owner_account, kind="ma_crossover", params=None, name="cross", **caps) -> Strategy:
    definition = StrategyDefinition(
        name=name,
        kind=kind,
        params=CROSSOVER if params is None else params,
        account_id=owner_account.pk,
        symbol="BTCUSDT",
        interval="1m",
        caps=caps,
    )
    return strategy_create(user=owner_account.owner, definition=definition, actor=owner_account.owner)


@pytest.fixture
def alice(funded_account):
    return funded_account("alice", USDT="100000", BTC="5")


@pytest.fixture
def runner():
    """A runner whose claims (file locks on SQLite) are let go at the end, pass or fail."""
    driving = StrategyRunner()
    yield driving
    driving.claims.release()


@pytest.fixture
def liquidity(market):
    """The simulator's market maker quoting BTCUSDT around 100 (one step, no noise traders)."""
    simulator = Simulator(symbols=["BTCUSDT"], seed=1)
    simulator.config = type(simulator.config)(**{**simulator.config.__dict__, "noise_orders_per_minute": 0.0})
    simulator.step()
    yield simulator
    simulator.claims.release()


def test_a_running_crossover_trades_through_the_engine_as_the_strategy_on_behalf_of_its_owner(
    market, alice, liquidity, runner
):
    warm = store(market.btcusdt, CLOSES[:12])
    strategy = strategy_start(strategy=create(alice), actor=alice.owner)

    runner.tick(now=warm)  # the first bars only warm the averages up
    assert not Order.objects.filter(strategy=strategy).exists()
    runner.tick(now=store(market.btcusdt, CLOSES[12:], first=12))
    runner.tick(now=warm + 300)  # the fill comes back

    (order,) = Order.objects.filter(strategy=strategy)
    assert order.side == "BUY" and order.type == "MARKET" and order.status == OrderStatus.FILLED
    assert order.client_order_id == f"st{strategy.pk}r1-b{START + 60 * 15}-1"  # bar 14's close
    assert order.account == alice and order.quantity == D("0.5")
    placed = AuditEvent.objects.get(action="order.place", target_id=str(order.pk))
    assert placed.actor_type == "strategy" and placed.actor_user_id == alice.owner_id
    assert placed.actor_label == f"strategy #{strategy.pk} cross of alice"
    strategy.refresh_from_db()
    assert strategy.position == D("0.5") and strategy.fees_paid > 0
    assert strategy.marks.count() == 4 and strategy.status == StrategyStatus.RUNNING


def test_stopping_a_strategy_cancels_its_open_orders_and_is_audited(market, alice, runner):
    grid = {"lower": 90, "upper": 99, "levels": 4, "quantity": 0.1}
    strategy = strategy_start(strategy=create(alice, "grid", grid, name="grid"), actor=alice.owner)
    runner.tick(now=store(market.btcusdt, [100, 100]))
    runner.tick(now=store(market.btcusdt, [100], first=2))
    assert Order.objects.filter(strategy=strategy, status__in=OPEN_STATUSES).count() == 4

    strategy_stop(strategy=strategy, actor=alice.owner)

    assert not Order.objects.filter(strategy=strategy, status__in=OPEN_STATUSES).exists()
    assert Order.objects.filter(strategy=strategy, status=OrderStatus.CANCELED).count() == 4
    stop = AuditEvent.objects.get(action="strategy.stop", target_id=str(strategy.pk))
    assert stop.after["canceled_orders"] == 4
    runner.tick(now=store(market.btcusdt, [100], first=3))
    assert Order.objects.filter(strategy=strategy).count() == 4  # a stopped strategy places nothing


def test_a_runner_restarted_after_a_steps_orders_were_placed_but_not_saved_never_places_them_twice(
    market, alice, liquidity
):
    warm = store(market.btcusdt, CLOSES[:12])
    strategy = strategy_start(strategy=create(alice), actor=alice.owner)
    StrategyRunner().tick(now=warm)
    saved = (
        Strategy.objects.filter(pk=strategy.pk)
        .values("state", "runner_state", "last_bar_at", "position", "average_price", "realized_pnl", "fees_paid")
        .get()
    )
    crossing = store(market.btcusdt, CLOSES[12:], first=12)
    StrategyRunner().tick(now=crossing)
    assert Order.objects.filter(strategy=strategy).count() == 1
    # The runner died before it saved those steps: the row is as it was before them.
    Strategy.objects.filter(pk=strategy.pk).update(**saved)

    restarted = StrategyRunner()
    restarted.tick(now=crossing)
    restarted.tick(now=crossing + 60)

    assert Order.objects.filter(strategy=strategy).count() == 1
    strategy.refresh_from_db()
    assert strategy.position == D("0.5")  # its fill counted once


class Faulty(StrategyCode):
    name = "faulty"
    title = "Faulty"
    summary = "Raises on its second bar (a test type)."
    params_schema = {"type": "object", "properties": {}, "additionalProperties": False}

    def on_bar(self, ctx, bar):
        self.state["bars"] = self.state.get("bars", 0) + 1
        if self.state["bars"] == 2:
            raise ZeroDivisionError("the strategy divided by zero")


def test_a_strategy_that_raises_is_stopped_with_its_traceback_and_the_others_keep_running(
    market, alice, liquidity, monkeypatch, runner
):
    monkeypatch.setitem(CATALOGUE, "faulty", Faulty)
    faulty = strategy_start(strategy=create(alice, "faulty", {}, name="faulty"), actor=alice.owner)
    crossover = strategy_start(strategy=create(alice), actor=alice.owner)
    runner.tick(now=store(market.btcusdt, CLOSES[:12]))

    runner.tick(now=store(market.btcusdt, CLOSES[12:], first=12))

    faulty.refresh_from_db()
    assert faulty.status == StrategyStatus.ERROR
    assert faulty.error.startswith("ZeroDivisionError: the strategy divided by zero")
    assert "Traceback" in faulty.error and "in on_bar" in faulty.error
    assert faulty.log_lines.filter(level=StrategyLogLine.Level.ERROR).exists()
    assert AuditEvent.objects.filter(action="strategy.fail", target_id=str(faulty.pk)).exists()
    assert Order.objects.filter(strategy=crossover).count() == 1
    assert Strategy.objects.get(pk=crossover.pk).status == StrategyStatus.RUNNING


def test_the_strategys_caps_refuse_its_orders_before_they_leave(market, alice, liquidity, runner):
    strategy = strategy_start(strategy=create(alice, max_order_qty=D("0.2")), actor=alice.owner)
    runner.tick(now=store(market.btcusdt, CLOSES[:12]))

    runner.tick(now=store(market.btcusdt, CLOSES[12:], first=12))

    assert not Order.objects.filter(strategy=strategy).exists()
    line = strategy.log_lines.get()
    assert line.level == "warning" and "refused: order quantity above the strategy's cap 0.2" in line.message


def test_an_order_the_venue_rejects_is_stored_rejected_and_logged(market, funded_account, liquidity, runner):
    poor = funded_account("carol", USDT="10")
    strategy = strategy_start(strategy=create(poor), actor=poor.owner)
    runner.tick(now=store(market.btcusdt, CLOSES[:12]))

    runner.tick(now=store(market.btcusdt, CLOSES[12:], first=12))

    (order,) = Order.objects.filter(strategy=strategy)
    assert order.status == OrderStatus.REJECTED and order.reject_reason == "INSUFFICIENT_BALANCE"
    assert "BUY 0.5 at market rejected: INSUFFICIENT_BALANCE" in strategy.log_lines.get().message


def test_a_strategy_does_not_start_on_a_halted_instrument_or_under_a_kill_switch(market, alice, make_user):
    strategy = create(alice)
    instrument_status_set(instrument=market.btcusdt, status=InstrumentStatus.HALT, reason="test", actor="ops")

    with pytest.raises(ConflictError) as halted:
        strategy_start(strategy=strategy, actor=alice.owner)
    assert halted.value.code == "INSTRUMENT_HALTED"

    instrument_status_set(instrument=market.btcusdt, status=InstrumentStatus.TRADING, reason="test", actor="ops")
    kill_switch_engage(account=alice, reason="test", actor="ops")
    with pytest.raises(ConflictError) as killed:
        strategy_start(strategy=strategy, actor=alice.owner)
    assert killed.value.code == "KILL_SWITCH"
    assert Strategy.objects.get(pk=strategy.pk).status == StrategyStatus.STOPPED


def test_the_kill_switch_stops_the_strategies_in_its_scope_and_cancels_their_orders(
    market, alice, funded_account, runner
):
    bob = funded_account("bob", USDT="100000")
    grid = {"lower": 90, "upper": 99, "levels": 4, "quantity": 0.1}
    alices = strategy_start(strategy=create(alice, "grid", grid, name="grid"), actor=alice.owner)
    bobs = strategy_start(strategy=create(bob, "grid", grid, name="grid"), actor=bob.owner)
    runner.tick(now=store(market.btcusdt, [100, 100]))
    runner.tick(now=store(market.btcusdt, [100], first=2))

    switch = kill_switch_engage(account=alice, reason="runaway", actor="ops")

    assert Strategy.objects.get(pk=alices.pk).status == StrategyStatus.STOPPED
    assert Strategy.objects.get(pk=bobs.pk).status == StrategyStatus.RUNNING
    assert not Order.objects.filter(strategy=alices, status__in=OPEN_STATUSES).exists()
    assert Order.objects.filter(strategy=bobs, status__in=OPEN_STATUSES).count() == 4
    engaged = AuditEvent.objects.get(action="kill_switch.engage", target_id=str(switch.pk))
    assert engaged.after["stopped_strategies"] == 1


def test_a_fill_that_came_while_the_strategy_was_stopped_counts_when_it_starts_again(
    market, alice, funded_account, place, runner
):
    grid = {"lower": 90, "upper": 99, "levels": 4, "quantity": 0.1}
    strategy = strategy_start(strategy=create(alice, "grid", grid, name="grid"), actor=alice.owner)
    runner.tick(now=store(market.btcusdt, [100, 100]))
    runner.tick(now=store(market.btcusdt, [100], first=2))
    seller = place(funded_account("bob", BTC="1"), "SELL", "MARKET", qty="0.1")  # into the grid's bid at 99
    strategy_stop(strategy=strategy, actor=alice.owner)  # before the runner saw the fill
    assert seller.status == OrderStatus.FILLED

    strategy_start(strategy=strategy, actor=alice.owner)
    runner.tick(now=store(market.btcusdt, [100], first=3))
    runner.tick(now=store(market.btcusdt, [100], first=4))

    strategy.refresh_from_db()
    assert strategy.position == D("0.1") and strategy.run == 2
    fresh = Order.objects.filter(strategy=strategy, status__in=OPEN_STATUSES)
    assert fresh.count() == 4 and all(order.client_order_id.startswith(f"st{strategy.pk}r2-") for order in fresh)


def test_a_strategy_started_again_only_warms_up_on_the_bars_of_its_pause(market, alice, liquidity, runner):
    strategy = strategy_start(strategy=create(alice), actor=alice.owner)
    runner.tick(now=store(market.btcusdt, CLOSES[:12]))
    strategy_stop(strategy=strategy, actor=alice.owner)
    crossing = store(market.btcusdt, CLOSES[12:], first=12)  # the cross comes while it is stopped

    strategy_start(strategy=strategy, actor=alice.owner)
    runner.tick(now=crossing)
    runner.tick(now=crossing + 60)

    assert not Order.objects.filter(strategy=strategy).exists()


def test_an_order_of_a_strategy_that_no_longer_runs_is_rejected(market, alice):
    strategy = create(alice)  # never started

    with pytest.raises(OrderRejected) as refused:
        order_place(
            account=alice,
            instrument=market.btcusdt,
            request=OrderRequest(side="BUY", type="LIMIT", quantity=D("1"), price=D("90"), time_in_force="GTC"),
            actor="test",
            strategy_id=strategy.pk,
        )

    assert refused.value.code == "STRATEGY_STOPPED"
    assert not Order.objects.filter(strategy=strategy, status__in=OPEN_STATUSES).exists()


def test_a_twap_with_limit_slices_waits_for_them_instead_of_canceling_them(market, alice, runner):
    twap = {"side": "BUY", "quantity": 0.2, "duration_minutes": 1, "slices": 2, "limit_price": 95}
    strategy = strategy_start(strategy=create(alice, "twap", twap, name="twap"), actor=alice.owner)
    now = store(market.btcusdt, [100])

    for second in range(0, 62, 2):
        runner.tick(now=now + second)

    assert Order.objects.filter(strategy=strategy, status__in=OPEN_STATUSES).count() == 2
    assert Strategy.objects.get(pk=strategy.pk).status == StrategyStatus.RUNNING
