"""Writes of risk management: halting and resuming instruments, kill switches, risk limits.

Each is one transaction with its audit event. A halt takes the instrument's lock, so it
lands between two orders, never in the middle of one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from marketdata.models import Instrument, InstrumentStatus, InstrumentStatusChange
from portal.errors import ConflictError, DomainError
from riskmgmt.checks import LIMIT_FIELDS
from riskmgmt.models import KillSwitch, RiskLimit, risk_limit_scope_key
from trading.models import TradingAccount
from trading.services import order_cancel_all
from trading.strategies.services import strategies_stop_for_kill_switch
from trading.transactions import atomic_with_retry


def _actor_label(actor: Any) -> str:
    if isinstance(actor, str):
        return actor[:150]
    user = getattr(actor, "user", actor)
    return user.get_username()[:150] if hasattr(user, "get_username") else str(actor)[:150]


def _reason_required(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("REASON_REQUIRED", "Give a reason: it is kept in the history and the audit log.", status=400)
    return reason[:255]


def instrument_status_set(*, instrument: Instrument, status: str, reason: str, actor: Any) -> Instrument:
    """Halt (HALT / BREAK) or resume (TRADING) an instrument. Open orders stay on the book
    while it is halted (their owners may cancel them); new orders are refused."""
    if status not in InstrumentStatus.values:
        raise DomainError("INVALID_STATUS", f"Status must be one of {', '.join(InstrumentStatus.values)}.", status=400)
    reason = _reason_required(reason)

    def work() -> Instrument:
        locked = Instrument.objects.select_for_update(no_key=True).get(pk=instrument.pk)
        if locked.status == status:
            raise ConflictError(
                "STATUS_UNCHANGED", f"{locked.symbol} is already {status}.", extra={"instrument_status": locked.status}
            )
        before = locked.status
        Instrument.objects.filter(pk=locked.pk).update(
            status=status, status_reason="" if status == InstrumentStatus.TRADING else reason, updated_at=timezone.now()
        )
        InstrumentStatusChange.objects.create(
            instrument=locked, from_status=before, to_status=status, reason=reason, changed_by=_actor_label(actor)
        )
        locked.refresh_from_db()
        action = "instrument.resume" if status == InstrumentStatus.TRADING else "instrument.halt"
        audit_record(
            action=action,
            actor=actor,
            target=locked,
            before={"status": before},
            after={"status": status, "reason": reason},
        )
        return locked

    return atomic_with_retry(work)


def kill_switch_engage(*, account: TradingAccount | None, reason: str, actor: Any) -> KillSwitch:
    """Engage the kill switch of the venue (account=None) or one account: the running strategies
    in scope are stopped and every open order in scope is canceled in the same transaction, and
    new ones are refused until release."""
    reason = _reason_required(reason)
    scope_key = f"account:{account.pk}" if account is not None else "venue"

    def work() -> KillSwitch:
        try:
            with transaction.atomic():
                switch = KillSwitch.objects.create(
                    account=account, scope_key=scope_key, reason=reason, engaged_by=_actor_label(actor)
                )
        except IntegrityError as error:
            raise ConflictError(
                "KILL_SWITCH_ENGAGED", "A kill switch is already engaged for this scope.", extra={"scope": scope_key}
            ) from error
        strategies = strategies_stop_for_kill_switch(account=account, actor=actor)
        canceled = order_cancel_all(
            account_ids=[account.pk] if account is not None else None, actor=actor, reason="kill switch"
        )
        switch.canceled_orders = len(canceled)
        switch.save(update_fields=["canceled_orders"])
        audit_record(
            action="kill_switch.engage",
            actor=actor,
            target=switch,
            after={
                "scope": scope_key,
                "reason": reason,
                "canceled_orders": len(canceled),
                "stopped_strategies": strategies,
            },
        )
        return switch

    return atomic_with_retry(work)


def kill_switch_release(*, switch: KillSwitch, reason: str, actor: Any) -> KillSwitch:
    reason = _reason_required(reason)

    def work() -> KillSwitch:
        current = KillSwitch.objects.select_for_update().get(pk=switch.pk)
        if current.released_at is not None:
            raise ConflictError("KILL_SWITCH_RELEASED", "This kill switch is already released.")
        current.released_at = timezone.now()
        current.released_by = _actor_label(actor)
        current.release_reason = reason
        current.save(update_fields=["released_at", "released_by", "release_reason"])
        audit_record(
            action="kill_switch.release",
            actor=actor,
            target=current,
            after={"scope": current.scope_key, "reason": reason},
        )
        return current

    return atomic_with_retry(work)


def risk_limit_set(
    *,
    actor: Any,
    account: TradingAccount | None = None,
    instrument: Instrument | None = None,
    values: dict[str, Decimal | int | None],
) -> RiskLimit:
    """Create or change the limits of one scope; fields not in `values` keep their value."""
    unknown = set(values) - set(LIMIT_FIELDS)
    if unknown:
        raise DomainError("INVALID_FIELD", f"Unknown limits: {', '.join(sorted(unknown))}.", status=400)
    for name, value in values.items():
        if value is not None and value <= 0:
            raise DomainError("INVALID_LIMIT", f"{name} must be positive (or empty for no limit).", status=400)
    band = values.get("price_band_pct")
    if band is not None and band >= 100:
        raise DomainError("INVALID_LIMIT", "price_band_pct must be below 100.", status=400)
    key = risk_limit_scope_key(
        account_id=account.pk if account else None, instrument_id=instrument.pk if instrument else None
    )

    def work() -> RiskLimit:
        limit = RiskLimit.objects.select_for_update().filter(scope_key=key).first()
        created = limit is None
        if limit is None:
            limit = RiskLimit(account=account, instrument=instrument)
        before = None if created else {name: getattr(limit, name) for name in LIMIT_FIELDS}
        for name, value in values.items():
            setattr(limit, name, value)
        limit.save()
        audit_record(
            action="risk_limit.create" if created else "risk_limit.change",
            actor=actor,
            target=limit,
            before=before,
            after={"scope": key, **{name: getattr(limit, name) for name in LIMIT_FIELDS}},
        )
        return limit

    return atomic_with_retry(work)


def risk_limit_delete(*, limit: RiskLimit, actor: Any) -> None:
    def work() -> None:
        before = {"scope": limit.scope_key, **{name: getattr(limit, name) for name in LIMIT_FIELDS}}
        audit_record(action="risk_limit.delete", actor=actor, target=limit, before=before)
        limit.delete()

    atomic_with_retry(work)
