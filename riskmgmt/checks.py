"""Pre-trade risk: the rules an order must pass before it may lock funds and match.

Reads only (limits, kill switches, the account's position, open orders and today's P&L);
the engine calls `pre_trade_check` under the instrument lock and stores a refused order as
REJECTED with the stable reason code raised here.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from marketdata.models import Instrument, InstrumentStatus
from portal.errors import DomainError
from riskmgmt.models import KillSwitch, RiskLimit, risk_limit_scope_key

LIMIT_FIELDS = (
    "price_band_pct",
    "max_order_qty",
    "max_order_notional",
    "max_position_qty",
    "max_open_orders",
    "daily_loss_limit",
)


class RiskRejection(DomainError):
    """A pre-trade rule refused the order; `code` is the stable reason code."""

    def __init__(self, code: str, message: str):
        super().__init__(code, message, status=422)


@dataclass(frozen=True)
class EffectiveLimits:
    price_band_pct: Decimal
    max_order_qty: Decimal | None = None
    max_order_notional: Decimal | None = None
    max_position_qty: Decimal | None = None
    max_open_orders: int | None = None
    daily_loss_limit: Decimal | None = None


def limits_effective(*, account_id: int | None, instrument_id: int | None) -> EffectiveLimits:
    """The tightest value of each limit over the venue, instrument, account and
    account-on-instrument rows; the price band falls back to TRADING_DEFAULT_PRICE_BAND_PCT."""
    keys = {risk_limit_scope_key(account_id=None, instrument_id=None)}
    if instrument_id:
        keys.add(risk_limit_scope_key(account_id=None, instrument_id=instrument_id))
    if account_id:
        keys.add(risk_limit_scope_key(account_id=account_id, instrument_id=None))
    if account_id and instrument_id:
        keys.add(risk_limit_scope_key(account_id=account_id, instrument_id=instrument_id))
    tightest: dict[str, object] = {}
    for row in RiskLimit.objects.filter(scope_key__in=keys).values(*LIMIT_FIELDS):
        for name, value in row.items():
            if value is not None and (name not in tightest or value < tightest[name]):
                tightest[name] = value
    tightest.setdefault("price_band_pct", Decimal(str(settings.TRADING_DEFAULT_PRICE_BAND_PCT)))
    return EffectiveLimits(**tightest)  # type: ignore[arg-type]


def kill_switch_engaged(*, account_id: int) -> bool:
    return KillSwitch.objects.filter(
        scope_key__in=("venue", f"account:{account_id}"), released_at__isnull=True
    ).exists()


def price_band(*, reference_price: Decimal, band_pct: Decimal) -> tuple[Decimal, Decimal]:
    """The lowest and highest acceptable price around `reference_price`."""
    width = reference_price * band_pct / 100
    return reference_price - width, reference_price + width


@dataclass(frozen=True)
class OrderExposure:
    """What the engine knows of an order before it matches."""

    account_id: int
    side: str
    quantity: Decimal
    notional: Decimal
    prices: tuple[Decimal, ...]


def pre_trade_check(*, instrument: Instrument, exposure: OrderExposure, limits: EffectiveLimits) -> None:
    """Raise RiskRejection with the first rule the order breaks, in the order a desk checks them."""
    from trading import selectors

    if instrument.status != InstrumentStatus.TRADING:
        raise RiskRejection(
            "INSTRUMENT_HALTED",
            f"{instrument.symbol} is not trading ({instrument.status}"
            + (f": {instrument.status_reason}" if instrument.status_reason else "")
            + ").",
        )
    if kill_switch_engaged(account_id=exposure.account_id):
        raise RiskRejection("KILL_SWITCH", "A kill switch is engaged for this account or the venue.")
    low, high = price_band(reference_price=instrument.reference_price, band_pct=limits.price_band_pct)
    for price in exposure.prices:
        if not low <= price <= high:
            raise RiskRejection(
                "PRICE_BAND",
                f"Price {price} is outside the band {low.normalize()} – {high.normalize()} "
                f"({limits.price_band_pct.normalize()}% around the reference price {instrument.reference_price}).",
            )
    if limits.max_order_qty is not None and exposure.quantity > limits.max_order_qty:
        raise RiskRejection("MAX_ORDER_QTY", f"Quantity exceeds the maximum order quantity {limits.max_order_qty}.")
    if limits.max_order_notional is not None and exposure.notional > limits.max_order_notional:
        raise RiskRejection(
            "MAX_NOTIONAL", f"Order value {exposure.notional} exceeds the maximum {limits.max_order_notional}."
        )
    if limits.max_position_qty is not None:
        current = selectors.position_quantity(account_id=exposure.account_id, instrument_id=instrument.pk)
        signed = exposure.quantity if exposure.side == "BUY" else -exposure.quantity
        if abs(current + signed) > limits.max_position_qty and abs(current + signed) > abs(current):
            raise RiskRejection(
                "MAX_POSITION",
                f"The position would reach {current + signed}, beyond the limit of ±{limits.max_position_qty}.",
            )
    if (
        limits.max_open_orders is not None
        and selectors.open_order_count(account_id=exposure.account_id) >= limits.max_open_orders
    ):
        raise RiskRejection("MAX_OPEN_ORDERS", f"The account already has {limits.max_open_orders} open orders.")
    if limits.daily_loss_limit is not None:
        realized = selectors.realized_pnl_today(account_id=exposure.account_id)
        if realized <= -limits.daily_loss_limit:
            raise RiskRejection(
                "DAILY_LOSS_LIMIT",
                f"Today's realized loss {-realized} has reached the daily limit {limits.daily_loss_limit}.",
            )
