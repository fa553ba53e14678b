"""The backtester: a strategy run over stored candles against a simulated venue (ADR 0008).

Event-driven, bar by bar, with the strategy's own code and context (trading.strategies.base):

1. The orders working when bar i opens are matched against bar i. A market order fills at the
   bar's open, `slippage_bps` worse. A limit order whose price the open already crosses fills at
   the open (taker). Otherwise it fills at its own price when the bar trades through it (a buy
   when the low is below its price, a sell when the high is above it: a touch is not a fill),
   as a maker. Fees are the instrument's, in the quote asset. An order fills whole or not at all.
   The strategy hears of each fill (`on_fill`) at the bar's open time; orders it places then
   work from the next bar.
2. The strategy sees bar i (`on_bar`) when it has closed: `ctx.now` is its close time. Its
   orders work from bar i + 1, so nothing it does can use a price it has not seen yet.
3. Its timer, if it has one, fires at the bar's close once it is due (a bar is the clock's
   resolution here).
4. Equity (quote + position × close) is marked at the close.

It is spot: a buy needs the quote at its fill (it expires otherwise), a sell needs the base the
strategy's fills bought and its other sells do not claim. The same inputs give the same fills,
to the last digit: nothing is random and money is Decimal; only the equity curve is float.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from trading.choices import Side
from trading.strategies.base import ZERO, Bar, Caps, Fill, Rules, Strategy, StrategyContext, WorkingOrder

#: Bars between two progress reports.
PROGRESS_BARS = 1 << 15
#: Relative margin of the float pre-test of a limit order against a bar.
_MARGIN = 1e-9


@dataclass(frozen=True)
class Candles:
    """Bars as columns: open times (seconds since the epoch) and prices, oldest first."""

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    interval_seconds: int

    def __len__(self) -> int:
        return len(self.time)


@dataclass
class BacktestOutcome:
    fills: list[Fill]
    #: Equity at each bar's close, in the quote asset.
    equity: np.ndarray
    #: Whether the strategy held a position at each bar's close.
    exposed: np.ndarray
    #: Lines the strategy's context logged (refusals, orders that expired).
    log: list[str] = field(default_factory=list)
    #: The orders still working after the last bar.
    open_orders: list[WorkingOrder] = field(default_factory=list)
    bars: int = 0


class SimulatedVenue(StrategyContext):
    """The backtest's side of the context: a spot account in the quote asset and a book that
    fills the strategy's orders against bars."""

    def __init__(self, *, rules: Rules, caps: Caps, starting_quote: Decimal, slippage_bps: Decimal):
        super().__init__(rules=rules, caps=caps, prefix="bt-")
        self.cash = starting_quote
        self.slippage = slippage_bps / 10_000
        self.fills: list[Fill] = []
        self.lines: list[str] = []
        self.cash_float = float(starting_quote)
        self.position_float = 0.0

    def log(self, message: str) -> None:
        self.lines.append(f"{self.now}: {message}")

    def _submit(self, order: WorkingOrder) -> bool:
        """It rests in `orders` until a bar fills it."""
        return True

    def _cancel(self, order: WorkingOrder) -> None:
        """Nothing rests anywhere else: leaving `orders` is the cancel."""

    def match(self, bar: Bar) -> list[Fill]:
        """Fill the orders that were working when `bar` opened; the fills, in order placed."""
        fills = []
        for order in list(self.orders.values()):
            if order.price is not None and _out_of_reach(order, bar):
                continue
            price, maker = self._fill_price(order, bar)
            if price is None:
                continue
            fill = self._fill(order, price, maker, bar.time)
            if fill is not None:
                fills.append(fill)
        return fills

    def _fill_price(self, order: WorkingOrder, bar: Bar) -> tuple[Decimal | None, bool]:
        buy = order.side == Side.BUY
        limit = order.price
        opened = Decimal(repr(bar.open))
        if limit is None:
            slipped = opened * (1 + self.slippage) if buy else opened * (1 - self.slippage)
            return self.rules.price(slipped, Side.SELL if buy else Side.BUY), False  # rounded against the order
        if (opened <= limit) if buy else (opened >= limit):
            return opened, False
        through = bar.low < limit if buy else bar.high > limit
        return (limit, True) if through else (None, False)

    def _fill(self, order: WorkingOrder, price: Decimal, maker: bool, time: int) -> Fill | None:
        quantity = order.remaining
        notional = price * quantity
        fee = self.rules.fee(notional, maker=maker)
        if order.side == Side.BUY and notional + fee > self.cash:
            del self.orders[order.ref]
            needed, held, at = (_plain(value) for value in (notional + fee, self.cash, price))
            self.log(f"BUY {_plain(quantity)} expired: {needed} needed at {at}, {held} held")
            return None
        fill = Fill(order.ref, order.side, price, quantity, fee, time)
        self.cash += -(notional + fee) if order.side == Side.BUY else notional - fee
        self.record_fill(fill)
        self.cash_float = float(self.cash)
        self.position_float = float(self.holding.position)
        self.fills.append(fill)
        return fill


def _plain(value: Decimal) -> str:
    """`value` without trailing zeros or an exponent: 100.2, 100."""
    return f"{value.normalize():f}"


def _out_of_reach(order: WorkingOrder, bar: Bar) -> bool:
    """A cheap float test that `bar` cannot fill the limit `order` (most bars, for a resting
    grid), with a margin that leaves every close call to the exact Decimal test."""
    limit: float = order.price_float  # type: ignore[assignment]
    if order.side == Side.BUY:
        limit *= 1 + _MARGIN
        return bar.open > limit and bar.low >= limit
    limit *= 1 - _MARGIN
    return bar.open < limit and bar.high <= limit


def backtest_run(
    strategy: Strategy,
    candles: Candles,
    *,
    rules: Rules,
    caps: Caps,
    starting_quote: Decimal,
    slippage_bps: Decimal = ZERO,
    progress: Callable[[int, int], None] | None = None,
) -> BacktestOutcome:
    """Run `strategy` over `candles`; `progress(done, total)` every PROGRESS_BARS bars."""
    venue = SimulatedVenue(rules=rules, caps=caps, starting_quote=starting_quote, slippage_bps=slippage_bps)
    count = len(candles)
    equity = np.empty(count)
    exposed = np.zeros(count, dtype=bool)
    interval = candles.interval_seconds
    times = candles.time.tolist()
    opens, highs, lows, closes, volumes = (
        getattr(candles, name).tolist() for name in ("open", "high", "low", "close", "volume")
    )
    timer = strategy.timer_seconds
    on_bar, on_fill, on_timer, finished = strategy.on_bar, strategy.on_fill, strategy.on_timer, strategy.is_finished
    begin_step = venue.begin_step
    if count:
        begin_step(times[0])
        venue.last_close = opens[0]
        strategy.on_start(venue)
    next_timer = times[0] + (timer or 0) if count else 0
    done = 0
    for index in range(count):
        opened = times[index]
        bar = Bar(opened, opens[index], highs[index], lows[index], closes[index], volumes[index])
        if venue.orders:
            fills = venue.match(bar)
            for fill in fills:
                begin_step(opened, "f")
                on_fill(venue, fill)
        closed = opened + interval
        begin_step(closed)
        close = bar.close
        venue.last_close = close
        if not finished(venue):
            on_bar(venue, bar)
            if timer and closed >= next_timer:
                next_timer = closed + timer
                begin_step(closed, "t")
                on_timer(venue)
        position = venue.position_float
        equity[index] = venue.cash_float + position * close
        exposed[index] = position != 0.0
        done = index + 1
        if progress is not None and done % PROGRESS_BARS == 0:
            progress(done, count)
    if progress is not None:
        progress(done, count)
    return BacktestOutcome(
        fills=venue.fills,
        equity=equity,
        exposed=exposed,
        log=venue.lines,
        open_orders=list(venue.open_orders),
        bars=done,
    )
