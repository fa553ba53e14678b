"""Reads of the trading app: accounts, balances, orders, trades, positions, ledger, the book.

Every list a user sees is filtered to the accounts they may see (`accounts_visible_to`);
writes live in `trading.services`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, DecimalField, F, Min, Q, QuerySet, Sum
from django.utils import timezone

from marketdata.models import Instrument
from portal import rawsql
from portal.choices import Role
from portal.decimals import AMOUNT_UNIT, ZERO
from portal.errors import NotFoundError
from trading.choices import OPEN_STATUSES, Side
from trading.models import Balance, LedgerEntry, Order, Position, Trade, TradingAccount
from trading.positions import unrealized_pnl


def position_quantity(*, account_id: int, instrument_id: int) -> Decimal:
    quantity = (
        Position.objects.filter(account_id=account_id, instrument_id=instrument_id)
        .values_list("quantity", flat=True)
        .first()
    )
    return quantity if quantity is not None else ZERO


def open_order_count(*, account_id: int, up_to: int | None = None) -> int:
    """Open orders of the account; with `up_to`, counting stops there (a limit check needs no more)."""
    queryset = Order.objects.filter(account_id=account_id, status__in=OPEN_STATUSES)
    if up_to is not None:
        return queryset.values("pk")[:up_to].count()
    return queryset.count()


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


def first_trade_at(*, instrument_id: int) -> datetime | None:
    """When the instrument first traded (the earliest execution time), or None."""
    return Trade.objects.filter(instrument_id=instrument_id).aggregate(first=Min("executed_at"))["first"]


def trades_of_accounts(*, account_ids) -> QuerySet[Trade]:
    return Trade.objects.filter(Q(maker_account_id__in=account_ids) | Q(taker_account_id__in=account_ids))


def _visible_to(user, queryset: QuerySet, owner_lookup: str = "account__owner") -> QuerySet:
    """Operators see every row; anyone else only the rows of their own accounts."""
    if user.has_role_at_least(Role.OPERATOR):
        return queryset
    return queryset.filter(**{owner_lookup: user})


def accounts_visible_to(user) -> QuerySet[TradingAccount]:
    return _visible_to(user, TradingAccount.objects.select_related("owner", "venue"), owner_lookup="owner")


def account_stream_seqs(*, user) -> dict[int, tuple[int, int, int]]:
    """`user`'s own accounts with their private streams' counters (orders, fills, balances):
    private streams carry only the owner's accounts, whatever the user's role."""
    accounts = TradingAccount.objects.filter(owner=user)
    return {pk: seqs for pk, *seqs in accounts.values_list("pk", "orders_seq", "fills_seq", "balances_seq")}  # type: ignore[misc]


def orders_visible_to(user) -> QuerySet[Order]:
    return _visible_to(user, Order.objects.select_related("instrument", "account"))


def order_get_visible(*, user, order_id: int) -> Order:
    """The order, if `user` may see it; 404 otherwise (never 403: ids of others are not confirmed)."""
    order = orders_visible_to(user).filter(pk=order_id).first()
    if order is None:
        raise NotFoundError("not_found", f"No order #{order_id} among your orders.")
    return order


def order_get_by_client_id(*, user, client_order_id: str, account_id: int | None = None) -> Order:
    """The newest visible order with this client order id (the open one if there is one)."""
    queryset = orders_visible_to(user).filter(client_order_id=client_order_id)
    if account_id is not None:
        queryset = queryset.filter(account_id=account_id)
    order = queryset.order_by("-id").first()
    if order is None:
        raise NotFoundError("not_found", f"No order with client_order_id {client_order_id!r} among your orders.")
    return order


def account_get_visible(*, user, account_id: int) -> TradingAccount:
    account = accounts_visible_to(user).filter(pk=account_id).first()
    if account is None:
        raise NotFoundError("not_found", f"No trading account #{account_id} among your accounts.")
    return account


def account_for_orders(*, user, account_id: int) -> TradingAccount:
    """The account `user` may place orders on: their own (admins: any). 404 otherwise, so the
    ids of other users' accounts are never confirmed."""
    account = _account_by_id(account_id)
    if account is None or (account.owner_id != user.pk and not user.has_role_at_least(Role.ADMIN)):
        raise NotFoundError("not_found", f"No trading account #{account_id} among your accounts.")
    return account


def _account_by_id(account_id: int) -> TradingAccount | None:
    """One account by id without the query compiler (every order placed reads one, bench/README.md)."""
    if not 0 < account_id < 2**63:
        return None  # no such id can exist (and the database would refuse to compare it)
    rows = rawsql.issue(_account_by_id_sql(), [account_id]).fetchall()
    return rawsql.instances(TradingAccount, rows)[0] if rows else None


@functools.cache
def _account_by_id_sql() -> str:
    table = rawsql.quote(TradingAccount._meta.db_table)
    return f"SELECT {rawsql.columns(TradingAccount)} FROM {table} WHERE id = %s"  # noqa: S608 - names only


def account_default_for(user) -> TradingAccount | None:
    """The user's first active trading account (when a request names none)."""
    return TradingAccount.objects.filter(owner=user, is_active=True).order_by("id").first()


def trades_visible_to(user) -> QuerySet[Trade]:
    queryset = Trade.objects.select_related("instrument")
    if user.has_role_at_least(Role.OPERATOR):
        return queryset
    own = TradingAccount.objects.filter(owner=user).values("pk")
    return queryset.filter(Q(maker_account_id__in=own) | Q(taker_account_id__in=own))


def balances_visible_to(user) -> QuerySet[Balance]:
    return _visible_to(user, Balance.objects.select_related("asset", "account"))


def positions_visible_to(user) -> QuerySet[Position]:
    return _visible_to(user, Position.objects.select_related("instrument", "account"))


def ledger_visible_to(user) -> QuerySet[LedgerEntry]:
    return _visible_to(user, LedgerEntry.objects.select_related("asset"))


_AMOUNT = DecimalField(max_digits=28, decimal_places=8)


@dataclass(frozen=True)
class DepthLevel:
    price: Decimal
    quantity: Decimal
    orders: int


@dataclass(frozen=True)
class Depth:
    symbol: str
    sequence: int
    bids: list[DepthLevel]
    asks: list[DepthLevel]


def book_depth(*, instrument: Instrument, levels: int = 20) -> Depth:
    """Aggregated resting quantity per price level, best first (at most `levels` a side, from
    the book index), with the `book_seq` it stands at: the book stream's diffs numbered above
    it apply on top (ADR 0006).

    The sequence is read before and after the levels; equal, no transaction changed the book
    in between (each one that does adds to it), so the levels are exactly the book at that
    number. A busy book that keeps moving is read once more under the instrument's lock."""
    book = Order.objects.filter(instrument=instrument, status__in=OPEN_STATUSES, is_working=True)

    def side_levels(side: str, ordering: str) -> list[DepthLevel]:
        rows = (
            book.filter(side=side)
            .values("price")
            .annotate(
                quantity=Sum(
                    F("quantity") - F("executed_qty"), output_field=DecimalField(max_digits=28, decimal_places=8)
                ),
                orders=Count("id"),
            )
            .order_by(ordering)[:levels]
        )
        return [DepthLevel(row["price"], row["quantity"], row["orders"]) for row in rows]

    def sequence(*, lock: bool = False) -> int:
        rows = Instrument.objects.filter(pk=instrument.pk)
        return (rows.select_for_update(no_key=True) if lock else rows).values_list("book_seq", flat=True).get()

    def read(*, lock: bool = False) -> Depth:
        seq = sequence(lock=lock)
        bids, asks = side_levels(Side.BUY, "-price"), side_levels(Side.SELL, "price")
        return Depth(symbol=instrument.symbol, sequence=seq, bids=bids, asks=asks)

    for _ in range(_DEPTH_OPTIMISTIC_READS):
        depth = read()
        if sequence() == depth.sequence:
            return depth
    with transaction.atomic():
        return read(lock=True)


@dataclass(frozen=True)
class LadderLevel:
    price: Decimal
    quantity: Decimal
    total: Decimal


@dataclass(frozen=True)
class Ladder:
    """A depth ladder: each side best first with its cumulative size, and the spread."""

    bids: list[LadderLevel]
    asks: list[LadderLevel]
    spread: Decimal | None


def depth_ladder(depth: Depth) -> Ladder:
    def cumulative(levels: list[DepthLevel]) -> list[LadderLevel]:
        total, result = ZERO, []
        for level in levels:
            total += level.quantity
            result.append(LadderLevel(level.price, level.quantity, total))
        return result

    spread = depth.asks[0].price - depth.bids[0].price if depth.asks and depth.bids else None
    return Ladder(bids=cumulative(depth.bids), asks=cumulative(depth.asks), spread=spread)


#: Reads of the depth before it takes the instrument's lock to read a book that keeps changing.
_DEPTH_OPTIMISTIC_READS = 3


def recent_trades(*, instrument: Instrument, limit: int = 50) -> QuerySet[Trade]:
    return Trade.objects.filter(instrument=instrument).order_by("-id")[:limit]


def position_valuation(position: Position) -> dict[str, Decimal | None]:
    """Unrealized P&L and market value at the instrument's last trade price (reference price before any trade)."""
    last = position.instrument.last_price or position.instrument.reference_price
    return {
        "last_price": last,
        "unrealized_pnl": unrealized_pnl(
            quantity=position.quantity, average_price=position.average_price, last_price=last
        ),
        "market_value": (position.quantity * last).quantize(AMOUNT_UNIT),
    }
