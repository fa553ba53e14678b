"""Reconciliation: proves the ledger and the book keep every invariant of DESIGN §5.

Checks: each balance equals the sum of its ledger entries; nothing is negative; each asset's
venue-wide total equals deposits minus withdrawals (every other entry nets to zero); no
book is crossed; every open order holds exactly the lock its remainder needs and each
balance's `locked` is the sum of its open orders' locks; every order's executed quantity is
the sum of its trades and never above its quantity; every position's quantity is its net
traded quantity; every candle is what its trades make, recomputed from scratch, and
history from elsewhere ends before the first trade. Reads only;
`manage.py reconcile` prints the report.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection
from django.db.models import Sum

from marketdata.candles import Bar, bars_from_trades
from marketdata.history import history_fits
from marketdata.models import Asset, Candle, CandleOrigin, Instrument
from portal.decimals import ZERO
from trading.choices import OPEN_STATUSES, LedgerKind, OrderStatus, Side
from trading.engine import lock_asset_id, lock_required
from trading.models import Balance, LedgerEntry, Order, Position, Trade
from trading.selectors import first_trade_at


@dataclass(frozen=True)
class Break:
    check: str
    detail: str


@dataclass
class ReconcileReport:
    checked: dict[str, int] = field(default_factory=dict)
    breaks: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    def add(self, check: str, detail: str) -> None:
        self.breaks.append(Break(check, detail))


def _sum_by(queryset, keys: tuple[str, ...], *values: str) -> dict[tuple, list[Decimal]]:
    """Grouped sums computed exactly: in SQL on PostgreSQL, in Decimal on SQLite (whose SQL
    arithmetic on decimals is floating point)."""
    totals: dict[tuple, list[Decimal]] = defaultdict(lambda: [ZERO] * len(values))
    if connection.vendor == "postgresql":
        rows = queryset.order_by().values(*keys).annotate(**{f"s{i}": Sum(v) for i, v in enumerate(values)})
        for row in rows:
            totals[tuple(row[k] for k in keys)] = [row[f"s{i}"] or ZERO for i in range(len(values))]
        return totals
    for row in queryset.values_list(*keys, *values).iterator(chunk_size=5000):
        bucket = totals[tuple(row[: len(keys)])]
        for i, value in enumerate(row[len(keys) :]):
            bucket[i] += value
    return totals


def reconcile_run() -> ReconcileReport:
    report = ReconcileReport()
    _check_balances_match_ledger(report)
    _check_conservation(report)
    _check_books_not_crossed(report)
    _check_order_locks(report)
    _check_orders_match_trades(report)
    _check_positions_match_trades(report)
    _check_candles_match_trades(report)
    return report


def _check_balances_match_ledger(report: ReconcileReport) -> None:
    ledger = _sum_by(LedgerEntry.objects.all(), ("account_id", "asset_id"), "free_delta", "locked_delta")
    balances = {(b.account_id, b.asset_id): b for b in Balance.objects.all()}
    for key, balance in balances.items():
        free, locked = ledger.get(key, [ZERO, ZERO])
        if balance.free != free or balance.locked != locked:
            report.add(
                "balance_equals_ledger",
                f"account {key[0]} asset {key[1]}: balance free {balance.free} locked {balance.locked}, "
                f"ledger free {free} locked {locked}",
            )
        if balance.free < 0 or balance.locked < 0:
            report.add("balance_not_negative", f"account {key[0]} asset {key[1]}: {balance.free} / {balance.locked}")
    for key in set(ledger) - set(balances):
        report.add("balance_equals_ledger", f"account {key[0]} asset {key[1]}: ledger entries but no balance row")
    report.checked["balances"] = len(balances)


def _check_conservation(report: ReconcileReport) -> None:
    by_kind = _sum_by(LedgerEntry.objects.all(), ("asset_id", "kind"), "free_delta", "locked_delta")
    holdings = _sum_by(Balance.objects.all(), ("asset_id",), "free", "locked")
    codes = dict(Asset.objects.values_list("pk", "code"))
    for asset_id, code in codes.items():
        external = ZERO
        internal = ZERO
        for (asset, kind), (free, locked) in by_kind.items():
            if asset != asset_id:
                continue
            if kind in (LedgerKind.DEPOSIT, LedgerKind.WITHDRAWAL):
                external += free + locked
            else:
                internal += free + locked
        held = sum(holdings.get((asset_id,), [ZERO, ZERO]), ZERO)
        if internal != 0:
            report.add("conservation", f"{code}: trades, fees and locks net to {internal}, not 0")
        if held != external:
            report.add("conservation", f"{code}: accounts hold {held}, deposits − withdrawals = {external}")
    report.checked["assets"] = len(codes)


def _check_books_not_crossed(report: ReconcileReport) -> None:
    instruments = list(Instrument.objects.all())
    for instrument in instruments:
        book = Order.objects.filter(instrument=instrument, status__in=OPEN_STATUSES, is_working=True)
        best_bid = book.filter(side=Side.BUY).order_by("-price").values_list("price", flat=True).first()
        best_ask = book.filter(side=Side.SELL).order_by("price").values_list("price", flat=True).first()
        if best_bid is not None and best_ask is not None and best_bid >= best_ask:
            report.add("book_not_crossed", f"{instrument.symbol}: best bid {best_bid} ≥ best ask {best_ask}")
    report.checked["books"] = len(instruments)


def _check_order_locks(report: ReconcileReport) -> None:
    instruments = {i.pk: i for i in Instrument.objects.all()}
    held: dict[tuple[int, int], Decimal] = defaultdict(lambda: ZERO)
    count = 0
    for order in Order.objects.filter(status__in=OPEN_STATUSES).iterator(chunk_size=2000):
        count += 1
        instrument = instruments[order.instrument_id]
        required = lock_required(order, instrument)
        if order.locked_amount != required:
            report.add(
                "order_lock_exact",
                f"order {order.pk}: holds {order.locked_amount}, its remainder needs {required}",
            )
        held[(order.account_id, lock_asset_id(order, instrument))] += order.locked_amount
    for balance in Balance.objects.all():
        expected = held.pop((balance.account_id, balance.asset_id), ZERO)
        if balance.locked != expected:
            report.add(
                "locked_equals_open_orders",
                f"account {balance.account_id} asset {balance.asset_id}: locked {balance.locked}, "
                f"open orders hold {expected}",
            )
    for (account_id, asset_id), amount in held.items():
        report.add(
            "locked_equals_open_orders", f"account {account_id} asset {asset_id}: orders hold {amount}, no balance"
        )
    for order in Order.objects.exclude(status__in=OPEN_STATUSES).exclude(locked_amount=0).only("pk", "locked_amount"):
        report.add("order_lock_exact", f"closed order {order.pk} still holds {order.locked_amount}")
    report.checked["open_orders"] = count


def _check_orders_match_trades(report: ReconcileReport) -> None:
    traded: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for role in ("maker_order_id", "taker_order_id"):
        for (order_id,), (quantity,) in _sum_by(Trade.objects.all(), (role,), "quantity").items():
            traded[order_id] += quantity
    count = 0
    for order_id, quantity, executed, status in Order.objects.values_list(
        "pk", "quantity", "executed_qty", "status"
    ).iterator(chunk_size=5000):
        count += 1
        if executed != traded.get(order_id, ZERO):
            report.add("order_equals_trades", f"order {order_id}: executed {executed}, trades {traded.get(order_id)}")
        if quantity is not None and executed > quantity:
            report.add("order_not_overfilled", f"order {order_id}: executed {executed} of {quantity}")
        if status == OrderStatus.FILLED and quantity is not None and executed != quantity:
            report.add("order_filled_complete", f"order {order_id}: FILLED with {executed} of {quantity}")
    report.checked["orders"] = count


def _check_positions_match_trades(report: ReconcileReport) -> None:
    net: dict[tuple[int, int], Decimal] = defaultdict(lambda: ZERO)
    for role, buy_side in (("maker_account_id", Side.SELL), ("taker_account_id", Side.BUY)):
        # The maker bought when the aggressor sold, and the taker bought when it was the buyer.
        rows = _sum_by(Trade.objects.all(), (role, "instrument_id", "aggressor_side"), "quantity")
        for (account_id, instrument_id, aggressor), (quantity,) in rows.items():
            net[(account_id, instrument_id)] += quantity if aggressor == buy_side else -quantity
    positions = {(p.account_id, p.instrument_id): p.quantity for p in Position.objects.all()}
    for key in set(net) | set(positions):
        if positions.get(key, ZERO) != net.get(key, ZERO):
            report.add(
                "position_equals_trades",
                f"account {key[0]} instrument {key[1]}: position {positions.get(key)}, trades net {net.get(key)}",
            )
    report.checked["positions"] = len(positions)


def _check_candles_match_trades(report: ReconcileReport) -> None:
    """The candles the engine merged trade by trade equal the candles of all trades at once;
    history from elsewhere (backfill, import) ends before the instrument's first trade."""
    count = 0
    for instrument_id in Instrument.objects.values_list("pk", flat=True):
        trades = Trade.objects.filter(instrument_id=instrument_id).order_by("id")
        first_trade = first_trade_at(instrument_id=instrument_id)
        expected = bars_from_trades(
            trades.only("executed_at", "price", "quantity", "quote_quantity").iterator(chunk_size=5000)
        )
        stored = {}
        for candle in Candle.objects.filter(instrument_id=instrument_id).iterator(chunk_size=5000):
            count += 1
            if candle.origin == CandleOrigin.TRADES:
                stored[(candle.interval, candle.open_time)] = Bar.of_candle(candle)
            elif first_trade is not None and not history_fits(candle.open_time, candle.interval, first_trade):
                report.add(
                    "candle_history_before_trades",
                    f"instrument {instrument_id} {candle.interval} {candle.open_time:%Y-%m-%d %H:%M}: "
                    f"{candle.origin} candle not before the first trade ({first_trade:%Y-%m-%d %H:%M:%S})",
                )
        for key in sorted(set(expected) | set(stored)):
            if expected.get(key) != stored.get(key):
                report.add(
                    "candle_equals_trades",
                    f"instrument {instrument_id} {key[0]} {key[1]:%Y-%m-%d %H:%M}: "
                    f"stored {stored.get(key)}, from trades {expected.get(key)}",
                )
    report.checked["candles"] = count
