"""A backtest's performance figures, from its equity at each bar's close and its fills.

Computed with NumPy here and checked in the tests against empyrical (empyrical-reloaded) on the
same returns. Conventions, the same as empyrical's:

- returns are simple returns of equity from one bar's close to the next;
- a year is 365 days (the venue trades every day, around the clock), so a series of
  `interval_seconds` bars has 365 × 86,400 / interval_seconds periods a year;
- annualized return is compounded: (final / initial) ^ (periods a year / bars) − 1;
- volatility is the standard deviation of returns (ddof 1) × √(periods a year);
- Sharpe is mean / standard deviation (ddof 1) × √(periods a year), with no risk-free rate;
- Sortino is mean / downside deviation × √(periods a year), the downside deviation being
  √(mean of min(return, 0)²) over all returns;
- max drawdown is the largest fall from a running peak of equity, as a fraction of the peak;
  its duration runs from that peak to the bar equity first regains it (or to the end).

Trades: a "closing fill" is a fill that reduces the position; its P&L is realized against the
average price, after its fee (the fees of the fills that opened the position count against
them). Win rate is the share of closing fills with a positive P&L; profit factor the sum of the
gains over the sum of the losses (None when there is no loss).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np

SECONDS_PER_YEAR = 365 * 86_400


def periods_per_year(interval_seconds: int) -> float:
    return SECONDS_PER_YEAR / interval_seconds


def returns_of(equity: np.ndarray, initial: float) -> np.ndarray:
    """Simple returns bar by bar, the first against the starting equity."""
    previous = np.concatenate(([initial], equity[:-1]))
    return equity / previous - 1.0


def max_drawdown(equity: np.ndarray, initial: float) -> tuple[float, int, int]:
    """(the largest fall from a peak as a fraction of it, the index of that peak (−1: the
    starting equity), the index where equity regained the peak or −1 if it never did)."""
    series = np.concatenate(([initial], equity))
    peaks = np.maximum.accumulate(series)
    drawdowns = series / peaks - 1.0
    trough = int(np.argmin(drawdowns))
    deepest = float(drawdowns[trough])
    if deepest >= 0:
        return 0.0, -1, -1
    peak = int(np.argmax(series[: trough + 1]))
    recovered = np.nonzero(series[trough:] >= series[peak])[0]
    recovery = int(trough + recovered[0]) - 1 if len(recovered) else -1
    return -deepest, peak - 1, recovery


def backtest_metrics(
    *,
    equity: np.ndarray,
    exposed: np.ndarray,
    initial: float,
    interval_seconds: int,
    closed_pnls: Sequence[Decimal],
    fills: int,
) -> dict[str, Any]:
    """Every figure of a backtest's result page, JSON-ready (floats, None where undefined)."""
    bars = len(equity)
    if bars == 0:
        raise ValueError("no bars")
    per_year = periods_per_year(interval_seconds)
    returns = returns_of(equity, initial)
    final = float(equity[-1])
    total = final / initial - 1.0
    years = bars / per_year
    annual = (final / initial) ** (1.0 / years) - 1.0 if final > 0 else -1.0
    deviation = float(np.std(returns, ddof=1)) if bars > 1 else 0.0
    mean = float(np.mean(returns))
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    drawdown, peak, recovery = max_drawdown(equity, initial)
    end = recovery if recovery >= 0 else bars - 1
    gains = [float(pnl) for pnl in closed_pnls if pnl > 0]
    losses = [-float(pnl) for pnl in closed_pnls if pnl < 0]
    return {
        "bars": bars,
        "initial_equity": initial,
        "final_equity": final,
        "total_return": total,
        "annualized_return": annual,
        "volatility": deviation * math.sqrt(per_year),
        "sharpe": mean / deviation * math.sqrt(per_year) if deviation > 0 else None,
        "sortino": mean / downside * math.sqrt(per_year) if downside > 0 else None,
        "max_drawdown": drawdown,
        "max_drawdown_days": (end - peak) * interval_seconds / 86_400 if drawdown > 0 else 0.0,
        "max_drawdown_recovered": recovery >= 0 if drawdown > 0 else True,
        "win_rate": len(gains) / len(closed_pnls) if closed_pnls else None,
        "profit_factor": sum(gains) / sum(losses) if losses else None,
        "exposure": float(np.mean(exposed)),
        "trades": fills,
        "closing_trades": len(closed_pnls),
    }
