"""A backtest's metrics against empyrical's on the same returns, the drawdown's duration and the
trade statistics on hand-made series, and a strategy's holding arithmetic."""

from __future__ import annotations

from decimal import Decimal

import empyrical
import numpy as np
import pytest

from trading.strategies.backtest import backtest_run
from trading.strategies.base import Caps, Fill, Holding, params_validate
from trading.strategies.builtin import CATALOGUE
from trading.strategies.metrics import backtest_metrics, max_drawdown, periods_per_year, returns_of
from trading.tests.bars import RULES, random_walk

D = Decimal


def metrics_of(equity, *, initial=1000.0, interval=3600, closed=(), exposed=None):
    equity = np.asarray(equity, dtype=float)
    return backtest_metrics(
        equity=equity,
        exposed=np.ones(len(equity), dtype=bool) if exposed is None else np.asarray(exposed),
        initial=initial,
        interval_seconds=interval,
        closed_pnls=[D(str(value)) for value in closed],
        fills=2 * len(closed),
    )


@pytest.fixture(scope="module")
def crossover_backtest():
    """A crossover over 5,000 hourly bars: its equity, its fills."""
    candles = random_walk(5000, seed=42)
    candles = type(candles)(
        *[getattr(candles, name) for name in ("time", "open", "high", "low", "close", "volume")], 3600
    )
    kind = CATALOGUE["ma_crossover"]
    strategy = kind(params_validate(kind, {"fast": 12, "slow": 48, "quantity": 50}))
    return backtest_run(strategy, candles, rules=RULES, caps=Caps(), starting_quote=D("10000"))


def test_the_metrics_agree_with_empyrical_on_the_backtests_returns(crossover_backtest):
    outcome = crossover_backtest
    holding = Holding()
    for fill in outcome.fills:
        holding.apply(fill)
    figures = backtest_metrics(
        equity=outcome.equity,
        exposed=outcome.exposed,
        initial=10000.0,
        interval_seconds=3600,
        closed_pnls=holding.closed,
        fills=len(outcome.fills),
    )
    returns = returns_of(outcome.equity, 10000.0)
    year = {"annualization": periods_per_year(3600)}

    assert len(outcome.fills) > 50
    assert figures["sharpe"] == pytest.approx(empyrical.sharpe_ratio(returns, **year), rel=1e-9)
    assert figures["sortino"] == pytest.approx(empyrical.sortino_ratio(returns, **year), rel=1e-9)
    assert figures["volatility"] == pytest.approx(empyrical.annual_volatility(returns, **year), rel=1e-9)
    assert figures["annualized_return"] == pytest.approx(empyrical.annual_return(returns, **year), rel=1e-9)
    assert figures["total_return"] == pytest.approx(empyrical.cum_returns_final(returns), rel=1e-9)
    assert figures["max_drawdown"] == pytest.approx(-empyrical.max_drawdown(returns), rel=1e-9)
    assert figures["exposure"] == pytest.approx(outcome.exposed.mean())
    assert figures["trades"] == len(outcome.fills) and figures["closing_trades"] == len(outcome.fills) // 2


def test_a_drawdown_lasts_from_its_peak_to_the_bar_that_regains_it():
    # Hourly: the peak 1200 at bar 1, the trough 900 at bar 3 (−25 %), 1200 regained at bar 6.
    drawdown, peak, recovered = max_drawdown(np.array([1100, 1200, 1000, 900, 1000, 1100, 1200, 1300.0]), 1000.0)

    assert (drawdown, peak, recovered) == (pytest.approx(0.25), 1, 6)
    figures = metrics_of([1100, 1200, 1000, 900, 1000, 1100, 1200, 1300])
    assert figures["max_drawdown_days"] == pytest.approx(5 / 24) and figures["max_drawdown_recovered"] is True


def test_a_drawdown_not_regained_lasts_to_the_end_and_counts_from_the_starting_equity():
    figures = metrics_of([990, 950, 980])

    assert figures["max_drawdown"] == pytest.approx(0.05)
    assert figures["max_drawdown_days"] == pytest.approx(3 / 24) and figures["max_drawdown_recovered"] is False


def test_no_drawdown_when_equity_never_falls():
    figures = metrics_of([1000, 1010, 1020])

    assert figures["max_drawdown"] == 0.0 and figures["max_drawdown_days"] == 0.0


def test_win_rate_and_profit_factor_count_the_closing_fills():
    figures = metrics_of([1000, 1010], closed=[30, -10, 20, -5, 0])

    assert figures["win_rate"] == pytest.approx(2 / 5)
    assert figures["profit_factor"] == pytest.approx(50 / 15)


def test_without_losses_there_is_no_profit_factor_and_without_trades_no_win_rate():
    assert metrics_of([1000, 1010], closed=[5])["profit_factor"] is None
    assert metrics_of([1000, 1010])["win_rate"] is None


def test_annualized_return_compounds_over_the_years_the_bars_span():
    # 2 × 365 daily bars, equity doubled: 41.42 % a year.
    equity = np.linspace(1000, 2000, 730)

    figures = metrics_of(equity, interval=86_400)

    assert figures["annualized_return"] == pytest.approx(2**0.5 - 1)
    assert figures["total_return"] == pytest.approx(1.0)


def fill(side, quantity, price, fee="0"):
    return Fill("ref", side, D(price), D(quantity), D(fee), 0)


def test_a_holding_averages_its_buys_and_realizes_against_the_average_after_fees():
    holding = Holding()
    holding.apply(fill("BUY", "1", "100", fee="0.2"))
    holding.apply(fill("BUY", "3", "120", fee="0.6"))

    assert holding.position == D("4") and holding.average_price == D("115")
    realized = holding.apply(fill("SELL", "2", "130", fee="0.5"))

    assert realized == D("29.5")  # (130 − 115) × 2 − 0.5
    assert holding.realized_pnl == D("29.5") - D("0.8")  # the buys' fees count too
    assert holding.quote == D("-100.2") - D("360.6") + D("259.5")
    assert holding.closed == [D("29.5")]


def test_a_holding_sold_through_zero_starts_again_at_the_fill_price():
    holding = Holding()
    holding.apply(fill("BUY", "1", "100"))
    realized = holding.apply(fill("SELL", "3", "110"))

    assert realized == D("10")
    assert holding.position == D("-2") and holding.average_price == D("110")
    assert holding.unrealized(D("100")) == D("20")
