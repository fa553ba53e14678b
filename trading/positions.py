"""Position arithmetic: average entry price on increase, realized P&L on decrease, flips.

Pure functions on Decimals; the engine applies them fill by fill under the instrument lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from portal.decimals import AMOUNT_UNIT, ZERO


@dataclass(frozen=True)
class PositionState:
    quantity: Decimal
    average_price: Decimal
    realized_pnl: Decimal


def _round(value: Decimal) -> Decimal:
    return value.quantize(AMOUNT_UNIT, rounding=ROUND_HALF_EVEN)


def position_after_fill(state: PositionState, *, signed_qty: Decimal, price: Decimal) -> tuple[PositionState, Decimal]:
    """The position after trading `signed_qty` (positive = bought) at `price`, and the P&L it realized.

    Adding to a position (or opening one) moves the average price to the quantity-weighted
    mean; reducing it realizes (price − average) per unit closed, in the position's direction;
    going through zero closes the old position and opens the rest at `price`.
    """
    quantity, average = state.quantity, state.average_price
    if signed_qty == 0:
        return state, ZERO
    if quantity == 0 or (quantity > 0) == (signed_qty > 0):
        new_quantity = quantity + signed_qty
        new_average = _round((abs(quantity) * average + abs(signed_qty) * price) / abs(new_quantity))
        return PositionState(new_quantity, new_average, state.realized_pnl), ZERO
    closed = min(abs(signed_qty), abs(quantity))
    direction = 1 if quantity > 0 else -1
    realized = _round(closed * (price - average) * direction)
    new_quantity = quantity + signed_qty
    if new_quantity == 0:
        new_average = ZERO
    elif (new_quantity > 0) != (quantity > 0):
        new_average = price
    else:
        new_average = average
    return PositionState(new_quantity, new_average, state.realized_pnl + realized), realized


def unrealized_pnl(*, quantity: Decimal, average_price: Decimal, last_price: Decimal | None) -> Decimal:
    if last_price is None or quantity == 0:
        return ZERO
    return _round(quantity * (last_price - average_price))
