"""Writes of the trading app: accounts, deposits and withdrawals, placing and canceling orders.

Every function here is one transaction (retried on deadlock / serialization failure, see
`trading.transactions`), writes its audit events, and publishes its events after commit.
Views, admin actions, tasks and the simulator call these; nothing else writes trading rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError
from django.utils import timezone

from audit.context import AuditContext, audit_context_reset, audit_context_set
from audit.services import audit_record
from marketdata.models import Asset, Instrument, Venue
from portal import rawsql
from portal.decimals import ceil_to, fits_storage, floor_to
from portal.errors import ConflictError, DomainError
from riskmgmt.checks import OrderExposure, RiskRejection, pre_trade_check, pre_trade_snapshot, price_band
from trading.choices import (
    LIMIT_TYPES,
    OPEN_STATUSES,
    STOP_TYPES,
    AccountKind,
    LedgerKind,
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    StrategyStatus,
    TimeInForce,
)
from trading.engine import (
    ENGINE_ACTOR,
    MatchingSession,
    lock_asset_id,
    lock_required,
    opposite,
    order_audit_summary,
    stop_condition_met,
)
from trading.events import balance_event, order_event, publish_after_commit
from trading.ledger import AppliedBalance, BalanceChange, InsufficientBalance, LedgerBatch, balance_changes_apply
from trading.models import Order, Strategy, TradingAccount
from trading.order_rules import (
    OrderRejected,
    OrderRequest,
    order_notional_estimate,
    order_quantity_estimate,
    order_request_normalized,
    order_request_validate,
)
from trading.transactions import atomic_with_retry

# -- accounts ---------------------------------------------------------------------------------


def fee_account_ensure(*, venue: Venue) -> TradingAccount:
    """The venue's fee account (created on first use); trading fees are credited to it."""
    account, _ = TradingAccount.objects.get_or_create(
        venue=venue, kind=AccountKind.FEE, defaults={"name": f"{venue.code} fees", "owner": None}
    )
    return account


def account_create(
    *,
    owner,
    venue: Venue,
    name: str,
    actor: Any,
    kind: str = AccountKind.TRADER,
    stp_mode: str = SelfTradePrevention.EXPIRE_TAKER,
) -> TradingAccount:
    def work() -> TradingAccount:
        if TradingAccount.objects.filter(owner=owner, name=name).exists():
            raise ConflictError("ACCOUNT_NAME_TAKEN", f"{owner} already has an account named {name!r}.")
        account = TradingAccount.objects.create(owner=owner, venue=venue, name=name, kind=kind, stp_mode=stp_mode)
        audit_record(
            action="account.create",
            actor=actor,
            target=account,
            after={"owner": owner.get_username() if owner else None, "kind": kind, "stp_mode": stp_mode},
        )
        return account

    return atomic_with_retry(work)


def account_update(*, account: TradingAccount, actor: Any, **changes: Any) -> TradingAccount:
    """Change an account's name, self-trade prevention mode or active flag (audited)."""
    allowed = {"name", "stp_mode", "is_active"}
    unknown = set(changes) - allowed
    if unknown:
        raise DomainError("INVALID_FIELD", f"Cannot change {', '.join(sorted(unknown))}.", status=400)

    def work() -> TradingAccount:
        before = {name: getattr(account, name) for name in changes}
        for name, value in changes.items():
            setattr(account, name, value)
        account.save(update_fields=list(changes))
        audit_record(action="account.update", actor=actor, target=account, before=before, after=changes)
        return account

    return atomic_with_retry(work)


# -- deposits and withdrawals -------------------------------------------------------------------


def _transfer(*, account: TradingAccount, asset: Asset, amount: Decimal, reason: str, actor: Any, kind: str):
    if amount is None or not amount.is_finite() or amount <= 0 or not fits_storage(amount):
        raise DomainError("INVALID_AMOUNT", "The amount must be a positive number with at most 8 decimals.", status=400)
    if amount != amount.quantize(Decimal(1).scaleb(-asset.precision)):
        raise DomainError(
            "INVALID_AMOUNT", f"{asset.code} amounts have at most {asset.precision} decimals.", status=400
        )
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("REASON_REQUIRED", "Give a reason: it is kept in the ledger and the audit log.", status=400)
    if account.kind == AccountKind.FEE and kind == LedgerKind.DEPOSIT:
        raise DomainError("INVALID_ACCOUNT", "Nobody deposits into the venue's fee account.", status=422)
    delta = amount if kind == LedgerKind.DEPOSIT else -amount

    def work() -> AppliedBalance:
        (applied,) = balance_changes_apply([BalanceChange(account.pk, asset.pk, kind, free_delta=delta, reason=reason)])
        audit_record(
            action=f"ledger.{kind.lower()}",
            actor=actor,
            target=account,
            after={"asset": asset.code, "amount": amount, "reason": reason, "free": applied.free},
        )
        publish_after_commit(
            [balance_event(account_id=account.pk, asset_code=asset.code, free=applied.free, locked=applied.locked)]
        )
        return applied

    return atomic_with_retry(work)


def deposit_create(*, account: TradingAccount, asset: Asset, amount: Decimal, reason: str, actor: Any):
    """Credit `amount` of `asset` to the account's free balance, through the ledger."""
    return _transfer(account=account, asset=asset, amount=amount, reason=reason, actor=actor, kind=LedgerKind.DEPOSIT)


def withdrawal_create(*, account: TradingAccount, asset: Asset, amount: Decimal, reason: str, actor: Any):
    """Debit `amount` from the free balance; refused (INSUFFICIENT_BALANCE) if free is short."""
    return _transfer(
        account=account, asset=asset, amount=amount, reason=reason, actor=actor, kind=LedgerKind.WITHDRAWAL
    )


# -- orders --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderEntry:
    """One order of a batch: who sends it, what it asks, and the request it came from (its
    audit events carry that request's context, whichever process matches it)."""

    account: TradingAccount
    request: OrderRequest
    actor: Any
    context: AuditContext | None = None
    #: The strategy placing it (trading.strategies), on behalf of the account's owner.
    strategy_id: int | None = None


#: What a batch gives back for each entry, in order: the order, or its refusal (carrying the
#: stored REJECTED order when the request could be stored).
OrderOutcome = Order | OrderRejected


class BatchFailed(Exception):
    """A refusal met only at write time broke the batch's transaction (a balance guard
    refused, a client order id taken meanwhile by another instrument's order): nothing of it
    was written. Place its orders one per transaction instead; each then fails or passes alone."""

    def __init__(self, rejection: OrderRejected):
        super().__init__(rejection.code)
        self.rejection = rejection


def order_place(
    *,
    account: TradingAccount,
    instrument: Instrument | str,
    request: OrderRequest,
    actor: Any,
    strategy_id: int | None = None,
) -> Order:
    """Place an order: validate, risk-check, lock funds, match, all in one transaction.

    `instrument` may be given by symbol: the lock then finds it (one query less per order).
    A refused order is stored as REJECTED with its reason code (and audited), then
    `OrderRejected` is raised carrying it. `strategy_id`: the strategy placing it.
    """
    entry = OrderEntry(account, request, actor, strategy_id=strategy_id)
    (outcome,) = order_place_alone(instrument=instrument, entry=entry)
    if isinstance(outcome, OrderRejected):
        raise outcome
    return outcome


def order_place_alone(
    *,
    instrument: Instrument | str,
    entry: OrderEntry,
    before_commit: Callable[[list[OrderOutcome]], None] | None = None,
) -> list[OrderOutcome]:
    """A batch of one order. A refusal found only at write time (a balance spent meanwhile by
    another instrument's order, a client order id taken meanwhile) is stored as REJECTED in a
    transaction of its own; `before_commit` then runs in that one."""
    locked: list[Instrument] = []
    try:
        return order_place_batch(instrument=instrument, entries=[entry], before_commit=before_commit, locked=locked)
    except BatchFailed as failure:
        rejection = failure.rejection
    request = order_request_normalized(entry.request)

    def work() -> list[OrderOutcome]:
        outcomes: list[OrderOutcome] = [
            _rejection_store(
                rejection,
                account=entry.account,
                instrument=locked[0],
                request=request,
                actor=entry.actor,
                strategy_id=entry.strategy_id,
            )
        ]
        if before_commit is not None:
            before_commit(outcomes)
        return outcomes

    token = audit_context_set(entry.context) if entry.context is not None else None
    try:
        return atomic_with_retry(work)
    finally:
        if token is not None:
            audit_context_reset(token)


def order_place_batch(
    *,
    instrument: Instrument | str,
    entries: Sequence[OrderEntry],
    queued: Callable[[], Sequence[OrderEntry]] | None = None,
    before_commit: Callable[[list[OrderOutcome]], None] | None = None,
    locked: list[Instrument] | None = None,
) -> list[OrderOutcome]:
    """Place orders on one instrument, in order, in one transaction under one lock, with one
    write of everything at the end (ADR 0005): first `queued()` (called once the lock is
    held: orders other callers queued meanwhile), then `entries`. Returns an outcome per
    order, in that order. Each order's pre-trade checks see what the orders before it did;
    a refused order is stored as REJECTED in the same transaction. `before_commit(outcomes)`
    runs last inside the transaction (the caller's writes that must commit with the orders).
    A refusal that breaks the whole transaction raises `BatchFailed`."""

    def work() -> list[OrderOutcome]:
        running = _strategies_running_locked({entry.strategy_id for entry in entries if entry.strategy_id})
        session = MatchingSession.open(instrument if isinstance(instrument, str) else instrument.pk, actor=ENGINE_ACTOR)
        if locked is not None:
            locked[:] = [session.instrument]
        outcomes: list[OrderOutcome] = []
        for entry in [*(queued() if queued is not None else ()), *entries]:
            request = order_request_normalized(entry.request)
            token = audit_context_set(entry.context) if entry.context is not None else None
            try:
                if entry.strategy_id is not None and entry.strategy_id not in running:
                    raise OrderRejected("STRATEGY_STOPPED", "The strategy placing this order is not running.")
                entered = _order_enter(
                    session, account=entry.account, request=request, actor=entry.actor, strategy_id=entry.strategy_id
                )
                outcomes.append(entered)
            except _RefusedOnInsert as refusal:
                raise BatchFailed(refusal) from refusal
            except OrderRejected as rejection:
                outcomes.append(_rejection_in_session(session, rejection, entry=entry, request=request))
            finally:
                if token is not None:
                    audit_context_reset(token)
        if not outcomes:
            return outcomes
        try:
            session.flush()
        except InsufficientBalance as shortage:
            # Another instrument's order spent the funds between the check and the write.
            raise BatchFailed(OrderRejected("INSUFFICIENT_BALANCE", shortage.message)) from shortage
        if before_commit is not None:
            before_commit(outcomes)
        return outcomes

    return atomic_with_retry(work)


def _strategies_running_locked(strategy_ids: set[int]) -> set[int]:
    """Of `strategy_ids`, those running, their rows locked (FOR NO KEY UPDATE) until the orders
    commit: a stop, which locks the row first too, waits for them and then cancels them, so a
    stopped strategy never leaves an order behind. Taken before the instrument's lock, as a stop
    takes them."""
    if not strategy_ids:
        return set()
    rows = Strategy.objects.select_for_update(no_key=True).filter(
        pk__in=sorted(strategy_ids), status=StrategyStatus.RUNNING
    )
    return set(rows.order_by("pk").values_list("pk", flat=True))


def order_cancel(*, order: Order, actor: Any, reason: str = "canceled by user") -> Order:
    """Cancel one open order and unlock what it held; 409 ORDER_NOT_OPEN once it is done."""

    def work() -> Order:
        session = MatchingSession.open(order.instrument_id, actor=actor)
        current = _open_order(session, order, "canceled")
        session.cancel(current, reason=reason)
        session.flush()
        return current

    return atomic_with_retry(work)


def order_cancel_all(
    *,
    account_ids: Iterable[int] | None,
    actor: Any,
    instrument_id: int | None = None,
    side: str | None = None,
    reason: str = "canceled by user",
    strategy_id: int | None = None,
) -> list[Order]:
    """Cancel every open order of `account_ids` (None: of every account), optionally of one
    instrument and side, or of one strategy, in one transaction. Instruments are locked in id
    order."""
    account_list = list(account_ids) if account_ids is not None else None

    def scoped(instrument_pk: int | None = None):
        queryset = Order.objects.filter(status__in=OPEN_STATUSES)
        if account_list is not None:
            queryset = queryset.filter(account_id__in=account_list)
        if strategy_id is not None:
            queryset = queryset.filter(strategy_id=strategy_id)
        if instrument_pk is not None:
            queryset = queryset.filter(instrument_id=instrument_pk)
        elif instrument_id is not None:
            queryset = queryset.filter(instrument_id=instrument_id)
        return queryset.filter(side=side) if side else queryset

    def work() -> list[Order]:
        batch = LedgerBatch()
        sessions: list[MatchingSession] = []
        canceled: list[Order] = []
        for instrument_pk in sorted(set(scoped().values_list("instrument_id", flat=True))):
            session = MatchingSession.open(instrument_pk, actor=actor, batch=batch)
            for row in scoped(instrument_pk).order_by("id"):
                order = session.adopt(row)
                if order.is_open:
                    session.cancel(order, reason=reason)
                    canceled.append(order)
            sessions.append(session)
        applied = batch.apply()
        for session in sessions:
            session.flush(apply_balances=False)
        _publish_balances(applied)
        return canceled

    return atomic_with_retry(work)


def order_cancel_replace(*, order: Order, request: OrderRequest, actor: Any) -> Order:
    """Cancel `order` and place `request` on the same instrument, atomically: if the new order
    is refused, the old one stays as it was (and the refusal is stored as a REJECTED order)."""
    request = order_request_normalized(request)
    account = order.account

    def work() -> Order:
        session = MatchingSession.open(order.instrument_id, actor=actor)
        current = _open_order(session, order, "replaced")
        session.cancel(current, reason="replaced")
        # The new order may reuse the client order id: the old row must leave the open set first.
        Order.objects.filter(pk=current.pk).update(status=OrderStatus.CANCELED)
        new_order = _order_enter(session, account=account, request=request, replaces=current)
        _flush_or_reject(session)
        return new_order

    try:
        return atomic_with_retry(work)
    except OrderRejected as rejection:
        _rejection_store(
            rejection, account=account, instrument=order.instrument, request=request, actor=actor, replaces=order
        )
        raise


def _open_order(session: MatchingSession, order: Order, verb: str) -> Order:
    """The session's copy of `order` if it is still open; 409 ORDER_NOT_OPEN with its status otherwise."""
    current = session.order_get(order.pk)
    if current is None or not current.is_open:
        status = current.status if current else "UNKNOWN"
        raise ConflictError(
            "ORDER_NOT_OPEN",
            f"Order #{order.pk} is {status}; only open orders can be {verb}.",
            extra={"order_status": status},
        )
    return current


def _order_from_request(
    request: OrderRequest, *, account: TradingAccount, instrument: Instrument, replaces: Order | None, **fields: Any
) -> Order:
    """An unsaved order carrying what the client asked for (the engine sets the rest)."""
    return Order(
        account=account,
        instrument=instrument,
        client_order_id=request.client_order_id,
        side=request.side,
        type=request.type,
        time_in_force=request.time_in_force,
        quantity=request.quantity,
        quote_quantity=request.quote_quantity,
        price=request.price,
        stop_price=request.stop_price,
        stp_mode=account.stp_mode,
        max_fee_rate=instrument.taker_fee_rate,
        replaces=replaces,
        **fields,
    )


def _duplicate_client_order_id(request: OrderRequest) -> OrderRejected:
    return OrderRejected(
        "DUPLICATE_CLIENT_ORDER_ID",
        f"An open order with client_order_id {request.client_order_id!r} exists on this account.",
        status=409,
    )


class _RefusedOnInsert(OrderRejected):
    """Refused by the database at the order's INSERT: the transaction cannot go on."""


def _order_enter(
    session: MatchingSession,
    *,
    account: TradingAccount,
    request: OrderRequest,
    actor: Any = None,
    replaces: Order | None = None,
    strategy_id: int | None = None,
) -> Order:
    """Validate, risk-check, insert, lock and match a new order on the session's instrument."""
    instrument = session.instrument
    order_request_validate(request, instrument)
    if not account.is_active:
        raise OrderRejected("ACCOUNT_DISABLED", "This trading account is disabled.")
    if account.venue_id != instrument.venue_id or account.kind == AccountKind.FEE:
        raise OrderRejected("INVALID_ACCOUNT", "This account cannot trade this instrument.")
    if request.client_order_id:
        duplicate = Order.objects.filter(
            account=account, client_order_id=request.client_order_id, status__in=OPEN_STATUSES
        )
        if replaces is not None:
            duplicate = duplicate.exclude(pk=replaces.pk)
        if duplicate.exists():
            raise _duplicate_client_order_id(request)
    order = _order_from_request(
        request,
        account=account,
        instrument=instrument,
        replaces=replaces,
        is_working=request.type not in STOP_TYPES,
        strategy_id=strategy_id,
    )
    lock_asset = lock_asset_id(order, instrument)
    snapshot = session.unwritten(
        pre_trade_snapshot(account_id=account.pk, instrument_id=instrument.pk, lock_asset_id=lock_asset),
        account_id=account.pk,
        lock_asset_id=lock_asset,
    )
    order.lock_price = _lock_price(order, instrument, snapshot.limits.price_band_pct)
    exposure = OrderExposure(
        account_id=account.pk,
        side=request.side,
        quantity=order_quantity_estimate(request, instrument),
        notional=order_notional_estimate(request, instrument),
        prices=tuple(price for price in (request.price, request.stop_price) if price is not None),
    )
    try:
        pre_trade_check(instrument=instrument, exposure=exposure, snapshot=snapshot)
    except RiskRejection as refusal:
        raise OrderRejected(refusal.code, refusal.message) from refusal
    if order.type in STOP_TYPES:
        reference = instrument.last_price if instrument.last_price is not None else instrument.reference_price
        if stop_condition_met(order, reference):
            raise OrderRejected(
                "WOULD_TRIGGER_IMMEDIATELY", f"The stop price {request.stop_price} is already reached ({reference})."
            )
    if order.type == OrderType.LIMIT_MAKER:
        best = session.best_price(opposite(order.side))
        if best is not None and (best <= order.price if order.side == Side.BUY else best >= order.price):
            raise OrderRejected(
                "LIMIT_MAKER_WOULD_CROSS", f"A LIMIT_MAKER order at {order.price} would trade at {best}."
            )
    lock = lock_required(order, instrument)
    free = snapshot.free_balance
    if free < lock:
        raise OrderRejected(
            "INSUFFICIENT_BALANCE", f"This order needs {lock.normalize():f} free; the account has {free.normalize():f}."
        )
    order.priority = session.next_priority()
    order.locked_amount = lock
    try:
        rawsql.insert([order])
    except IntegrityError as error:
        taken = _duplicate_client_order_id(request)
        raise _RefusedOnInsert(taken.code, taken.message, status=taken.status) from error
    session.lock_funds(order)
    session.enter(order, actor=actor)
    return order


def _lock_price(order: Order, instrument: Instrument, band_pct: Decimal) -> Decimal:
    """The price a buy's lock is computed at: its limit price, or for orders that execute at
    market the edge of the price band (around the reference price, or for a stop order around
    its stop price): market execution never goes beyond it."""
    if order.type in LIMIT_TYPES:
        return order.price
    centre = order.stop_price if order.stop_price is not None else instrument.reference_price
    low, high = price_band(reference_price=centre, band_pct=band_pct)
    return floor_to(high, instrument.tick_size) if order.side == Side.BUY else ceil_to(low, instrument.tick_size)


def _flush_or_reject(session: MatchingSession) -> None:
    try:
        session.flush()
    except InsufficientBalance as shortage:
        # Another order of the same account spent the funds between our check and our lock.
        raise OrderRejected("INSUFFICIENT_BALANCE", shortage.message) from shortage


def _rejected_order(
    rejection: OrderRejected,
    *,
    account: TradingAccount,
    instrument: Instrument,
    request: OrderRequest,
    replaces: Order | None = None,
    strategy_id: int | None = None,
) -> Order | None:
    """The refused order as a REJECTED row to store (unsaved), or None when what the client
    sent could not be an order at all (then it is refused without a row)."""
    values = [request.quantity, request.quote_quantity, request.price, request.stop_price]
    if any(value is not None and (value <= 0 or not fits_storage(value)) for value in values):
        return None
    if request.side not in Side.values or request.type not in OrderType.values:
        return None
    # What the client sent, cut to what the columns hold (the refusal may be about exactly that).
    storable = dataclasses.replace(
        request,
        client_order_id=request.client_order_id[:64],
        time_in_force=request.time_in_force if request.time_in_force in TimeInForce.values else "",
    )
    return _order_from_request(
        storable,
        account=account,
        instrument=instrument,
        replaces=replaces,
        status=OrderStatus.REJECTED,
        reject_reason=rejection.code,
        is_working=False,
        done_at=timezone.now(),
        strategy_id=strategy_id,
    )


def _rejection_in_session(
    session: MatchingSession, rejection: OrderRejected, *, entry: OrderEntry, request: OrderRequest
) -> OrderRejected:
    """Store a refusal met inside a batch in the batch's transaction (audited at its flush)."""
    order = _rejected_order(
        rejection,
        account=entry.account,
        instrument=session.instrument,
        request=request,
        strategy_id=entry.strategy_id,
    )
    if order is not None:
        rawsql.insert([order])
        session.record_rejection(order, message=rejection.message, actor=entry.actor)
        rejection.attach(order)
    return rejection


def _rejection_store(
    rejection: OrderRejected,
    *,
    account: TradingAccount,
    instrument: Instrument,
    request: OrderRequest,
    actor: Any,
    replaces: Order | None = None,
    strategy_id: int | None = None,
) -> OrderRejected:
    """Store the refused order as REJECTED with its reason code and audit it, in the caller's
    transaction or one of its own; the error then carries the stored order (its id goes into
    the problem JSON)."""
    order = _rejected_order(
        rejection, account=account, instrument=instrument, request=request, replaces=replaces, strategy_id=strategy_id
    )
    if order is None:
        return rejection

    def work() -> Order:
        rawsql.insert([order])
        audit_record(
            action="order.reject",
            actor=actor,
            target=order,
            after={**order_audit_summary(order), "message": rejection.message},
        )
        publish_after_commit([order_event(order)])
        return order

    return rejection.attach(atomic_with_retry(work))


def _publish_balances(applied: list[AppliedBalance]) -> None:
    codes = dict(Asset.objects.filter(pk__in={balance.asset_id for balance in applied}).values_list("pk", "code"))
    publish_after_commit(
        balance_event(account_id=b.account_id, asset_code=codes[b.asset_id], free=b.free, locked=b.locked)
        for b in applied
    )
