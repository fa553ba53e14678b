"""The built-in strategy types (docs/strategies.md describes each for traders).

Every one is long-only spot: it buys with quote it has and sells what its own fills bought.
Indicators are updated bar by bar in O(1) (running sums, Wilder's smoothing), with the same
seeding as TA-Lib, so a backtest over a year of one-minute bars stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from trading.choices import Side
from trading.strategies.base import Bar, Fill, Strategy, StrategyContext, StrategyError

#: Averages closer than this (relative) are equal: the float error of a sum of a window of prices,
#: far below the smallest real gap between two averages of prices on a tick.
_TIE = 1e-12
_QUANTITY = {"type": "number", "exclusiveMinimum": 0, "description": "Base quantity of each order."}


class _Average:
    """A simple or exponential moving average over the last `period` closes, updated per close.
    The simple one keeps a running total, summed again exactly once a period; the exponential
    one starts from the simple average of its first `period` closes (TA-Lib's seeding). `value`
    is None until `period` closes were seen."""

    __slots__ = ("alpha", "exponential", "period", "seen", "total", "value", "window")

    def __init__(self, period: int, exponential: bool):
        self.period = period
        self.exponential = exponential
        self.alpha = 2.0 / (period + 1)
        self.window = [0.0] * period
        self.seen = 0
        self.total = 0.0
        self.value: float | None = None

    def add(self, close: float) -> float | None:
        seen = self.seen
        self.seen = seen + 1
        if self.exponential and seen >= self.period:
            self.value = self.value + self.alpha * (close - self.value)  # type: ignore[operator]
            return self.value
        slot = seen % self.period
        old, self.window[slot] = self.window[slot], close
        if slot == self.period - 1:
            self.total = math.fsum(self.window)  # once a period, so rounding errors never build up
        else:
            self.total += close - old
        if seen + 1 >= self.period:
            self.value = self.total / self.period
        return self.value


class MovingAverageCrossover(Strategy):
    name = "ma_crossover"
    title = "Moving-average crossover"
    summary = (
        "Buys `quantity` at market when the fast average of closes crosses above the slow one, and "
        "sells what it holds when it crosses back below. Simple (SMA) or exponential (EMA) averages."
    )
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["quantity"],
        "properties": {
            "fast": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10, "description": "Bars."},
            "slow": {"type": "integer", "minimum": 2, "maximum": 5000, "default": 30, "description": "Bars."},
            "average": {"enum": ["sma", "ema"], "default": "sma"},
            "quantity": _QUANTITY,
        },
    }

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> None:
        if params["fast"] >= params["slow"]:
            raise StrategyError(
                "bad_params",
                "Parameter 'fast': the fast average must be shorter than the slow one.",
                errors={"params.fast": ["Must be less than slow."]},
            )

    def __init__(self, params: Mapping[str, Any], state: dict[str, Any] | None = None):
        super().__init__(params, state)
        exponential = self.params["average"] == "ema"
        self.fast = _Average(self.params["fast"], exponential)
        self.slow = _Average(self.params["slow"], exponential)
        self.quantity = Decimal(str(self.params["quantity"]))
        self.above: bool | None = None

    def warmup_bars(self) -> int:
        return self.params["slow"] * (4 if self.params["average"] == "ema" else 1)

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        fast = self.fast.add(bar.close)
        slow = self.slow.add(bar.close)
        if slow is None:
            return
        above = fast - slow > _TIE * abs(slow)  # type: ignore[operator]
        was = self.above
        self.above = above
        if was is None or above == was:
            return
        if above and ctx.position <= 0:
            ctx.buy(self.quantity)
        elif not above and ctx.position > 0:
            ctx.sell(ctx.position)


class RsiMeanReversion(Strategy):
    name = "rsi_reversion"
    title = "RSI mean reversion"
    summary = (
        "Wilder's RSI of closes: buys `quantity` at market when it falls below `oversold` while the "
        "strategy holds nothing, and sells everything when it rises above `overbought`."
    )
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["quantity"],
        "properties": {
            "period": {"type": "integer", "minimum": 2, "maximum": 500, "default": 14, "description": "Bars."},
            "oversold": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 100, "default": 30},
            "overbought": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 100, "default": 70},
            "quantity": _QUANTITY,
        },
    }

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> None:
        if params["oversold"] >= params["overbought"]:
            raise StrategyError(
                "bad_params",
                "Parameter 'oversold': it must be below overbought.",
                errors={"params.oversold": ["Must be less than overbought."]},
            )

    def __init__(self, params: Mapping[str, Any], state: dict[str, Any] | None = None):
        super().__init__(params, state)
        self.period = self.params["period"]
        self.quantity = Decimal(str(self.params["quantity"]))
        self.previous: float | None = None
        self.changes = 0
        self.gain = 0.0
        self.loss = 0.0
        self.rsi: float | None = None

    def warmup_bars(self) -> int:
        return self.period * 10

    def _update(self, close: float) -> float | None:
        previous, self.previous = self.previous, close
        if previous is None:
            return None
        change = close - previous
        gain, loss = (change, 0.0) if change > 0 else (0.0, -change)
        self.changes += 1
        period = self.period
        if self.changes <= period:
            self.gain += gain / period
            self.loss += loss / period
            if self.changes < period:
                return None
        else:
            self.gain = (self.gain * (period - 1) + gain) / period
            self.loss = (self.loss * (period - 1) + loss) / period
        total = self.gain + self.loss
        self.rsi = 100.0 * self.gain / total if total else 50.0
        return self.rsi

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        rsi = self._update(bar.close)
        if rsi is None:
            return
        if rsi < self.params["oversold"] and ctx.position <= 0 and not ctx.orders:
            ctx.buy(self.quantity)
        elif rsi > self.params["overbought"] and ctx.position > 0:
            ctx.sell(ctx.position)


class GridTrading(Strategy):
    name = "grid"
    title = "Grid trading"
    summary = (
        "`levels` prices evenly spaced from `lower` to `upper`. It rests a buy of `quantity` at every "
        "level below the price when it starts; each buy that fills is answered by a sell one level "
        "up, and each sell by a buy one level down, so it earns the grid's step on every round trip."
    )
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["lower", "upper", "quantity"],
        "properties": {
            "lower": {"type": "number", "exclusiveMinimum": 0, "description": "Lowest level's price."},
            "upper": {"type": "number", "exclusiveMinimum": 0, "description": "Highest level's price."},
            "levels": {"type": "integer", "minimum": 2, "maximum": 200, "default": 10},
            "quantity": _QUANTITY,
        },
    }

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> None:
        if params["lower"] >= params["upper"]:
            raise StrategyError(
                "bad_params",
                "Parameter 'lower': it must be below upper.",
                errors={"params.lower": ["Must be less than upper."]},
            )

    def __init__(self, params: Mapping[str, Any], state: dict[str, Any] | None = None):
        super().__init__(params, state)
        lower, upper = Decimal(str(self.params["lower"])), Decimal(str(self.params["upper"]))
        count = self.params["levels"]
        step = (upper - lower) / (count - 1)
        self.prices = [lower + step * index for index in range(count)]
        self.quantity = Decimal(str(self.params["quantity"]))
        #: Which level each working order stands at (state: it survives a restart).
        self.state.setdefault("level_of", {})

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        if self.state.get("placed") or ctx.warming_up:
            return
        for index, price in enumerate(self.prices):
            if price < Decimal(str(bar.close)):
                self._place(ctx, Side.BUY, index)
        self.state["placed"] = True

    def on_fill(self, ctx: StrategyContext, fill: Fill) -> None:
        if fill.ref in ctx.orders:
            return  # partly filled: wait for the rest
        level = self.state["level_of"].pop(fill.ref, None)
        if level is None:  # placed by a step whose state a restart lost: the level of its price
            level = min(range(len(self.prices)), key=lambda index: abs(self.prices[index] - fill.price))
        if fill.side == Side.BUY and level + 1 < len(self.prices):
            self._place(ctx, Side.SELL, level + 1)
        elif fill.side == Side.SELL and level > 0:
            self._place(ctx, Side.BUY, level - 1)

    def _place(self, ctx: StrategyContext, side: str, level: int) -> None:
        ref = ctx.order(side, self.quantity, self.prices[level])
        if ref is not None:
            self.state["level_of"][ref] = level


class Twap(Strategy):
    name = "twap"
    title = "TWAP execution"
    summary = (
        "Buys or sells `quantity` over `duration_minutes` in `slices` equal market orders, one at the "
        "start of each equal part of the window, each rounded to the lot so that together they make "
        "the quantity (what a slice could not send is added to the next); with `limit_price` a slice "
        "is a limit order at that price instead (never paying more, or selling for less). Finishes "
        "once every slice is sent and none is left working (stop it to cancel limit slices left)."
    )
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["side", "quantity", "duration_minutes"],
        "properties": {
            "side": {"enum": ["BUY", "SELL"]},
            "quantity": {"type": "number", "exclusiveMinimum": 0, "description": "Total base quantity."},
            "duration_minutes": {"type": "integer", "minimum": 1, "maximum": 10080},
            "slices": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
            "limit_price": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None},
        },
    }
    timer_seconds = 1

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> None:
        if params["slices"] > params["duration_minutes"] * 60:
            raise StrategyError(
                "bad_params",
                "Parameter 'slices': at most one slice per second of the window.",
                errors={"params.slices": ["At most one per second of duration_minutes."]},
            )

    def is_finished(self, ctx: StrategyContext) -> bool:
        return self.state.get("sent", 0) >= self.params["slices"] and not ctx.orders

    def on_start(self, ctx: StrategyContext) -> None:
        self.state.setdefault("started_at", ctx.now)
        self.state.setdefault("sent", 0)
        self.state.setdefault("sent_quantity", "0")

    def on_timer(self, ctx: StrategyContext) -> None:
        self._send_due(ctx)

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        self._send_due(ctx)

    def _send_due(self, ctx: StrategyContext) -> None:
        slices = self.params["slices"]
        interval = self.params["duration_minutes"] * 60 / slices
        total = Decimal(str(self.params["quantity"]))
        limit = self.params["limit_price"]
        while self.state["sent"] < slices and ctx.now >= self.state["started_at"] + self.state["sent"] * interval:
            sent = self.state["sent"]
            done = Decimal(self.state["sent_quantity"])
            quantity = ctx.rules.quantity(total * (sent + 1) / slices) - done  # the lot-rounded part due so far
            price = None if limit is None else Decimal(str(limit))
            if quantity > 0 and ctx.order(self.params["side"], quantity, price, tag=f"s{sent + 1}") is not None:
                self.state["sent_quantity"] = str(done + quantity)
            self.state["sent"] = sent + 1


class MarketMaker(Strategy):
    name = "market_maker"
    title = "Market maker"
    summary = (
        "The simulator's market maker as a strategy: `levels` bids below the last price, `step_bps` "
        "apart, each worth `quote_notional` more by a quarter per level, and as many asks as the "
        "inventory it bought allows. It quotes again when the price moved `requote_bps` from the "
        "centre of its quotes, or after a fill; it stops bidding at `max_inventory`."
    )
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["quote_notional", "max_inventory"],
        "properties": {
            "levels": {"type": "integer", "minimum": 1, "maximum": 20, "default": 3},
            "step_bps": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000, "default": 10},
            "quote_notional": {"type": "number", "exclusiveMinimum": 0, "description": "Quote per level."},
            "requote_bps": {"type": "number", "minimum": 0, "maximum": 1000, "default": 5},
            "max_inventory": {"type": "number", "exclusiveMinimum": 0, "description": "Base held at most."},
        },
    }
    timer_seconds = 5

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> None:
        if params["levels"] * params["step_bps"] >= 10_000:
            raise StrategyError(
                "bad_params",
                "Parameter 'step_bps': levels × step_bps must stay below 10,000 (the deepest bid above zero).",
                errors={"params.step_bps": ["levels × step_bps must be below 10,000."]},
            )

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        self._quote(ctx, Decimal(str(bar.close)))

    def on_timer(self, ctx: StrategyContext) -> None:
        if ctx.last_price is not None:
            self._quote(ctx, ctx.last_price)

    def on_fill(self, ctx: StrategyContext, fill: Fill) -> None:
        self.state["centre"] = None  # quote again around the new price at the next bar or timer

    def _quote(self, ctx: StrategyContext, price: Decimal) -> None:
        centre = self.state.get("centre")
        requote = Decimal(str(self.params["requote_bps"])) / 10_000
        if centre is not None and ctx.orders and abs(price - Decimal(centre)) <= requote * price:
            return
        ctx.cancel_all()
        step = Decimal(str(self.params["step_bps"])) / 10_000
        notional = Decimal(str(self.params["quote_notional"]))
        room = Decimal(str(self.params["max_inventory"])) - ctx.position
        inventory = ctx.position
        for level in range(self.params["levels"]):
            size = notional * (1 + Decimal(level) / 4)
            bid = price * (1 - step * (level + 1))
            ask = price * (1 + step * (level + 1))
            if room > 0:
                room -= _placed(ctx, ctx.buy(min(size / bid, room), bid))
            if inventory > 0:
                inventory -= _placed(ctx, ctx.sell(min(size / ask, inventory), ask))
        self.state["centre"] = str(price)


def _placed(ctx: StrategyContext, ref: str | None) -> Decimal:
    """The quantity of the order `ref` as placed (rounded to the lot), 0 if it was not."""
    order = ctx.orders.get(ref) if ref is not None else None
    return order.quantity if order is not None else Decimal(0)


CATALOGUE: dict[str, type[Strategy]] = {
    kind.name: kind for kind in (MovingAverageCrossover, RsiMeanReversion, GridTrading, Twap, MarketMaker)
}


def strategy_type_get(name: str) -> type[Strategy]:
    """The catalogue's type `name`; a 400 naming the known ones otherwise."""
    kind = CATALOGUE.get(name)
    if kind is None:
        known = ", ".join(sorted(CATALOGUE))
        message = f"No strategy type {name!r}: {known}."
        raise StrategyError("unknown_type", message, errors={"kind": [f"One of {known}."]})
    return kind
