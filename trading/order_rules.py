"""What makes an order well-formed: type / time-in-force combinations and the instrument's filters.

Each refusal raises `OrderRejected` with a stable reason code; the engine stores the order as
REJECTED with that code. Price bands and limits are risk rules (`riskmgmt.checks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from marketdata.models import Instrument
from portal.decimals import is_multiple_of
from portal.errors import DomainError
from trading.choices import LIMIT_TYPES, MARKET_TYPES, STOP_TYPES, OrderType, Side, TimeInForce


class OrderRejected(DomainError):
    """The order was refused; `code` is the reason code stored on the REJECTED order."""

    def __init__(self, code: str, message: str, *, status: int = 422, order=None):
        super().__init__(code, message, status=status)
        self.order = order

    def attach(self, order) -> OrderRejected:
        self.order = order
        self.extra = {"order_id": order.pk, "reject_reason": self.code}
        return self


@dataclass(frozen=True)
class OrderRequest:
    """An order as a client asks for it (already parsed into Decimals)."""

    side: str
    type: str
    quantity: Decimal | None = None
    quote_quantity: Decimal | None = None
    price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: str = ""
    client_order_id: str = ""


def order_request_normalized(request: OrderRequest) -> OrderRequest:
    """Fill the defaults a client may leave out: limit orders are GTC unless told otherwise."""
    if not request.time_in_force and request.type in (
        OrderType.LIMIT,
        OrderType.STOP_LOSS_LIMIT,
        OrderType.TAKE_PROFIT_LIMIT,
        OrderType.LIMIT_MAKER,
    ):
        return OrderRequest(**{**request.__dict__, "time_in_force": TimeInForce.GTC})
    return request


def order_request_validate(request: OrderRequest, instrument: Instrument) -> None:
    """Raise OrderRejected for the first rule `request` breaks (shape first, then filters)."""
    _validate_shape(request)
    _validate_filters(request, instrument)


def _validate_shape(request: OrderRequest) -> None:
    if request.side not in Side.values:
        raise OrderRejected("INVALID_SIDE", f"Side must be one of {', '.join(Side.values)}.")
    if request.type not in OrderType.values:
        raise OrderRejected("INVALID_ORDER_TYPE", f"Type must be one of {', '.join(OrderType.values)}.")
    kind = OrderType(request.type)
    for name in ("quantity", "quote_quantity", "price", "stop_price"):
        value = getattr(request, name)
        if value is not None and value <= 0:
            code = "INVALID_QUANTITY" if "quantity" in name else "INVALID_PRICE"
            raise OrderRejected(code, f"{name} must be greater than zero.")
    if request.quote_quantity is not None:
        if kind != OrderType.MARKET:
            raise OrderRejected("QUOTE_QUANTITY_NOT_ALLOWED", "Only MARKET orders may give quote_quantity.")
        if request.quantity is not None:
            raise OrderRejected("INVALID_QUANTITY", "Give either quantity or quote_quantity, not both.")
    elif request.quantity is None:
        raise OrderRejected("QUANTITY_REQUIRED", f"{kind} orders need a quantity.")
    if kind in LIMIT_TYPES and request.price is None:
        raise OrderRejected("PRICE_REQUIRED", f"{kind} orders need a price.")
    if kind in MARKET_TYPES and request.price is not None:
        raise OrderRejected("PRICE_NOT_ALLOWED", f"{kind} orders execute at market and take no price.")
    if kind in STOP_TYPES and request.stop_price is None:
        raise OrderRejected("STOP_PRICE_REQUIRED", f"{kind} orders need a stop_price.")
    if kind not in STOP_TYPES and request.stop_price is not None:
        raise OrderRejected("STOP_PRICE_NOT_ALLOWED", f"{kind} orders take no stop_price.")
    tif = request.time_in_force
    if tif and tif not in TimeInForce.values:
        raise OrderRejected("INVALID_TIME_IN_FORCE", f"time_in_force must be one of {', '.join(TimeInForce.values)}.")
    if kind in MARKET_TYPES and tif == TimeInForce.GTC:
        raise OrderRejected(
            "INVALID_TIME_IN_FORCE", f"{kind} orders never rest on the book: use IOC or FOK, or leave it out."
        )
    if kind == OrderType.LIMIT_MAKER and tif not in ("", TimeInForce.GTC):
        raise OrderRejected("INVALID_TIME_IN_FORCE", "LIMIT_MAKER orders rest on the book: GTC only.")


def _validate_filters(request: OrderRequest, instrument: Instrument) -> None:
    tick, lot = instrument.tick_size, instrument.lot_size
    for name in ("price", "stop_price"):
        value = getattr(request, name)
        if value is not None and not is_multiple_of(value, tick):
            raise OrderRejected("TICK_SIZE", f"{name} {value} is not a multiple of the tick size {tick.normalize():f}.")
    if request.quantity is not None:
        quantity = request.quantity
        if not is_multiple_of(quantity, lot):
            raise OrderRejected(
                "LOT_SIZE", f"Quantity {quantity} is not a multiple of the lot size {lot.normalize():f}."
            )
        if quantity < instrument.min_qty:
            raise OrderRejected(
                "LOT_SIZE", f"Quantity {quantity} is below the minimum {instrument.min_qty.normalize():f}."
            )
        if quantity > instrument.max_qty:
            raise OrderRejected(
                "LOT_SIZE", f"Quantity {quantity} is above the maximum {instrument.max_qty.normalize():f}."
            )
    notional = order_notional_estimate(request, instrument)
    if notional < instrument.min_notional:
        raise OrderRejected(
            "MIN_NOTIONAL",
            f"Order value {notional.normalize():f} is below the minimum notional "
            f"{instrument.min_notional.normalize():f}.",
        )


def order_notional_estimate(request: OrderRequest, instrument: Instrument) -> Decimal:
    """The order's value in the quote asset: price × quantity, or at the reference price for market orders."""
    if request.quote_quantity is not None:
        return request.quote_quantity
    price = request.price if request.price is not None else (request.stop_price or instrument.reference_price)
    return price * request.quantity  # type: ignore[operator]


def order_quantity_estimate(request: OrderRequest, instrument: Instrument) -> Decimal:
    if request.quantity is not None:
        return request.quantity
    return request.quote_quantity / instrument.reference_price
