"""Pre-trade risk: the rules an order must pass before it may lock funds and match.

Reads only (limits, kill switches, the account's position, free balance, open orders and
today's P&L), the common ones in one round trip (`pre_trade_snapshot`);
the engine calls `pre_trade_check` under the instrument lock and stores a refused order as
REJECTED with the stable reason code raised here.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from marketdata.models import Instrument, InstrumentStatus
from portal import rawsql
from portal.decimals import AMOUNT_UNIT, ZERO, decimal_plain
from portal.errors import DomainError
from riskmgmt.models import risk_limit_scope_key

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


def _scope_keys(account_id: int | None, instrument_id: int | None) -> list[str]:
    keys = [risk_limit_scope_key(account_id=None, instrument_id=None)]
    if instrument_id:
        keys.append(risk_limit_scope_key(account_id=None, instrument_id=instrument_id))
    if account_id:
        keys.append(risk_limit_scope_key(account_id=account_id, instrument_id=None))
    if account_id and instrument_id:
        keys.append(risk_limit_scope_key(account_id=account_id, instrument_id=instrument_id))
    return keys


def _decimal(value) -> Decimal | None:
    """A numeric from raw SQL: PostgreSQL answers Decimal, SQLite a float or int."""
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value)).quantize(AMOUNT_UNIT)


def _limits_from(row) -> EffectiveLimits:
    band, max_qty, max_notional, max_position, max_open, daily_loss = row
    return EffectiveLimits(
        price_band_pct=_decimal(band) or Decimal(str(settings.TRADING_DEFAULT_PRICE_BAND_PCT)),
        max_order_qty=_decimal(max_qty),
        max_order_notional=_decimal(max_notional),
        max_position_qty=_decimal(max_position),
        max_open_orders=int(max_open) if max_open is not None else None,
        daily_loss_limit=_decimal(daily_loss),
    )


_LIMITS_SELECT = ", ".join(f"MIN({name})" for name in LIMIT_FIELDS)


def limits_effective(*, account_id: int | None, instrument_id: int | None) -> EffectiveLimits:
    """The tightest value of each limit over the venue, instrument, account and
    account-on-instrument rows; the price band falls back to TRADING_DEFAULT_PRICE_BAND_PCT."""
    keys = _scope_keys(account_id, instrument_id)
    sql = (
        f"SELECT {_LIMITS_SELECT} FROM riskmgmt_risklimit "  # noqa: S608 - names only
        f"WHERE scope_key IN ({', '.join(['%s'] * len(keys))})"
    )
    return _limits_from(rawsql.issue(sql, keys).fetchone())


@dataclass(frozen=True)
class PreTradeSnapshot:
    """Everything the pre-trade rules read, fetched in one round trip (the engine's hot path).

    The last two fields count what the engine did in this transaction and has not written
    yet (`MatchingSession.unwritten`): orders it closed, P&L its trades realized."""

    limits: EffectiveLimits
    kill_switch_engaged: bool
    position_qty: Decimal
    free_balance: Decimal
    open_orders_closed_unwritten: int = 0
    realized_pnl_unwritten: Decimal = ZERO


def pre_trade_snapshot(*, account_id: int, instrument_id: int, lock_asset_id: int) -> PreTradeSnapshot:
    """Limits, kill switch, the account's position and free balance of `lock_asset_id`, in one query."""
    keys = _scope_keys(account_id, instrument_id)
    sql = (
        f"SELECT {_LIMITS_SELECT}, "  # noqa: S608 - names only
        "EXISTS (SELECT 1 FROM riskmgmt_killswitch WHERE scope_key IN ('venue', %s) AND released_at IS NULL), "
        "(SELECT quantity FROM trading_position WHERE account_id = %s AND instrument_id = %s), "
        "(SELECT free FROM trading_balance WHERE account_id = %s AND asset_id = %s) "
        f"FROM riskmgmt_risklimit WHERE scope_key IN ({', '.join(['%s'] * len(keys))})"
    )
    params: list[str | int] = [f"account:{account_id}", account_id, instrument_id, account_id, lock_asset_id, *keys]
    row = rawsql.issue(sql, params).fetchone()
    return PreTradeSnapshot(
        limits=_limits_from(row[:6]),
        kill_switch_engaged=bool(row[6]),
        position_qty=_decimal(row[7]) or ZERO,
        free_balance=_decimal(row[8]) or ZERO,
    )


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


def pre_trade_check(*, instrument: Instrument, exposure: OrderExposure, snapshot: PreTradeSnapshot) -> None:
    """Raise RiskRejection with the first rule the order breaks, in the order a desk checks them."""
    from trading import selectors

    limits = snapshot.limits
    if instrument.status != InstrumentStatus.TRADING:
        raise RiskRejection(
            "INSTRUMENT_HALTED",
            f"{instrument.symbol} is not trading ({instrument.status}"
            + (f": {instrument.status_reason}" if instrument.status_reason else "")
            + ").",
        )
    if snapshot.kill_switch_engaged:
        raise RiskRejection("KILL_SWITCH", "A kill switch is engaged for this account or the venue.")
    low, high = price_band(reference_price=instrument.reference_price, band_pct=limits.price_band_pct)
    for price in exposure.prices:
        if not low <= price <= high:
            raise RiskRejection(
                "PRICE_BAND",
                f"Price {decimal_plain(price)} is outside the band {decimal_plain(low)} – {decimal_plain(high)} "
                f"({decimal_plain(limits.price_band_pct)}% around the reference price "
                f"{decimal_plain(instrument.reference_price)}).",
            )
    if limits.max_order_qty is not None and exposure.quantity > limits.max_order_qty:
        raise RiskRejection("MAX_ORDER_QTY", f"Quantity exceeds the maximum order quantity {limits.max_order_qty}.")
    if limits.max_order_notional is not None and exposure.notional > limits.max_order_notional:
        raise RiskRejection(
            "MAX_NOTIONAL", f"Order value {exposure.notional} exceeds the maximum {limits.max_order_notional}."
        )
    if limits.max_position_qty is not None:
        current = snapshot.position_qty
        signed = exposure.quantity if exposure.side == "BUY" else -exposure.quantity
        if abs(current + signed) > limits.max_position_qty and abs(current + signed) > abs(current):
            raise RiskRejection(
                "MAX_POSITION",
                f"The position would reach {current + signed}, beyond the limit of ±{limits.max_position_qty}.",
            )
    if limits.max_open_orders is not None:
        closed = snapshot.open_orders_closed_unwritten
        stored = selectors.open_order_count(account_id=exposure.account_id, up_to=limits.max_open_orders + closed)
        if stored - closed >= limits.max_open_orders:
            raise RiskRejection("MAX_OPEN_ORDERS", f"The account already has {limits.max_open_orders} open orders.")
    if limits.daily_loss_limit is not None:
        realized = selectors.realized_pnl_today(account_id=exposure.account_id) + snapshot.realized_pnl_unwritten
        if realized <= -limits.daily_loss_limit:
            raise RiskRejection(
                "DAILY_LOSS_LIMIT",
                f"Today's realized loss {-realized} has reached the daily limit {limits.daily_loss_limit}.",
            )
