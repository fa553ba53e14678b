"""Reads of the trading app: accounts, balances, orders, trades, positions, ledger, the book.

Every list a user sees is filtered to the accounts they may see (`accounts_visible_to`);
writes live in `trading.services`.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from portal.decimals import ZERO
from trading.choices import OPEN_STATUSES
from trading.models import Order, Position, Trade


def position_quantity(*, account_id: int, instrument_id: int) -> Decimal:
    quantity = (
        Position.objects.filter(account_id=account_id, instrument_id=instrument_id)
        .values_list("quantity", flat=True)
        .first()
    )
    return quantity if quantity is not None else ZERO


def open_order_count(*, account_id: int) -> int:
    return Order.objects.filter(account_id=account_id, status__in=OPEN_STATUSES).count()


def realized_pnl_today(*, account_id: int) -> Decimal:
    """Realized P&L of the account's trades since midnight UTC."""
    midnight = datetime.combine(timezone.now().astimezone(UTC).date(), time.min, tzinfo=UTC)
    as_maker = Trade.objects.filter(maker_account_id=account_id, executed_at__gte=midnight).aggregate(
        total=Sum("maker_realized_pnl")
    )["total"]
    as_taker = Trade.objects.filter(taker_account_id=account_id, executed_at__gte=midnight).aggregate(
        total=Sum("taker_realized_pnl")
    )["total"]
    return (as_maker or ZERO) + (as_taker or ZERO)


def open_orders(*, account_ids, instrument_id: int | None = None, side: str | None = None) -> QuerySet[Order]:
    queryset = Order.objects.filter(account_id__in=account_ids, status__in=OPEN_STATUSES)
    if instrument_id is not None:
        queryset = queryset.filter(instrument_id=instrument_id)
    if side:
        queryset = queryset.filter(side=side)
    return queryset


def trades_of_accounts(*, account_ids) -> QuerySet[Trade]:
    return Trade.objects.filter(Q(maker_account_id__in=account_ids) | Q(taker_account_id__in=account_ids))
