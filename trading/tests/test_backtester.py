"""The backtester's venue: when and at what price an order fills, fees, spot balances, the
strategy's caps, no look-ahead, and the same result for the same inputs."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from trading.strategies.backtest import backtest_run
from trading.strategies.base import Bar, Caps, Strategy, StrategyContext, params_validate
from trading.strategies.builtin import CATALOGUE
from trading.tests.bars import RULES, candles_of, random_walk

D = Decimal


class Script(Strategy):
    """Places the orders it is given at the close of the given bars: {bar index: [(side, qty, price)]}."""

    name = "script"
    title = "Script"
    summary = "Test strategy."
    params_schema = {"type": "object"}

    def __init__(self, plan, candles):
        super().__init__({})
        self.plan = plan
        self.index_of = {int(time): index for index, time in enumerate(candles.time)}
        self.seen: list[tuple[int, int]] = []

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        self.seen.append((bar.time, ctx.now))
        for side, quantity, price in self.plan.get(self.index_of[bar.time], []):
            ctx.order(side, D(quantity), None if price is None else D(price))


def run_script(plan, candles, *, quote="10000", slippage="0", caps=None):
    strategy = Script(plan, candles)
    outcome = backtest_run(
        strategy, candles, rules=RULES, caps=caps or Caps(), starting_quote=D(quote), slippage_bps=D(slippage)
    )
    return strategy, outcome


def test_a_market_buy_fills_at_the_next_open_with_its_slippage_rounded_against_it_and_pays_the_taker_fee():
    candles = candles_of([100, 101, 102], opens=[100, 100.37, 101])

    _, outcome = run_script({0: [("BUY", "2", None)]}, candles, slippage="10")

    (fill,) = outcome.fills
    assert fill.time == candles.time[1]
    assert fill.price == D("100.48")  # 100.37 × 1.001 = 100.470…, rounded up to the tick
    assert fill.fee == (D("100.48") * 2 * RULES.taker_fee_rate).quantize(D("0.00000001"))


def test_a_market_sell_slips_down():
    candles = candles_of([100, 101, 102, 103])

    _, outcome = run_script({0: [("BUY", "1", None)], 1: [("SELL", "1", None)]}, candles, slippage="25")

    buy, sell = outcome.fills
    assert buy.price == D("100.25") and sell.price == D("100.74")  # 101 × 0.9975 = 100.7475, rounded down


def test_a_limit_buy_fills_at_its_price_only_when_the_low_trades_below_it():
    candles = candles_of(
        [101, 101, 101, 101], opens=[101, 101, 101, 101], highs=[101, 101, 101, 101], lows=[101, 100, 99.99, 99]
    )

    _, outcome = run_script({0: [("BUY", "1", "100")]}, candles)

    (fill,) = outcome.fills  # bar 1 touches 100: no fill; bar 2 trades through
    assert fill.time == candles.time[2] and fill.price == D("100")
    assert fill.fee == D("100") * RULES.maker_fee_rate


def test_a_limit_order_the_open_crosses_fills_at_the_open_as_a_taker():
    candles = candles_of([101, 99, 99], opens=[101, 98.5, 99])

    _, outcome = run_script({0: [("BUY", "1", "100")]}, candles)

    (fill,) = outcome.fills
    assert fill.price == D("98.5") and fill.fee == D("98.5") * RULES.taker_fee_rate


def test_a_limit_sell_fills_when_the_high_trades_above_it():
    candles = candles_of([100, 100, 100, 100], highs=[100, 100, 105, 106], opens=[100, 100, 100, 100])

    _, outcome = run_script({0: [("BUY", "1", None)], 1: [("SELL", "1", "105")]}, candles)

    assert [(fill.side, fill.price) for fill in outcome.fills] == [("BUY", D("100")), ("SELL", D("105"))]
    assert outcome.fills[1].time == candles.time[3]


def test_a_sell_of_what_the_strategy_does_not_hold_is_refused():
    candles = candles_of([100, 100, 100])

    _, outcome = run_script({0: [("SELL", "1", None)]}, candles)

    assert outcome.fills == []
    assert "SELL 1 refused: the strategy holds 0" in outcome.log[0]


def test_a_buy_beyond_the_cash_expires_at_its_fill():
    candles = candles_of([100, 100, 100])

    _, outcome = run_script({0: [("BUY", "1", None)]}, candles, quote="100.1")

    assert outcome.fills == [] and outcome.open_orders == []
    assert "BUY 1 expired: 100.2 needed at 100, 100.1 held" in outcome.log[0]


def test_cash_and_equity_follow_the_fills():
    candles = candles_of([100, 100, 110, 120])

    _, outcome = run_script({0: [("BUY", "1", None)], 2: [("SELL", "1", None)]}, candles, quote="1000")

    buy, sell = outcome.fills
    cash_after_buy = 1000 - 100 - float(buy.fee)
    assert outcome.equity.tolist() == pytest.approx(
        [1000, cash_after_buy + 100, cash_after_buy + 110, cash_after_buy + 110 - float(sell.fee)]
    )
    assert outcome.exposed.tolist() == [False, True, True, False]


@pytest.mark.parametrize(
    ("caps", "plan", "refusal"),
    [
        (Caps(max_order_qty=D("1")), {0: [("BUY", "1.5", None)]}, "order quantity above the strategy's cap 1"),
        (Caps(max_position=D("2")), {0: [("BUY", "1.5", None), ("BUY", "1", None)]}, "position would exceed"),
        (Caps(max_position=D("2")), {0: [("BUY", "2", None)], 1: [("BUY", "0.5", None)]}, "position would exceed"),
    ],
)
def test_the_strategys_caps_refuse_orders_before_they_leave(caps, plan, refusal):
    candles = candles_of([100, 100, 100, 100])

    _, outcome = run_script(plan, candles, caps=caps)

    assert any(refusal in line for line in outcome.log)
    assert sum(fill.quantity for fill in outcome.fills) <= (caps.max_order_qty or caps.max_position)


def test_the_daily_loss_cap_stops_new_exposure_for_the_rest_of_the_day_and_lets_it_be_reduced():
    # Bought at 100, the price falls to 80: 20 lost (with fees), above the cap of 15.
    candles = candles_of([100, 100, 80, 80, 80, 80])
    caps = Caps(max_daily_loss=D("15"))

    _, outcome = run_script(
        {0: [("BUY", "1", None)], 2: [("BUY", "1", None)], 3: [("SELL", "1", None)]}, candles, caps=caps
    )

    assert [fill.side for fill in outcome.fills] == ["BUY", "SELL"]
    assert any("today's loss reached the strategy's cap 15" in line for line in outcome.log)


def test_a_strategy_only_ever_sees_bars_that_have_closed():
    candles = random_walk(200, seed=3)

    strategy, _ = run_script({}, candles)

    assert all(now == opened + 60 for opened, now in strategy.seen)
    assert [opened for opened, _ in strategy.seen] == candles.time.tolist()


def test_changing_the_future_never_changes_what_happened_before_it():
    """No look-ahead: with every bar from 600 on replaced by another path, the fills before
    bar 600 are the same to the last digit."""
    candles = random_walk(1200, seed=21)
    other = random_walk(1200, seed=99, start=float(candles.close[599]))
    spliced = type(candles)(
        candles.time,
        *(
            np.concatenate((getattr(candles, name)[:600], getattr(other, name)[600:]))
            for name in ("open", "high", "low", "close", "volume")
        ),
        candles.interval_seconds,
    )
    kind = CATALOGUE["ma_crossover"]
    params = params_validate(kind, {"fast": 5, "slow": 20, "quantity": 1})

    def fills_of(series):
        outcome = backtest_run(kind(params), series, rules=RULES, caps=Caps(), starting_quote=D("100000"))
        return outcome

    whole, changed = fills_of(candles), fills_of(spliced)
    cut = candles.time[600]
    before = [fill for fill in whole.fills if fill.time < cut]
    assert len(before) > 10
    assert [fill for fill in changed.fills if fill.time < cut] == before
    assert whole.equity[:600].tolist() == changed.equity[:600].tolist()
    assert [fill for fill in whole.fills if fill.time > cut] != [fill for fill in changed.fills if fill.time > cut]


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("ma_crossover", {"fast": 5, "slow": 20, "average": "ema", "quantity": 1}),
        ("grid", {"lower": 90, "upper": 110, "levels": 9, "quantity": 1}),
        ("market_maker", {"quote_notional": 200, "max_inventory": 5}),
    ],
)
def test_the_same_inputs_give_the_same_result(name, params):
    candles = random_walk(2000, seed=8)
    kind = CATALOGUE[name]

    first, second = (
        backtest_run(kind(params_validate(kind, params)), candles, rules=RULES, caps=Caps(), starting_quote=D("50000"))
        for _ in range(2)
    )

    assert first.fills and first.fills == second.fills
    assert first.equity.tobytes() == second.equity.tobytes()


def test_sells_already_working_count_against_what_the_strategy_holds_and_its_position_cap():
    candles = candles_of([100, 100, 100, 100], highs=[100, 100, 100, 100])

    _, outcome = run_script(
        {0: [("BUY", "1", None)], 1: [("SELL", "1", "120"), ("SELL", "1", "121")]},
        candles,
        caps=Caps(max_position=D("1")),
    )

    assert [(order.side, order.price) for order in outcome.open_orders] == [("SELL", D("120"))]
    assert "SELL 1 refused: the strategy holds 1, its other sells claim 1" in outcome.log[0]
