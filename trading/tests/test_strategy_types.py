"""Each built-in strategy type on hand-made candles whose signals are known, its indicators
against TA-Lib's on the same closes, and its parameters checked against its schema."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
import talib

from trading.strategies.backtest import backtest_run
from trading.strategies.base import Caps, StrategyError, params_validate
from trading.strategies.builtin import CATALOGUE, MovingAverageCrossover, RsiMeanReversion
from trading.tests.bars import RULES, candles_of, random_walk

D = Decimal


def run(name: str, params: dict, candles, *, quote: str = "100000", caps: Caps | None = None):
    kind = CATALOGUE[name]
    strategy = kind(params_validate(kind, params))
    outcome = backtest_run(strategy, candles, rules=RULES, caps=caps or Caps(), starting_quote=D(quote))
    return strategy, outcome


def bar_of(fill, candles) -> int:
    """The index of the bar a fill happened in."""
    return int(np.searchsorted(candles.time, fill.time))


def cross_signals(fast: np.ndarray, slow: np.ndarray) -> list[tuple[int, str]]:
    """(bar, BUY / SELL) where fast crosses above / below slow, from the first bar both exist."""
    defined = ~np.isnan(slow)
    above = fast > slow
    signals, was = [], None
    for index in np.nonzero(defined)[0]:
        if was is not None and above[index] != was:
            signals.append((int(index), "BUY" if above[index] else "SELL"))
        was = bool(above[index])
    return signals


def long_only(signals: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The signals a long-only strategy acts on: a buy when flat, a sell when long."""
    acted, long = [], False
    for index, side in signals:
        if (side == "BUY") != long:
            acted.append((index, side))
            long = side == "BUY"
    return acted


# -- moving-average crossover -------------------------------------------------------------------


def test_a_crossover_buys_at_the_bar_after_the_fast_average_crosses_above_and_sells_after_it_crosses_below():
    # fast 2 / slow 3: both are first defined at bar 2 (fast 10.5 < slow 10.67: below); bar 3
    # closes at 12: fast 11.5 > slow 11, up; bar 6 closes at 11: fast 11.5 < slow 12, down.
    closes = [11, 10, 11, 12, 13, 12, 11, 9, 9, 9]
    candles = candles_of(closes)

    _, outcome = run("ma_crossover", {"fast": 2, "slow": 3, "quantity": 1}, candles)

    assert [(bar_of(fill, candles), fill.side) for fill in outcome.fills] == [(4, "BUY"), (7, "SELL")]
    buy, sell = outcome.fills
    assert buy.price == D("12") and sell.price == D("11")  # the next bars' opens: the closes of bars 3 and 6
    assert buy.quantity == sell.quantity == D("1")


@pytest.mark.parametrize(("average", "talib_average"), [("sma", talib.SMA), ("ema", talib.EMA)])
def test_a_crossover_acts_on_exactly_the_crosses_of_talibs_averages(average, talib_average):
    candles = random_walk(3000, seed=11)

    _, outcome = run("ma_crossover", {"fast": 7, "slow": 25, "average": average, "quantity": 0.5}, candles)

    expected = long_only(cross_signals(talib_average(candles.close, 7), talib_average(candles.close, 25)))
    acted = [(bar_of(fill, candles) - 1, fill.side) for fill in outcome.fills]
    assert len(acted) > 40
    assert acted == expected[: len(acted)] and len(expected) - len(acted) <= 1  # a last signal on the last bar


def test_a_crossover_refuses_a_fast_average_not_shorter_than_the_slow_one():
    with pytest.raises(StrategyError) as refused:
        params_validate(MovingAverageCrossover, {"fast": 30, "slow": 30, "quantity": 1})

    assert refused.value.errors == {"params.fast": ["Must be less than slow."]}


# -- RSI mean reversion -------------------------------------------------------------------------


def test_the_rsi_is_talibs_bar_for_bar():
    candles = random_walk(600, seed=5)
    strategy = RsiMeanReversion(params_validate(RsiMeanReversion, {"period": 14, "quantity": 1}))
    values = [strategy._update(close) for close in candles.close.tolist()]

    expected = talib.RSI(candles.close, 14)
    assert values[:14] == [None] * 14
    assert np.allclose(np.array(values[14:], dtype=float), expected[14:], rtol=0, atol=1e-9)


def test_rsi_reversion_buys_when_oversold_and_sells_when_overbought():
    # period 2: five falls take the RSI to 0 (buy at the next open), five rises to 100 (sell).
    closes = [100, 101, 100, 99, 98, 97, 96, 97, 98, 99, 100, 101, 101]
    candles = candles_of(closes)

    _, outcome = run("rsi_reversion", {"period": 2, "quantity": 2}, candles)

    assert [(bar_of(fill, candles), fill.side, fill.price) for fill in outcome.fills] == [
        (4, "BUY", D("99")),  # bar 3: RSI(2) of 101, 100, 99 is 0
        (9, "SELL", D("98")),  # bar 8: two rises after the falls take it above 70
    ]


def test_rsi_reversion_refuses_oversold_above_overbought():
    with pytest.raises(StrategyError) as refused:
        params_validate(RsiMeanReversion, {"oversold": 80, "overbought": 70, "quantity": 1})

    assert "params.oversold" in refused.value.errors


# -- grid -----------------------------------------------------------------------------------


def test_a_grid_buys_below_the_price_and_answers_each_fill_one_level_away():
    # Levels 90, 95, 100, 105, 110. Bar 0 closes at 102: buys rest at 90, 95 and 100.
    # Bar 1 trades down to 99.5: the buy at 100 fills, a sell rests at 105.
    # Bar 2 trades up to 105.5: the sell fills, a buy rests at 100 again.
    # Bar 3 touches 100.00 only (a touch is not a fill); bar 4 trades through it.
    candles = candles_of(
        [102, 101, 105, 101, 100.5],
        opens=[102, 102, 101, 104, 101],
        highs=[102, 102, 105.5, 104, 101],
        lows=[102, 99.5, 101, 100, 99.9],
    )

    strategy, outcome = run("grid", {"lower": 90, "upper": 110, "levels": 5, "quantity": 0.1}, candles)

    assert [(bar_of(fill, candles), fill.side, fill.price) for fill in outcome.fills] == [
        (1, "BUY", D("100")),
        (2, "SELL", D("105")),
        (4, "BUY", D("100")),
    ]
    maker = RULES.maker_fee_rate
    assert [fill.fee for fill in outcome.fills] == [D("10") * maker, D("10.5") * maker, D("10") * maker]
    assert sorted((order.side, order.price) for order in strategy_orders(strategy, outcome, candles)) == [
        ("BUY", D("90")),
        ("BUY", D("95")),
        ("SELL", D("105")),
    ]


def strategy_orders(strategy, outcome, candles):
    """The orders still working at the end, from the grid's own bookkeeping and the venue."""
    level_of = strategy.state["level_of"]
    return [order for order in outcome.open_orders if order.ref in level_of]


# -- TWAP -----------------------------------------------------------------------------------


def test_twap_sends_equal_slices_at_even_times_and_finishes():
    candles = candles_of([100 + index for index in range(12)])

    strategy, outcome = run("twap", {"side": "BUY", "quantity": 1, "duration_minutes": 10, "slices": 4}, candles)

    # Slices due at 0, 150, 300 and 450 s after the start: sent at the closes of bars 0, 2, 4 and 7.
    assert [bar_of(fill, candles) for fill in outcome.fills] == [1, 3, 5, 8]
    assert [fill.quantity for fill in outcome.fills] == [D("0.25")] * 4
    assert sum(fill.quantity for fill in outcome.fills) == D("1")
    assert strategy.state["sent"] == 4 and outcome.open_orders == []


def test_twap_with_a_limit_price_never_pays_more():
    candles = candles_of([100, 101, 102, 103, 99, 98], lows=[100, 101, 101.5, 102, 99, 98])

    _, outcome = run(
        "twap", {"side": "BUY", "quantity": 2, "duration_minutes": 4, "slices": 2, "limit_price": 100.5}, candles
    )

    # The first slice (sent at bar 0's close) fills at bar 1's open, 100, below its limit; the second
    # (bar 1's close) waits for bar 4, the first to trade below 100.5, and fills at its limit.
    assert [(bar_of(fill, candles), fill.price, fill.quantity) for fill in outcome.fills] == [
        (1, D("100"), D("1")),
        (4, D("100.5"), D("1")),
    ]


# -- market maker ---------------------------------------------------------------------------


def test_the_market_maker_bids_first_then_asks_what_it_bought_and_keeps_to_its_inventory():
    candles = candles_of(
        [100, 100, 100, 100], opens=[100, 100, 100, 100], highs=[100, 100, 100.5, 100], lows=[100, 99.5, 100, 100]
    )
    params = {"levels": 2, "step_bps": 10, "quote_notional": 100, "requote_bps": 5, "max_inventory": 1.5}

    _, outcome = run("market_maker", params, candles)

    # Bar 0: bids at 99.90 (100 / 99.9 = 1.001) and 99.80 (125 / 99.8 = 1.252, capped to the 0.499 room).
    # Bar 1 trades down to 99.5: both fill (1.500 held). Bar 2: asks at 100.10 and 100.20, both filled.
    assert [(bar_of(fill, candles), fill.side, fill.price, fill.quantity) for fill in outcome.fills] == [
        (1, "BUY", D("99.9"), D("1.001")),
        (1, "BUY", D("99.8"), D("0.499")),
        (2, "SELL", D("100.1"), D("0.999")),
        (2, "SELL", D("100.2"), D("0.501")),
    ]


# -- the catalogue ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_every_type_is_documented_and_its_schema_is_complete(name):
    kind = CATALOGUE[name]
    assert kind.title and len(kind.summary) > 60
    schema = kind.params_schema
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["required"]) <= set(schema["properties"])


def test_an_unknown_parameter_is_refused_with_its_name():
    with pytest.raises(StrategyError) as refused:
        params_validate(MovingAverageCrossover, {"quantity": 1, "speed": 3})

    assert refused.value.code == "bad_params" and "speed" in refused.value.message


def test_a_parameter_of_the_wrong_kind_is_refused_with_the_field_named():
    with pytest.raises(StrategyError) as refused:
        params_validate(MovingAverageCrossover, {"quantity": 1, "fast": "ten"})

    assert list(refused.value.errors) == ["params.fast"]


def test_a_missing_parameter_is_named():
    with pytest.raises(StrategyError) as refused:
        params_validate(MovingAverageCrossover, {})

    assert list(refused.value.errors) == ["params.quantity"]


def test_defaults_fill_what_is_left_out():
    assert params_validate(MovingAverageCrossover, {"quantity": 1}) == {
        "fast": 10,
        "slow": 30,
        "average": "sma",
        "quantity": 1,
    }


def test_twap_slices_rounded_to_the_lot_add_up_to_the_quantity():
    candles = candles_of([100 + index for index in range(6)])

    _, outcome = run("twap", {"side": "BUY", "quantity": 1, "duration_minutes": 3, "slices": 3}, candles)

    assert [fill.quantity for fill in outcome.fills] == [D("0.333"), D("0.333"), D("0.334")]


def test_the_market_maker_refuses_levels_that_would_bid_at_or_below_zero():
    with pytest.raises(StrategyError) as refused:
        params_validate(
            CATALOGUE["market_maker"], {"levels": 10, "step_bps": 1000, "quote_notional": 1, "max_inventory": 1}
        )

    assert list(refused.value.errors) == ["params.step_bps"]
