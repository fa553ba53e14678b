"""The matching engine: one `MatchingSession` per instrument per transaction.

A session holds the instrument's lock (a `SELECT … FOR NO KEY UPDATE` of its row, taken
inside the caller's transaction, so matching on one instrument is serialized across every
process while other instruments match in parallel). It reads resting orders from the book
index page by page, keeps every order it touched in an identity map, and writes everything
at `flush()`: trades, changed orders, balances and ledger entries (in one global lock order,
see `trading.ledger`), positions, the instrument's last price and sequence, the audit events,
and the events to publish after commit.

Rules (DESIGN §5): price-time priority; trades at the resting order's price; fees in the
quote asset (maker rate for the resting order, taker rate for the aggressor, never above the
taker rate in force when an order was placed); self-trade prevention per the taker's mode;
FOK fills entirely or not at all; market orders never execute beyond the price band and
expire what they cannot fill; stop orders trigger on the last trade price.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone

from audit.context import AuditContext, audit_context_get
from audit.services import AuditSpec, audit_append_issue, audit_chain_claim
from marketdata.candles import candles_update_issue
from marketdata.models import Asset, Instrument
from portal import rawsql
from portal.decimals import ZERO, ceil_amount, ceil_to, floor_amount, floor_to
from portal.errors import NotFoundError
from riskmgmt.checks import PreTradeSnapshot
from trading.book import is_resting, level_sizes_issue, levels_touched
from trading.choices import (
    MARKET_TYPES,
    OPEN_STATUSES,
    AccountKind,
    LedgerKind,
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)
from trading.events import (
    TradingEvent,
    balance_event,
    book_event,
    candles_event,
    fill_events,
    order_event,
    private_seq_issue,
    send_after_commit,
    trade_json,
    trades_event,
)
from trading.ledger import AppliedBalance, BalanceChange, LedgerBatch
from trading.models import Order, Position, Trade, TradingAccount
from trading.positions import PositionState, position_after_fill

BOOK_FIRST_PAGE = 8
BOOK_MAX_PAGE = 1000
#: Stop orders triggering stop orders: a bound on the cascade within one transaction.
MAX_TRIGGER_ROUNDS = 100
ENGINE_ACTOR = "engine"

_POSITION_FIELDS = ("quantity", "average_price", "realized_pnl", "fees_paid", "updated_at")
_INSTRUMENT_UPDATE_FIELDS = ("order_seq", "last_price", "last_trade_at", "tape_seq", "book_seq")
_ORDER_UPDATE_FIELDS = (
    "status",
    "executed_qty",
    "executed_quote",
    "fees_paid",
    "locked_amount",
    "is_working",
    "priority",
    "expire_reason",
    "updated_at",
    "done_at",
)


def opposite(side: str) -> str:
    return Side.SELL if side == Side.BUY else Side.BUY


def lock_asset_id(order: Order, instrument: Instrument) -> int:
    """Buys lock the quote asset, sells the base asset."""
    return instrument.quote_id if order.side == Side.BUY else instrument.base_id


def lock_required(order: Order, instrument: Instrument) -> Decimal:
    """What `order` must hold locked for what it may still spend, fees included.

    A buy by base quantity holds lock_price × remaining × (1 + max fee rate), rounded up to
    the storage unit; a buy by quote amount holds the amount plus its maximum fee; a sell
    holds its remaining base quantity (by quote amount: what the amount buys at lock_price).
    """
    if order.side == Side.BUY:
        if order.quantity is None:
            left = order.quote_quantity - order.executed_quote
            return left + ceil_amount(left * order.max_fee_rate)
        return ceil_amount(order.lock_price * order.remaining_qty * (1 + order.max_fee_rate))
    if order.quantity is None:
        left = order.quote_quantity - order.executed_quote
        return ceil_to(left / order.lock_price, instrument.lot_size)
    return order.remaining_qty


def stop_condition_met(order: Order, last_price: Decimal) -> bool:
    """Stop-loss sells and take-profit buys trigger at or below the stop price; the others at or above."""
    falls = (order.type in (OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT)) == (order.side == Side.SELL)
    return last_price <= order.stop_price if falls else last_price >= order.stop_price


def _open_statuses_sql() -> str:
    return ", ".join(f"'{status}'" for status in OPEN_STATUSES)


@functools.cache
def _book_sql(side: str, price_limited: bool, paged: bool, limit: int) -> str:
    """One page of one side of the book. The side and statuses are literals, so that a prepared
    (generic) plan still proves the predicate of the partial index: `order_book_idx` for asks,
    `order_book_bids_idx` for bids."""
    q = rawsql.quote
    ascending = side == Side.SELL
    price, priority = q("price"), q("priority")
    where = [
        f"{q('instrument_id')} = %s",
        f"{q('side')} = '{Side(side).value}'",
        f"{q('status')} IN ({_open_statuses_sql()})",
        q("is_working"),
    ]
    if price_limited:
        where.append(f"{price} <= %s" if ascending else f"{price} >= %s")
    if paged:
        beyond = ">" if ascending else "<"
        where.append(f"({price} {beyond} %s OR ({price} = %s AND {priority} > %s))")
    direction = "ASC" if ascending else "DESC"
    return (
        f"SELECT {rawsql.columns(Order)} FROM {q(Order._meta.db_table)} "  # noqa: S608 - names only
        f"WHERE {' AND '.join(where)} ORDER BY {price} {direction}, {priority} ASC LIMIT {int(limit)}"
    )


@functools.cache
def _waiting_stops_sql() -> str:
    """Stop orders the last price has reached (stop-loss sells and take-profit buys at or
    below their stop price, the others at or above), oldest first; `order_pending_stop_idx`."""
    q = rawsql.quote
    stop_loss = f"({q('type')} IN ('{OrderType.STOP_LOSS}', '{OrderType.STOP_LOSS_LIMIT}'))"
    take_profit = f"({q('type')} IN ('{OrderType.TAKE_PROFIT}', '{OrderType.TAKE_PROFIT_LIMIT}'))"
    sell, buy, stop = f"{q('side')} = '{Side.SELL}'", f"{q('side')} = '{Side.BUY}'", q("stop_price")
    reached = (
        f"({stop_loss} AND {sell} AND {stop} >= %s) OR ({take_profit} AND {buy} AND {stop} >= %s) "
        f"OR ({stop_loss} AND {buy} AND {stop} <= %s) OR ({take_profit} AND {sell} AND {stop} <= %s)"
    )
    return (
        f"SELECT {rawsql.columns(Order)} FROM {q(Order._meta.db_table)} "  # noqa: S608 - names only
        f"WHERE {q('instrument_id')} = %s AND {q('status')} IN ({_open_statuses_sql()}) "
        f"AND NOT {q('is_working')} AND ({reached}) ORDER BY {q('priority')}"
    )


@dataclass
class Fill:
    maker: Order
    quantity: Decimal


@dataclass
class ExpireMaker:
    maker: Order


@dataclass
class MatchPlan:
    steps: list[Fill | ExpireMaker] = field(default_factory=list)
    #: Why matching stopped short of filling the taker: "", "SELF_TRADE_PREVENTION",
    #: "NO_LIQUIDITY" (book exhausted within the price limit), or "QUOTE_EXHAUSTED" (a quote
    #: amount too small for another lot: the order is done).
    stop_reason: str = ""

    @property
    def complete(self) -> bool:
        return self.stop_reason in ("", "QUOTE_EXHAUSTED")


class MatchingSession:
    """The engine's work on one instrument inside one transaction (see the module docstring)."""

    def __init__(self, instrument: Instrument, *, actor: Any, batch: LedgerBatch | None = None):
        self.instrument = instrument
        self.actor = actor
        self.batch = batch if batch is not None else LedgerBatch()
        self.now = timezone.now()
        self._orders: dict[int, Order] = {}
        self._dirty: dict[int, Order] = {}
        self._trades: list[Trade] = []
        #: The request each trade's aggressor came from: its fill is recorded with that context.
        self._trade_contexts: list[AuditContext] = []
        self._positions: dict[int, Position] = {}
        self._audit: list[AuditSpec] = []
        self._events: list[TradingEvent] = []
        self._fee_account_id: int | None = None
        self._price_moved = False
        self._instrument_changed = False
        self._new_order_ids: set[int] = set()
        #: Who placed each new order, and from which request (a batch holds several callers').
        self._placed_by: dict[int, tuple[Any, AuditContext]] = {}
        self._rejected: list[AuditSpec] = []
        #: Orders that rested in the book when the session first saw them: the book levels
        #: they leave or shrink change even when they do not rest any more.
        self._resting_before: set[int] = set()

    # -- lock and identity map ------------------------------------------------------------

    @classmethod
    def open(cls, instrument: int | str, *, actor: Any, batch: LedgerBatch | None = None) -> MatchingSession:
        """Take the instrument's lock (until the transaction ends) and start a session on it.
        `instrument` is its id, or its symbol (any case; an unknown one is 404 UNKNOWN_SYMBOL).

        One statement: the instrument's row locked, its base and quote assets, and the id of
        the venue's fee account."""
        by_symbol = isinstance(instrument, str)
        row = rawsql.issue(_lock_sql(by_symbol), [instrument]).fetchone()
        if row is None:
            raise NotFoundError("UNKNOWN_SYMBOL", f"No instrument {instrument!r}.")
        widths = [rawsql.column_count(Instrument), rawsql.column_count(Asset)]
        (locked,) = rawsql.instances(Instrument, [row[: widths[0]]])
        (locked.base,) = rawsql.instances(Asset, [row[widths[0] : widths[0] + widths[1]]])
        (locked.quote,) = rawsql.instances(Asset, [row[widths[0] + widths[1] : -1]])
        session = cls(locked, actor=actor, batch=batch)
        session._fee_account_id = row[-1]
        return session

    def adopt(self, order: Order) -> Order:
        """The session's copy of `order` (the first one seen wins: it carries this transaction's changes)."""
        known = self._orders.get(order.pk)
        if known is not None:
            return known
        order.instrument = self.instrument
        self._orders[order.pk] = order
        if order.pk not in self._new_order_ids and is_resting(order):
            self._resting_before.add(order.pk)
        return order

    def order_get(self, order_id: int) -> Order | None:
        if order_id in self._orders:
            return self._orders[order_id]
        order = Order.objects.filter(pk=order_id, instrument_id=self.instrument.pk).first()
        return self.adopt(order) if order is not None else None

    def next_priority(self) -> int:
        self.instrument.order_seq += 1
        self._instrument_changed = True
        return self.instrument.order_seq

    def _touch(self, order: Order) -> None:
        order.updated_at = self.now
        self._dirty[order.pk] = order

    # -- the book ------------------------------------------------------------------------

    def book(self, side: str, *, price_limit: Decimal | None = None, exclude_id: int | None = None) -> Iterator[Order]:
        """Resting orders of `side` in priority order (best price, then time), optionally only
        those at `price_limit` or better, as the session's copies; pages through the book index,
        a small first page (most orders trade with the first one or two) then larger ones."""
        after: tuple[Decimal, int] | None = None
        page_size = BOOK_FIRST_PAGE
        while True:
            params: list[Any] = [self.instrument.pk]
            if price_limit is not None:
                params.append(price_limit)
            if after is not None:
                params += [after[0], after[0], after[1]]
            sql = _book_sql(side, price_limit is not None, after is not None, page_size)
            rows = rawsql.instances(Order, rawsql.issue(sql, params).fetchall())
            for row in rows:
                order = self.adopt(row)
                if order.pk != exclude_id and order.is_open and order.is_working:
                    yield order
            if len(rows) < page_size:
                return
            after = (rows[-1].price, rows[-1].priority)  # type: ignore[assignment]
            page_size = min(page_size * 5, BOOK_MAX_PAGE)

    def best_price(self, side: str) -> Decimal | None:
        return next((order.price for order in self.book(side)), None)

    # -- matching ------------------------------------------------------------------------

    def plan(self, taker: Order, *, price_limit: Decimal | None) -> MatchPlan:
        """What matching `taker` would do, without changing anything (FOK decides on it)."""
        plan = MatchPlan()
        lot = self.instrument.lot_size
        remaining_qty = taker.remaining_qty
        if taker.quantity is None and taker.side == Side.SELL:
            remaining_qty = taker.locked_amount  # a sell by quote amount sells at most what it locked
        remaining_quote = None if taker.quote_quantity is None else taker.quote_quantity - taker.executed_quote
        for maker in self.book(opposite(taker.side), price_limit=price_limit, exclude_id=taker.pk):
            if maker.account_id == taker.account_id:
                if taker.stp_mode in (SelfTradePrevention.EXPIRE_MAKER, SelfTradePrevention.EXPIRE_BOTH):
                    plan.steps.append(ExpireMaker(maker))
                if taker.stp_mode == SelfTradePrevention.EXPIRE_MAKER:
                    continue
                plan.stop_reason = "SELF_TRADE_PREVENTION"
                return plan
            quantity = maker.remaining_qty
            if remaining_qty is not None:
                quantity = min(quantity, remaining_qty)
            if remaining_quote is not None:
                affordable = floor_to(remaining_quote / maker.price, lot)
                if affordable <= 0:
                    plan.stop_reason = "QUOTE_EXHAUSTED"
                    return plan
                quantity = min(quantity, affordable)
            plan.steps.append(Fill(maker, quantity))
            if remaining_qty is not None:
                remaining_qty -= quantity
                if remaining_qty == 0:
                    if taker.quantity is None:
                        plan.stop_reason = "QUOTE_EXHAUSTED"
                    return plan
            if remaining_quote is not None:
                remaining_quote -= quantity * maker.price
                if quantity < maker.remaining_qty or remaining_quote == 0:
                    # The amount, not the book, ran out: what is left buys less than one more lot here.
                    plan.stop_reason = "QUOTE_EXHAUSTED"
                    return plan
        plan.stop_reason = "NO_LIQUIDITY"
        return plan

    def execute(self, taker: Order) -> None:
        """Match a working order against the book, then rest, expire or complete it."""
        price_limit = self.execution_price_limit(taker)
        plan = self.plan(taker, price_limit=price_limit)
        if taker.time_in_force == TimeInForce.FOK and not plan.complete:
            self.finish(taker, OrderStatus.EXPIRED, expire_reason="FOK_NOT_FILLED")
            return
        fills = [step for step in plan.steps if isinstance(step, Fill)]
        if fills:
            self._positions_load({taker.account_id, *(step.maker.account_id for step in fills)})
        for step in plan.steps:
            if isinstance(step, ExpireMaker):
                self.finish(step.maker, OrderStatus.EXPIRED, expire_reason="SELF_TRADE_PREVENTION")
            else:
                self.fill(taker=taker, maker=step.maker, quantity=step.quantity)
        if (taker.quantity is not None and taker.remaining_qty == 0) or plan.stop_reason == "QUOTE_EXHAUSTED":
            self.finish(taker, OrderStatus.FILLED)
        elif plan.stop_reason == "SELF_TRADE_PREVENTION":
            self.finish(taker, OrderStatus.EXPIRED, expire_reason="SELF_TRADE_PREVENTION")
        elif taker.type in MARKET_TYPES:
            self.finish(taker, OrderStatus.EXPIRED, expire_reason="NO_LIQUIDITY")
        elif taker.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            self.finish(taker, OrderStatus.EXPIRED, expire_reason="IOC_REMAINDER")
        else:
            self._release_excess(taker)

    def execution_price_limit(self, order: Order) -> Decimal | None:
        """The worst price `order` may trade at: its limit price, or for market execution the
        edge of the price band (and never beyond the price its funds were locked at)."""
        if order.type not in MARKET_TYPES:
            return order.price
        from riskmgmt.checks import limits_effective, price_band

        band = limits_effective(account_id=order.account_id, instrument_id=self.instrument.pk).price_band_pct
        low, high = price_band(reference_price=self.instrument.reference_price, band_pct=band)
        tick = self.instrument.tick_size
        if order.side == Side.BUY:
            limit = floor_to(high, tick)
            return min(limit, order.lock_price) if order.lock_price is not None else limit
        limit = ceil_to(low, tick)
        return max(limit, order.lock_price) if order.lock_price is not None and order.quantity is None else limit

    def fill(self, *, taker: Order, maker: Order, quantity: Decimal) -> Trade:
        """One trade at the maker's price: orders, balances, fees, positions."""
        instrument = self.instrument
        price = maker.price
        notional = quantity * price
        maker_fee = floor_amount(notional * min(instrument.maker_fee_rate, maker.max_fee_rate))
        taker_fee = floor_amount(notional * min(instrument.taker_fee_rate, taker.max_fee_rate))
        trade = Trade(
            instrument=instrument,
            price=price,
            quantity=quantity,
            quote_quantity=notional,
            aggressor_side=taker.side,
            maker_order=maker,
            taker_order=taker,
            maker_account_id=maker.account_id,
            taker_account_id=taker.account_id,
            maker_fee=maker_fee,
            taker_fee=taker_fee,
            executed_at=self.now,
        )
        for order, fee, role in ((maker, maker_fee, "maker"), (taker, taker_fee, "taker")):
            realized = self._settle(order=order, trade=trade, quantity=quantity, notional=notional, fee=fee)
            setattr(trade, f"{role}_realized_pnl", realized)
        self._credit_fee_account(trade, maker_fee + taker_fee)
        self._trades.append(trade)
        self._trade_contexts.append(audit_context_get())
        instrument.last_price = price
        instrument.last_trade_at = self.now
        self._price_moved = True
        self._instrument_changed = True
        if maker.remaining_qty == 0:
            self.finish(maker, OrderStatus.FILLED)
        else:
            maker.status = OrderStatus.PARTIALLY_FILLED
            self._release_excess(maker)
        if taker.status == OrderStatus.NEW:
            taker.status = OrderStatus.PARTIALLY_FILLED
        return trade

    def _settle(self, *, order: Order, trade: Trade, quantity: Decimal, notional: Decimal, fee: Decimal) -> Decimal:
        instrument = self.instrument
        order.executed_qty += quantity
        order.executed_quote += notional
        order.fees_paid += fee
        side_reason = f"{order.side} {quantity} {instrument.symbol} @ {trade.price}"

        def book(asset_id: int, kind: str, *, free: Decimal = ZERO, locked: Decimal = ZERO) -> None:
            reason = "fee" if kind == LedgerKind.FEE else side_reason
            self.batch.add(BalanceChange(order.account_id, asset_id, kind, free, locked, reason, order, trade))

        if order.side == Side.BUY:
            # The buyer pays price × quantity and its fee from the quote it locked, and receives the base.
            order.locked_amount -= notional + fee
            book(instrument.quote_id, LedgerKind.TRADE, locked=-notional)
            book(instrument.quote_id, LedgerKind.FEE, locked=-fee)
            book(instrument.base_id, LedgerKind.TRADE, free=quantity)
        else:
            # The seller delivers the base it locked, and receives the quote less its fee.
            order.locked_amount -= quantity
            book(instrument.base_id, LedgerKind.TRADE, locked=-quantity)
            book(instrument.quote_id, LedgerKind.TRADE, free=notional)
            book(instrument.quote_id, LedgerKind.FEE, free=-fee)
        self._touch(order)
        position = self._position(order.account_id)
        signed = quantity if order.side == Side.BUY else -quantity
        state, realized = position_after_fill(
            PositionState(position.quantity, position.average_price, position.realized_pnl),
            signed_qty=signed,
            price=trade.price,
        )
        position.quantity, position.average_price, position.realized_pnl = (
            state.quantity,
            state.average_price,
            state.realized_pnl,
        )
        position.fees_paid += fee
        return realized

    def _credit_fee_account(self, trade: Trade, amount: Decimal) -> None:
        if not amount:
            return
        if self._fee_account_id is None:
            raise TradingAccount.DoesNotExist(f"The venue of {self.instrument.symbol} has no fee account.")
        self.batch.add(
            BalanceChange(
                self._fee_account_id,
                self.instrument.quote_id,
                LedgerKind.FEE,
                free_delta=amount,
                reason=f"fees of trade on {self.instrument.symbol}",
                trade=trade,
            )
        )

    def _positions_load(self, account_ids: set[int]) -> None:
        """Read the positions of `account_ids` on this instrument not yet in the session, in one query."""
        missing = sorted(account_ids - self._positions.keys())
        if not missing:
            return
        rows = rawsql.issue(_positions_sql(len(missing)), [self.instrument.pk, *missing]).fetchall()
        found = {position.account_id: position for position in rawsql.instances(Position, rows)}
        for account_id in missing:
            self._positions[account_id] = found.get(account_id) or Position(
                account_id=account_id, instrument=self.instrument
            )

    def _position(self, account_id: int) -> Position:
        self._positions_load({account_id})
        return self._positions[account_id]

    # -- order life ------------------------------------------------------------------------

    def lock_funds(self, order: Order) -> None:
        """Book the lock of a new order's `locked_amount` (set before its row was inserted)."""
        amount = order.locked_amount
        self.batch.add(
            BalanceChange(
                order.account_id,
                lock_asset_id(order, self.instrument),
                LedgerKind.LOCK,
                free_delta=-amount,
                locked_delta=amount,
                reason=f"lock for order #{order.pk}",
                order=order,
            )
        )

    def _unlock(self, order: Order, amount: Decimal, reason: str) -> None:
        if amount <= 0:
            return
        order.locked_amount -= amount
        self.batch.add(
            BalanceChange(
                order.account_id,
                lock_asset_id(order, self.instrument),
                LedgerKind.UNLOCK,
                free_delta=amount,
                locked_delta=-amount,
                reason=reason,
                order=order,
            )
        )
        self._touch(order)

    def _release_excess(self, order: Order) -> None:
        """Keep exactly what the rest of a working order needs locked; free the rest."""
        self._unlock(order, order.locked_amount - lock_required(order, self.instrument), f"order #{order.pk} filled")

    def finish(self, order: Order, status: str, *, expire_reason: str = "") -> None:
        """End an order's life: set its final status and unlock whatever it still holds."""
        order.status = status
        order.expire_reason = expire_reason
        order.done_at = self.now
        self._unlock(order, order.locked_amount, f"order #{order.pk} {status.lower()}")
        self._touch(order)
        if order.pk not in self._new_order_ids and status == OrderStatus.EXPIRED:
            self._audit.append(
                AuditSpec(action="order.expire", actor=ENGINE_ACTOR, target=order, after={"reason": expire_reason})
            )

    def enter(self, order: Order, *, actor: Any = None) -> None:
        """A new order (already inserted, funds locked) goes to work: it matches now, or,
        for a stop order, waits for its trigger. `actor` placed it (default: the session's)."""
        self._new_order_ids.add(order.pk)
        self._placed_by[order.pk] = (actor if actor is not None else self.actor, audit_context_get())
        self.adopt(order)
        if order.is_working:
            self.execute(order)
        self.trigger_stops()

    def record_rejection(self, order: Order, *, message: str, actor: Any) -> None:
        """A refused order, already stored as REJECTED: audit it and publish it with the rest."""
        self._rejected.append(
            AuditSpec(
                action="order.reject",
                actor=actor,
                target=order,
                after={**order_audit_summary(order), "message": message},
                context=audit_context_get(),
            )
        )
        self._events.append(order_event(order))

    def unwritten(self, snapshot: PreTradeSnapshot, *, account_id: int, lock_asset_id: int) -> PreTradeSnapshot:
        """`snapshot` (read from the database) as it stands once this session's unwritten work
        counts: the free balance its balance changes will move, the account's position after
        its fills, the open orders it closed and the P&L its trades realized. The pre-trade
        checks of an order see the orders entered before it in the same batch."""
        position = self._positions.get(account_id)
        closed = sum(1 for order in self._dirty.values() if order.account_id == account_id and not order.is_open)
        realized = sum(
            (trade.maker_realized_pnl for trade in self._trades if trade.maker_account_id == account_id), ZERO
        ) + sum((trade.taker_realized_pnl for trade in self._trades if trade.taker_account_id == account_id), ZERO)
        return dataclasses.replace(
            snapshot,
            free_balance=snapshot.free_balance + self.batch.pending_free(account_id, lock_asset_id),
            position_qty=position.quantity if position is not None else snapshot.position_qty,
            open_orders_closed_unwritten=closed,
            realized_pnl_unwritten=realized,
        )

    def cancel(self, order: Order, *, reason: str) -> None:
        self.finish(order, OrderStatus.CANCELED)
        self._audit.append(
            AuditSpec(
                action="order.cancel",
                actor=self.actor,
                target=order,
                after={"reason": reason, "executed_qty": order.executed_qty},
            )
        )

    def trigger_stops(self) -> None:
        """Work every waiting stop order the last price has reached, oldest first; their trades
        may move the price again, so repeat until nothing more triggers."""
        for _ in range(MAX_TRIGGER_ROUNDS):
            if not self._price_moved or self.instrument.last_price is None:
                return
            self._price_moved = False
            last = self.instrument.last_price
            rows = rawsql.issue(_waiting_stops_sql(), [self.instrument.pk, last, last, last, last]).fetchall()
            waiting = rawsql.instances(Order, rows)
            for row in waiting:
                order = self.adopt(row)
                if not order.is_open or order.is_working or not stop_condition_met(order, self.instrument.last_price):
                    continue
                order.is_working = True
                order.priority = self.next_priority()
                self._touch(order)
                self._audit.append(
                    AuditSpec(
                        action="order.trigger",
                        actor=ENGINE_ACTOR,
                        target=order,
                        after={"last_price": self.instrument.last_price, "stop_price": order.stop_price},
                    )
                )
                self.execute(order)

    # -- writing ---------------------------------------------------------------------------

    def flush(self, *, apply_balances: bool = True) -> None:
        """Write everything this session did, in two round trips: first the trades, changed
        orders, balances (in the global lock order), positions, the instrument's last price and
        sequence, the read of the candles the trades fall in, and the audit chain's lock and
        head; then, with the trades' ids and the new balances known, the ledger entries, the
        merged candles and the audit events. Events publish after commit.

        The book levels its orders touched are read back after the order writes, for the
        book stream's diff; the tape and book streams' sequences count up with the instrument
        row, under its lock (ADR 0006)."""
        written = {**{pk: self._orders[pk] for pk in self._new_order_ids}, **self._dirty}
        touched = levels_touched(written.values(), resting_before=self._resting_before)
        if self._trades:
            self.instrument.tape_seq += 1
        if touched:
            self.instrument.book_seq += 1
            self._instrument_changed = True
        with rawsql.pipeline():
            trade_keys_set = rawsql.insert_issue(self._trades)
            for order in self._dirty.values():
                rawsql.update_issue(order, _ORDER_UPDATE_FIELDS)
            level_sizes = level_sizes_issue(self.instrument.pk, touched)
            balances = self.batch.apply_issue() if apply_balances else None
            position_keys_set = self._positions_issue()
            if self._instrument_changed:
                rawsql.update_issue(self.instrument, _INSTRUMENT_UPDATE_FIELDS)
            candles_write_issue = candles_update_issue(self.instrument.pk, self._trades)
            chain = audit_chain_claim()
        trade_keys_set()
        position_keys_set()
        applied = balances.collect() if balances is not None else []
        with rawsql.pipeline():
            entry_keys_set = balances.entries_issue() if balances is not None else None
            candles = candles_write_issue()
            audit_append_issue(chain, self._audit_specs())
            private_events = private_seq_issue(self._private_events(written, applied))
        if entry_keys_set is not None:
            entry_keys_set()
        send_after_commit([*private_events(), *self._public_events(candles, level_sizes())])
        self._trades, self._trade_contexts, self._dirty, self._audit, self._positions = [], [], {}, [], {}
        self._rejected, self._events = [], []
        self._new_order_ids, self._placed_by = set(), {}
        self._resting_before = {pk for pk, order in self._orders.items() if is_resting(order)}
        self._instrument_changed = False

    def _audit_specs(self) -> list[AuditSpec]:
        """Placements and refusals first, then what the engine did (expiries, triggers,
        cancels), then the fills."""
        placed = [
            AuditSpec(
                action="order.place",
                actor=actor,
                target=self._orders[pk],
                after=order_audit_summary(self._orders[pk]),
                context=context,
            )
            for pk, (actor, context) in self._placed_by.items()
        ]
        fills = [
            AuditSpec(
                action="order.fill",
                actor=ENGINE_ACTOR,
                target=trade,
                after=trade_audit_summary(trade),
                context=context,
            )
            for trade, context in zip(self._trades, self._trade_contexts, strict=True)
        ]
        return [*placed, *self._rejected, *self._audit, *fills]

    def _private_events(self, written: dict[int, Order], applied: list[AppliedBalance]) -> list[TradingEvent]:
        """The owners' messages: each order as written (and each refusal), each fill from both
        sides, each balance changed."""
        asset_codes = {
            self.instrument.base_id: self.instrument.base.code,
            self.instrument.quote_id: self.instrument.quote.code,
        }
        symbol, quote = self.instrument.symbol, self.instrument.quote.code
        return [
            *self._events,
            *(order_event(order) for order in written.values()),
            *(event for trade in self._trades for event in fill_events(trade, symbol=symbol, quote_asset=quote)),
            *(
                balance_event(
                    account_id=balance.account_id,
                    asset_code=asset_codes.get(balance.asset_id, str(balance.asset_id)),
                    free=balance.free,
                    locked=balance.locked,
                )
                for balance in applied
            ),
        ]

    def _public_events(self, candles: dict, level_sizes: dict) -> list[TradingEvent]:
        """The instrument's messages: the tape and the candles it changed, numbered by
        `tape_seq`; the book levels it changed, by `book_seq`."""
        symbol = self.instrument.symbol
        events = []
        if self._trades:
            tape = [trade_json(trade, symbol=symbol) for trade in self._trades]
            events.append(trades_event(tape, symbol=symbol, seq=self.instrument.tape_seq))
            events.append(candles_event(candles, symbol=symbol, seq=self.instrument.tape_seq))
        if level_sizes:
            events.append(book_event(level_sizes, symbol=symbol, seq=self.instrument.book_seq))
        return events

    def _positions_issue(self) -> Callable[[], None]:
        new = [position for position in self._positions.values() if position.pk is None]
        for position in self._positions.values():
            if position.pk is not None:
                rawsql.update_issue(position, _POSITION_FIELDS)
        return rawsql.insert_issue(new)


@functools.cache
def _lock_sql(by_symbol: bool) -> str:
    """The session's opening statement (see `MatchingSession.open`)."""
    q = rawsql.quote
    where = f"UPPER({q('i')}.{q('symbol')}) = UPPER(%s)" if by_symbol else f"{q('i')}.{q('id')} = %s"
    lock = " FOR NO KEY UPDATE OF i" if connection.features.has_select_for_update_of else ""
    fee_account = (
        f"(SELECT {q('id')} FROM {q(TradingAccount._meta.db_table)} "  # noqa: S608 - names only
        f"WHERE {q('venue_id')} = {q('i')}.{q('venue_id')} AND {q('kind')} = '{AccountKind.FEE}')"
    )
    return (
        f"SELECT {rawsql.columns(Instrument, 'i')}, {rawsql.columns(Asset, 'b')}, {rawsql.columns(Asset, 'q')}, "  # noqa: S608
        f"{fee_account} FROM {q(Instrument._meta.db_table)} i "
        f"JOIN {q(Asset._meta.db_table)} b ON b.{q('id')} = i.{q('base_id')} "
        f"JOIN {q(Asset._meta.db_table)} q ON q.{q('id')} = i.{q('quote_id')} WHERE {where}{lock}"
    )


@functools.cache
def _positions_sql(accounts: int) -> str:
    q = rawsql.quote
    return (
        f"SELECT {rawsql.columns(Position)} FROM {q(Position._meta.db_table)} "  # noqa: S608 - names only
        f"WHERE {q('instrument_id')} = %s AND {q('account_id')} IN ({', '.join(['%s'] * accounts)})"
    )


def order_audit_summary(order: Order) -> dict[str, Any]:
    return {
        "account_id": order.account_id,
        "symbol": order.instrument.symbol,
        "client_order_id": order.client_order_id,
        "side": order.side,
        "type": order.type,
        "time_in_force": order.time_in_force,
        "quantity": order.quantity,
        "quote_quantity": order.quote_quantity,
        "price": order.price,
        "stop_price": order.stop_price,
        "status": order.status,
        "executed_qty": order.executed_qty,
        "reject_reason": order.reject_reason,
        "expire_reason": order.expire_reason,
    }


def trade_audit_summary(trade: Trade) -> dict[str, Any]:
    return {
        "maker_order_id": trade.maker_order_id,
        "taker_order_id": trade.taker_order_id,
        "price": trade.price,
        "quantity": trade.quantity,
        "maker_fee": trade.maker_fee,
        "taker_fee": trade.taker_fee,
        "aggressor_side": trade.aggressor_side,
    }
