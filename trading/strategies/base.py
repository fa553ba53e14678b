"""The one interface of a strategy, used as it is by the live runner and by the backtester
(ADR 0008): only the clock, the data and the venue behind `StrategyContext` differ.

A strategy sees closed bars of its instrument (`on_bar`), its own fills (`on_fill`) and, if it
asks for one, a timer (`on_timer`); it acts through its context: `buy`, `sell`, `cancel`. Prices
in bars are floats (indicators), prices and quantities of orders and fills are Decimals (money);
the context rounds an order to the instrument's lot and tick, checks the strategy's own risk
caps, and numbers it, so a strategy's n-th order of a step has the same reference every time
the step is run (the live runner's client order id: a restarted runner never places it twice).

What a strategy keeps across a restart goes in `self.state` (JSON); indicators are rebuilt from
`warmup_bars` bars of history before the live bars resume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, ClassVar, NamedTuple

import jsonschema

from portal.decimals import floor_amount
from portal.errors import DomainError
from trading.choices import Side
from trading.positions import PositionState, position_after_fill, unrealized_pnl

ZERO = Decimal(0)


class Bar(NamedTuple):
    """A closed candle: `time` is its open time in seconds since the epoch (UTC). (A named
    tuple: a backtest makes one per bar, and a tuple is the cheapest to make.)"""

    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of one of the strategy's orders; `fee` is in the quote asset."""

    ref: str
    side: str
    price: Decimal
    quantity: Decimal
    fee: Decimal
    time: int


@dataclass(slots=True)
class WorkingOrder:
    """One of the strategy's orders still open; `price` None for a market order."""

    ref: str
    side: str
    price: Decimal | None
    quantity: Decimal
    remaining: Decimal
    placed_at: int
    #: `price` as a float, for the backtester's quick test of a bar against it.
    price_float: float | None = None


@dataclass(frozen=True)
class Rules:
    """The instrument's trading rules an order must meet, and its fees."""

    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    maker_fee_rate: Decimal
    taker_fee_rate: Decimal

    @classmethod
    def of(cls, instrument: Any) -> Rules:
        return cls(**{name: getattr(instrument, name) for name in cls.__dataclass_fields__})

    def quantity(self, value: Decimal) -> Decimal:
        """`value` rounded down to the lot size."""
        return (value / self.lot_size).to_integral_value(ROUND_DOWN) * self.lot_size

    def price(self, value: Decimal, side: str) -> Decimal:
        """`value` rounded to the tick, never to a worse price for the side (a buy down, a sell up)."""
        ticks = value / self.tick_size
        rounding = ROUND_DOWN if side == Side.BUY else "ROUND_UP"
        return ticks.to_integral_value(rounding) * self.tick_size

    def fee(self, notional: Decimal, *, maker: bool) -> Decimal:
        return floor_amount(notional * (self.maker_fee_rate if maker else self.taker_fee_rate))


@dataclass(frozen=True)
class Caps:
    """A strategy's own risk caps, checked before any of its orders leaves; None: no cap."""

    max_position: Decimal | None = None
    max_order_qty: Decimal | None = None
    max_daily_loss: Decimal | None = None


class StrategyError(DomainError):
    """A strategy's definition is refused (unknown type, parameters against the schema)."""

    status = 400


@dataclass
class Holding:
    """What the strategy's own fills add up to: position, average price, realized P&L (after
    fees), fees paid, and the quote spent or received: the engine's position arithmetic
    (`trading.positions`) over the strategy's fills only."""

    position: Decimal = ZERO
    average_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    quote: Decimal = ZERO
    closed: list[Decimal] = field(default_factory=list)  # realized P&L of each reducing fill

    def apply(self, fill: Fill) -> Decimal:
        """Add `fill`; the P&L it realized (after its fee), 0 when it added to the position."""
        signed = fill.quantity if fill.side == Side.BUY else -fill.quantity
        notional = fill.price * fill.quantity
        self.quote += (-notional if fill.side == Side.BUY else notional) - fill.fee
        self.fees += fill.fee
        before = PositionState(self.position, self.average_price, self.realized_pnl)
        after, realized = position_after_fill(before, signed_qty=signed, price=fill.price)
        self.position, self.average_price = after.quantity, after.average_price
        self.realized_pnl = after.realized_pnl - fill.fee
        if before.quantity == 0 or (before.quantity > 0) == (signed > 0):
            return ZERO  # it opened or added
        self.closed.append(realized - fill.fee)
        return realized - fill.fee

    def unrealized(self, price: Decimal) -> Decimal:
        return unrealized_pnl(quantity=self.position, average_price=self.average_price, last_price=price)


class Strategy:
    """A strategy type: subclass it, name it, describe its parameters as a JSON schema, and
    implement the callbacks it needs. `params` are validated against the schema (defaults
    filled in) before the constructor sees them."""

    name: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    params_schema: ClassVar[dict[str, Any]]
    #: Seconds between two `on_timer` calls; None: no timer.
    timer_seconds: ClassVar[int | None] = None
    #: A type is shown in templates (the portal's catalogue), never instantiated by them.
    do_not_call_in_templates: ClassVar[bool] = True

    def __init__(self, params: Mapping[str, Any], state: dict[str, Any] | None = None):
        self.params = dict(params)
        self.state: dict[str, Any] = state if state is not None else {}

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> None:
        """Rules between parameters that the schema cannot say; raise StrategyError."""

    def is_finished(self, ctx: StrategyContext) -> bool:
        """True when the strategy has done its work (an execution algorithm): it is stopped."""
        return False

    def warmup_bars(self) -> int:
        """How many closed bars before the first live one rebuild the indicators."""
        return 0

    def on_start(self, ctx: StrategyContext) -> None:
        """Called once when the strategy starts (and again after a restart, with its state)."""

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        """A bar of the instrument closed; `ctx.now` is its close time."""

    def on_fill(self, ctx: StrategyContext, fill: Fill) -> None:
        """One of the strategy's orders traded."""

    def on_timer(self, ctx: StrategyContext) -> None:
        """`timer_seconds` went by."""


class StrategyContext:
    """What a strategy acts through. The shared part: rounding to the instrument's rules, the
    strategy's caps, its holding, and the numbering of its orders; `_submit` and `_cancel` are
    the venue's (the engine's services live, the simulated book in a backtest).

    `warming_up`: history is being replayed to rebuild indicators; orders are ignored then."""

    def __init__(self, *, rules: Rules, caps: Caps, prefix: str):
        self.rules = rules
        self.caps = caps
        self.prefix = prefix
        self.now = 0
        #: The last price seen (a bar's close, a fill's price), as a float.
        self.last_close: float | None = None
        self.holding = Holding()
        self.orders: dict[str, WorkingOrder] = {}
        self.warming_up = False
        self.day_start_pnl = ZERO
        self._day = -1
        self._step = 0
        self._kind = "b"
        self._numbered = 0
        self.refused: list[str] = []

    # -- what a strategy reads ---------------------------------------------------------------

    @property
    def last_price(self) -> Decimal | None:
        return None if self.last_close is None else Decimal(repr(self.last_close))

    @property
    def position(self) -> Decimal:
        return self.holding.position

    @property
    def open_orders(self) -> Sequence[WorkingOrder]:
        return list(self.orders.values())

    def pnl(self) -> Decimal:
        """Realized (after fees) plus unrealized at the last price."""
        price = self.last_price
        return self.holding.realized_pnl + (self.holding.unrealized(price) if price is not None else ZERO)

    # -- what a strategy does ----------------------------------------------------------------

    def buy(self, quantity: Decimal, price: Decimal | None = None, *, tag: str = "") -> str | None:
        return self.order(Side.BUY, quantity, price, tag=tag)

    def sell(self, quantity: Decimal, price: Decimal | None = None, *, tag: str = "") -> str | None:
        return self.order(Side.SELL, quantity, price, tag=tag)

    def order(self, side: str, quantity: Decimal, price: Decimal | None = None, *, tag: str = "") -> str | None:
        """Place an order (a limit order at `price`, else a market order); its reference, or
        None when it was not placed (warming up, below the instrument's minimums, refused by a
        cap or by the venue: the reason is logged). Spot: a sell never exceeds what the
        strategy's fills bought less what its other sells claim.

        The reference is the step's kind (bar, fill, timer), its time and the order's number in
        the step; or `tag` when given: a strategy whose orders follow a count of its own rather
        than the bars (a TWAP's slices) names them, so a step run again after a restart at
        another time still names the same order."""
        if self.warming_up:
            return None
        rules = self.rules
        quantity = rules.quantity(Decimal(quantity))
        if price is not None:
            price = rules.price(Decimal(price), side)
        reference = price if price is not None else self.last_price
        if quantity < rules.min_qty or reference is None or quantity * reference < rules.min_notional:
            self.log(f"{side} {quantity} not placed: below the instrument's minimum quantity or notional")
            return None
        reason = self._spot_refusal(side, quantity) or self._cap_refusal(side, quantity)
        if reason:
            self.refused.append(reason)
            self.log(f"{side} {quantity} refused: {reason}")
            return None
        ref = f"{self.prefix}{tag}" if tag else self._next_ref()
        working = WorkingOrder(ref, side, price, quantity, quantity, self.now, None if price is None else float(price))
        self.orders[ref] = working
        if not self._submit(working):
            self.orders.pop(ref, None)
            return None
        return ref

    def cancel(self, ref: str) -> None:
        if self.warming_up or ref not in self.orders:
            return
        self._cancel(self.orders.pop(ref))

    def cancel_all(self) -> None:
        for ref in list(self.orders):
            self.cancel(ref)

    def log(self, message: str) -> None:
        """A line in the strategy's log (the venue decides where it goes)."""

    # -- the venue's side --------------------------------------------------------------------

    def begin_step(self, now: int, kind: str = "b") -> None:
        """A new step at `now`, of a `kind`: "b" a bar, "f" a fill, "t" a timer. Its orders are
        numbered from 1. The first step of a UTC day takes the P&L the daily loss cap counts
        from."""
        self.now = now
        if now != self._step or kind != self._kind:
            self._step, self._kind, self._numbered = now, kind, 0
            day = now // 86_400
            if day != self._day:
                self._day, self.day_start_pnl = day, self.pnl()

    def record_fill(self, fill: Fill) -> None:
        """Book a fill of one of the strategy's orders (the venue calls it)."""
        working = self.orders.get(fill.ref)
        if working is not None:
            working.remaining -= fill.quantity
            if working.remaining <= 0:
                del self.orders[fill.ref]
        self.holding.apply(fill)
        self.last_close = float(fill.price)

    def _next_ref(self) -> str:
        self._numbered += 1
        return f"{self.prefix}{self._kind}{self._step}-{self._numbered}"

    def _cap_refusal(self, side: str, quantity: Decimal) -> str:
        caps = self.caps
        signed = quantity if side == Side.BUY else -quantity
        before = self.holding.position + self._working_exposure(side)
        after = before + signed
        reduces = abs(after) < abs(before)
        if caps.max_order_qty is not None and quantity > caps.max_order_qty:
            return f"order quantity above the strategy's cap {caps.max_order_qty}"
        if caps.max_position is not None and abs(after) > caps.max_position and not reduces:
            return f"position would exceed the strategy's cap {caps.max_position}"
        if caps.max_daily_loss is not None and not reduces and self.day_start_pnl - self.pnl() >= caps.max_daily_loss:
            return f"today's loss reached the strategy's cap {caps.max_daily_loss}"
        return ""

    def _spot_refusal(self, side: str, quantity: Decimal) -> str:
        if side != Side.SELL:
            return ""
        claimed = -self._working_exposure(Side.SELL)
        if quantity > self.holding.position - claimed:
            return f"the strategy holds {self.holding.position:f}, its other sells claim {claimed:f}"
        return ""

    def _working_exposure(self, side: str) -> Decimal:
        """What the open orders on the same side would add to the position."""
        total = sum((o.remaining for o in self.orders.values() if o.side == side), ZERO)
        return total if side == Side.BUY else -total

    def _submit(self, order: WorkingOrder) -> bool:
        """Send `order` to the venue; whether it was placed (it may have filled at once)."""
        raise NotImplementedError

    def _cancel(self, order: WorkingOrder) -> None:
        raise NotImplementedError


def params_validate(strategy: type[Strategy], params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` checked against the type's schema, with its defaults filled in; StrategyError
    naming the first field at fault."""
    schema = strategy.params_schema
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(dict(params)), key=lambda error: list(error.absolute_path))
    if errors:
        error = errors[0]
        field_name = ".".join(str(part) for part in error.absolute_path) or _missing_field(error) or "params"
        message = f"Parameter {field_name!r}: {error.message}"
        raise StrategyError("bad_params", message, errors={f"params.{field_name}": [error.message]})
    filled = {name: spec["default"] for name, spec in schema.get("properties", {}).items() if "default" in spec}
    filled.update(params)
    strategy.check(filled)
    return filled


def _missing_field(error: jsonschema.ValidationError) -> str:
    if error.validator == "required":
        return str(error.message).split("'")[1]
    return ""
