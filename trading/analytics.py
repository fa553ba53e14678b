"""Reads of a trader's analytics: the portfolio's value and allocation, and trading stats over a period.

Selectors only (nothing here writes). Every amount is a Decimal in the valuation currency
(`VALUATION_ASSET`); an amount that is in another asset is said to be so where it appears.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from django.db.models import Case, Count, DecimalField, F, Q, QuerySet, Sum, When
from django.db.models.lookups import GreaterThan, LessThan
from django.utils import timezone

from marketdata.models import Instrument
from portal.decimals import AMOUNT_DIGITS, AMOUNT_PLACES, AMOUNT_UNIT, ZERO
from portal.errors import DomainError, NotFoundError
from trading.choices import OrderStatus
from trading.models import Order, Trade, TradingAccount
from trading.selectors import account_default_for, account_get_visible, position_valuation

#: The currency portfolios are valued and P&L is totalled in: every listed pair is quoted in it.
VALUATION_ASSET = "USDT"
DEFAULT_PERIOD = timedelta(days=30)
#: The longest period stats are computed over (a leap year), so one request scans a bounded history.
MAX_PERIOD = timedelta(days=366)
RECENT_ORDERS = 10

_PERCENT_UNIT = Decimal("0.01")
_AMOUNT = DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)


def _percent(part: Decimal | int, whole: Decimal | int) -> Decimal | None:
    """`part` as a percentage of `whole`, two decimals; None when `whole` is zero (no share to speak of)."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(_PERCENT_UNIT, rounding=ROUND_HALF_EVEN)


def _mean(total: Decimal, count: int) -> Decimal | None:
    return (total / count).quantize(AMOUNT_UNIT, rounding=ROUND_HALF_EVEN) if count else None


def analytics_account(*, user, account_id: int | None) -> TradingAccount:
    """The account analytics are read for: the one named if `user` may see it (404 otherwise,
    operators see any), else the user's default account."""
    if account_id is not None:
        return account_get_visible(user=user, account_id=account_id)
    account = account_default_for(user)
    if account is None:
        raise NotFoundError("NO_ACCOUNT", "You have no trading account; open one first.")
    return account


@dataclass(frozen=True)
class Period:
    """Half-open: from `start` (included) to `end` (excluded)."""

    start: datetime
    end: datetime


def analytics_period(
    *, start: datetime | None = None, end: datetime | None = None, now: datetime | None = None
) -> Period:
    """The period stats cover: by default the last 30 days up to now; only `start` runs to now,
    only `end` starts 30 days before it. Refused with 400 when it ends before it starts
    (`bad_range`) or spans more than 366 days (`range_too_long`)."""
    end = end or now or timezone.now()
    start = start or end - DEFAULT_PERIOD
    if end < start:
        raise DomainError(
            "bad_range", "The period ends before it starts.", status=400, errors={"end": ["Must not be before start."]}
        )
    if end - start > MAX_PERIOD:
        raise DomainError(
            "range_too_long",
            f"The period spans more than {MAX_PERIOD.days} days; choose a shorter one.",
            status=400,
            errors={"start": [f"Must be at most {MAX_PERIOD.days} days before end."]},
        )
    return Period(start=start, end=end)


@dataclass(frozen=True)
class AssetHolding:
    """One asset the account holds, priced in the valuation currency (`price`, `value` and
    `allocation_pct` are None for an asset no pair prices in it)."""

    asset: str
    free: Decimal
    locked: Decimal
    total: Decimal
    price: Decimal | None
    value: Decimal | None
    allocation_pct: Decimal | None


@dataclass(frozen=True)
class PositionHolding:
    """A position at the instrument's last price; amounts in the pair's `quote_asset`."""

    symbol: str
    quote_asset: str
    quantity: Decimal
    average_price: Decimal
    last_price: Decimal
    market_value: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees_paid: Decimal


@dataclass(frozen=True)
class PortfolioSummary:
    account_id: int
    valuation_asset: str
    as_of: datetime
    total_value: Decimal
    assets: list[AssetHolding]
    positions: list[PositionHolding]
    realized_pnl: Decimal
    unrealized_pnl: Decimal


def valuation_prices(*, venue_id: int) -> dict[int, Decimal]:
    """Price in the valuation currency per asset id: 1 for the currency itself, and for each base
    asset of a pair quoted in it, the pair's last trade price (its reference price before any trade)."""
    prices: dict[int, Decimal] = {}
    pairs = Instrument.objects.filter(venue_id=venue_id, quote__code=VALUATION_ASSET).order_by("symbol")
    for base_id, quote_id, last_price, reference_price in pairs.values_list(
        "base_id", "quote_id", "last_price", "reference_price"
    ):
        prices[quote_id] = Decimal(1)
        prices.setdefault(base_id, last_price if last_price is not None else reference_price)
    return prices


def portfolio_summary(*, account: TradingAccount) -> PortfolioSummary:
    """What the account holds and what it is worth now.

    Each asset with a non-zero balance (free + locked) is valued at `valuation_prices`. An asset
    that no pair of the venue quotes in the valuation currency is listed with price, value and
    allocation null and left out of `total_value` (the allocation shares add up over the valued
    assets only). Positions carry average price, market value and realized / unrealized P&L at
    the last price (`position_valuation`); the P&L totals add up the positions of pairs quoted in
    the valuation currency.
    """
    prices = valuation_prices(venue_id=account.venue_id)
    balances = [
        balance
        for balance in account.balances.select_related("asset").order_by("asset__code")
        if balance.free + balance.locked != 0
    ]
    values: list[Decimal | None] = []
    for balance in balances:
        price = prices.get(balance.asset_id)
        values.append(None if price is None else (balance.total * price).quantize(AMOUNT_UNIT, ROUND_HALF_EVEN))
    total_value = sum((value for value in values if value is not None), ZERO)
    assets = [
        AssetHolding(
            asset=balance.asset.code,
            free=balance.free,
            locked=balance.locked,
            total=balance.total,
            price=prices.get(balance.asset_id),
            value=value,
            allocation_pct=None if value is None else _percent(value, total_value),
        )
        for balance, value in zip(balances, values, strict=True)
    ]
    positions = []
    realized, unrealized = ZERO, ZERO
    for position in account.positions.select_related("instrument__quote").order_by("instrument__symbol"):
        valuation = position_valuation(position)
        holding = PositionHolding(
            symbol=position.instrument.symbol,
            quote_asset=position.instrument.quote.code,
            quantity=position.quantity,
            average_price=position.average_price,
            last_price=valuation["last_price"] or ZERO,
            market_value=valuation["market_value"] or ZERO,
            realized_pnl=position.realized_pnl,
            unrealized_pnl=valuation["unrealized_pnl"] or ZERO,
            fees_paid=position.fees_paid,
        )
        positions.append(holding)
        if holding.quote_asset == VALUATION_ASSET:
            realized += holding.realized_pnl
            unrealized += holding.unrealized_pnl
    return PortfolioSummary(
        account_id=account.pk,
        valuation_asset=VALUATION_ASSET,
        as_of=timezone.now(),
        total_value=total_value,
        assets=sorted(assets, key=lambda holding: (holding.value is None, -(holding.value or ZERO), holding.asset)),
        positions=positions,
        realized_pnl=realized,
        unrealized_pnl=unrealized,
    )


@dataclass(frozen=True)
class OrderCounts:
    """Orders created in the period by their status now (the counts add up to `total`: an order
    canceled after a partial fill counts as canceled, `partially_filled` ones are still open).
    `fill_ratio_pct` is the share of them that filled completely."""

    total: int
    new: int
    partially_filled: int
    filled: int
    canceled: int
    rejected: int
    expired: int
    fill_ratio_pct: Decimal | None


@dataclass(frozen=True)
class SymbolStats:
    """The account's trades of one pair in the period; amounts in its `quote_asset`."""

    symbol: str
    quote_asset: str
    trade_count: int
    volume: Decimal
    fees: Decimal
    realized_pnl: Decimal


@dataclass(frozen=True)
class TradingStats:
    account_id: int
    valuation_asset: str
    start: datetime
    end: datetime
    orders: OrderCounts
    trade_count: int
    volume: Decimal
    fees: Decimal
    realized_pnl: Decimal
    net_realized_pnl: Decimal
    winning_trades: int
    losing_trades: int
    win_rate_pct: Decimal | None
    average_win: Decimal | None
    average_loss: Decimal | None
    unrealized_pnl: Decimal
    by_symbol: list[SymbolStats]


def _order_counts(*, account: TradingAccount, period: Period) -> OrderCounts:
    counts = Order.objects.filter(account=account, created_at__gte=period.start, created_at__lt=period.end).aggregate(
        total=Count("id"), **{status.lower(): Count("id", filter=Q(status=status)) for status in OrderStatus.values}
    )
    return OrderCounts(
        total=counts["total"],
        new=counts["new"],
        partially_filled=counts["partially_filled"],
        filled=counts["filled"],
        canceled=counts["canceled"],
        rejected=counts["rejected"],
        expired=counts["expired"],
        fill_ratio_pct=_percent(counts["filled"], counts["total"]),
    )


def _own_side(account: TradingAccount, field: str) -> Case:
    """The account's side of a trade's `maker_<field>` / `taker_<field>` (a trade never has the
    same account on both sides, so exactly one of them is the account's)."""
    return Case(
        When(maker_account_id=account.pk, then=F(f"maker_{field}")), default=F(f"taker_{field}"), output_field=_AMOUNT
    )


def _trades_in(*, account: TradingAccount, period: Period) -> QuerySet[Trade]:
    return Trade.objects.filter(
        Q(maker_account_id=account.pk) | Q(taker_account_id=account.pk),
        executed_at__gte=period.start,
        executed_at__lt=period.end,
    )


def trading_stats(
    *, account: TradingAccount, start: datetime | None = None, end: datetime | None = None
) -> TradingStats:
    """The account's trading over [start, end) (defaults and limits: `analytics_period`).

    Orders count by creation time, trades by execution time. Each trade counts for the
    account's side of it (maker or taker: its fee and its realized P&L), so a trade between
    two accounts of one user counts once for each of them. Volume is the trades' quote amount.

    A *closing trade* is one that reduced the account's position in the pair; only those realize
    P&L, so a trade with realized P&L > 0 is a win and one with < 0 a loss. The win rate is
    wins / (wins + losses): a close at exactly the average price (realized 0) cannot be told
    from an opening fill in the stored trades, and neither counts. `average_loss` is negative.

    Amount totals (volume, fees, P&L, wins and losses) cover pairs quoted in the valuation
    currency; `trade_count` and `by_symbol` cover every pair, each in its own quote asset.
    `unrealized_pnl` is now's, not the period's.
    """
    period = analytics_period(start=start, end=end)
    trades = _trades_in(account=account, period=period)
    own_pnl, own_fee = _own_side(account, "realized_pnl"), _own_side(account, "fee")
    valued = Q(instrument__quote__code=VALUATION_ASSET)
    wins = Q(GreaterThan(own_pnl, ZERO), instrument__quote__code=VALUATION_ASSET)
    losses = Q(LessThan(own_pnl, ZERO), instrument__quote__code=VALUATION_ASSET)
    totals = trades.aggregate(
        trade_count=Count("id"),
        volume=Sum("quote_quantity", filter=valued),
        fees=Sum(own_fee, filter=valued),
        realized_pnl=Sum(own_pnl, filter=valued),
        winning_trades=Count("id", filter=wins),
        losing_trades=Count("id", filter=losses),
        won=Sum(own_pnl, filter=wins),
        lost=Sum(own_pnl, filter=losses),
    )
    by_symbol = (
        trades.values("instrument__symbol", "instrument__quote__code")
        .annotate(trade_count=Count("id"), volume=Sum("quote_quantity"), fees=Sum(own_fee), realized=Sum(own_pnl))
        .order_by("instrument__symbol")
    )
    winning, losing = totals["winning_trades"], totals["losing_trades"]
    realized, fees = totals["realized_pnl"] or ZERO, totals["fees"] or ZERO
    return TradingStats(
        account_id=account.pk,
        valuation_asset=VALUATION_ASSET,
        start=period.start,
        end=period.end,
        orders=_order_counts(account=account, period=period),
        trade_count=totals["trade_count"],
        volume=totals["volume"] or ZERO,
        fees=fees,
        realized_pnl=realized,
        net_realized_pnl=realized - fees,
        winning_trades=winning,
        losing_trades=losing,
        win_rate_pct=_percent(winning, winning + losing),
        average_win=_mean(totals["won"] or ZERO, winning),
        average_loss=_mean(totals["lost"] or ZERO, losing),
        unrealized_pnl=_unrealized_pnl_now(account=account),
        by_symbol=[
            SymbolStats(
                symbol=row["instrument__symbol"],
                quote_asset=row["instrument__quote__code"],
                trade_count=row["trade_count"],
                volume=row["volume"],
                fees=row["fees"],
                realized_pnl=row["realized"],
            )
            for row in by_symbol
        ],
    )


def _unrealized_pnl_now(*, account: TradingAccount) -> Decimal:
    positions = account.positions.filter(instrument__quote__code=VALUATION_ASSET).exclude(quantity=0)
    return sum(
        (position_valuation(position)["unrealized_pnl"] or ZERO for position in positions.select_related("instrument")),
        ZERO,
    )


def recent_orders(*, account: TradingAccount, limit: int = RECENT_ORDERS) -> QuerySet[Order]:
    return Order.objects.filter(account=account).select_related("instrument").order_by("-id")[:limit]
