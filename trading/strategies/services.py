"""Writes of strategies (ADR 0008): create, change, delete, start, stop, and the runner's
bookkeeping. Every change is audited; a start or stop with the strategy's open orders canceled
is one transaction.

A strategy's orders go through the same services as a trader's (`trading.services`), with the
strategy as the actor, on behalf of its owner (`strategy_actor`).
"""

from __future__ import annotations

import traceback as traceback_module
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.dispatch import Signal
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import RecordedActor, audit_record
from marketdata.models import CandleInterval, InstrumentStatus
from marketdata.selectors import instrument_get
from portal.choices import Role
from portal.errors import ConflictError, DomainError, NotFoundError
from portal.models import User
from portal.users import user_stream_next
from riskmgmt.selectors import kill_switch_engaged
from trading.choices import StrategyStatus
from trading.models import Strategy, StrategyLogLine, TradingAccount
from trading.selectors import account_for_orders
from trading.services import order_cancel_all
from trading.strategies.base import params_validate
from trading.strategies.builtin import strategy_type_get

#: Sent after the commit of a change of a strategy, with the strategy and its number in its
#: owner's `strategies` stream (marketdata.streams publishes it).
strategy_changed = Signal()
#: Log lines kept per strategy (older ones are deleted as new ones come).
LOG_LINES_KEPT = 500
_CAPS = ("max_position", "max_order_qty", "max_daily_loss")


@dataclass(frozen=True)
class StrategyDefinition:
    """What a trader says about a strategy; None: unchanged (on an update)."""

    name: str | None = None
    kind: str | None = None
    params: dict[str, Any] | None = None
    account_id: int | None = None
    symbol: str | None = None
    interval: str | None = None
    caps: dict[str, Decimal | None] | None = None


def strategy_actor(strategy: Strategy) -> RecordedActor:
    """Who a strategy's orders and events are from: the strategy, on behalf of its owner."""
    label = f"strategy #{strategy.pk} {strategy.name} of {strategy.owner.get_username()}"
    return RecordedActor(
        actor_type=AuditEvent.ActorType.STRATEGY, actor_label=label[:150], actor_user_id=strategy.owner_id
    )


def strategies_visible_to(user: User) -> QuerySet[Strategy]:
    """A user's own strategies; operators see every one."""
    strategies = Strategy.objects.select_related("owner", "account", "instrument")
    return strategies if user.has_role_at_least(Role.OPERATOR) else strategies.filter(owner=user)


def strategy_get_visible(*, user: User, strategy_id: int) -> Strategy:
    strategy = strategies_visible_to(user).filter(pk=strategy_id).first()
    if strategy is None:
        raise NotFoundError("not_found", f"No strategy #{strategy_id} among yours.")
    return strategy


def strategy_get_owned(*, user: User, strategy_id: int) -> Strategy:
    """One of the user's own strategies (what only its owner may change or start); 404 otherwise."""
    strategy = strategies_visible_to(user).filter(pk=strategy_id, owner=user).first()
    if strategy is None:
        raise NotFoundError("not_found", f"No strategy #{strategy_id} among yours.")
    return strategy


def strategy_create(*, user: User, definition: StrategyDefinition, actor: Any) -> Strategy:
    """A new strategy, stopped. Its type, parameters, account (the user's own), instrument and
    interval are checked; a name is unique per owner."""
    if not definition.name or definition.kind is None or definition.account_id is None or definition.symbol is None:
        raise DomainError("validation_error", "A strategy needs a name, a type, an account and a symbol.", status=400)
    strategy = Strategy(owner=user, state={}, runner_state={})
    _apply(strategy, user=user, definition=definition)
    with transaction.atomic():
        _name_free(strategy)
        strategy.save()
        strategy_changed_note(strategy)
        audit_record(action="strategy.create", actor=actor, target=strategy, after=_audit_view(strategy))
    return strategy


def strategy_update(*, strategy: Strategy, definition: StrategyDefinition, actor: Any) -> Strategy:
    """Change a stopped strategy (a running one must be stopped first: 409)."""
    with transaction.atomic():
        current = _locked(strategy)
        if current.status == StrategyStatus.RUNNING:
            raise ConflictError("strategy_running", "Stop the strategy before changing it.")
        before = _audit_view(current)
        _apply(current, user=current.owner, definition=definition)
        _name_free(current)
        current.save()
        strategy_changed_note(current)
        audit_record(action="strategy.update", actor=actor, target=current, before=before, after=_audit_view(current))
    return current


def strategy_delete(*, strategy: Strategy, actor: Any) -> None:
    """Delete a stopped strategy that never placed an order (its orders keep it otherwise: 409)."""
    with transaction.atomic():
        current = _locked(strategy)
        if current.status == StrategyStatus.RUNNING:
            raise ConflictError("strategy_running", "Stop the strategy before deleting it.")
        if current.orders.exists():
            raise ConflictError("strategy_has_orders", "A strategy that placed orders stays, for its history.")
        audit_record(action="strategy.delete", actor=actor, target=current, before=_audit_view(current))
        current.delete()


def strategy_start(*, strategy: Strategy, actor: Any) -> Strategy:
    """Start it: the runner takes it at its next tick, as a new run: a fresh state, the bars up
    to now only to warm it up. Its holding and the runner's trade cursor carry over, so a fill
    that came while it was stopped still counts. Refused while its instrument does not trade or
    a kill switch covers its account (409), and when it already runs."""
    with transaction.atomic():
        current = _locked(strategy)
        if current.status == StrategyStatus.RUNNING:
            raise ConflictError("strategy_running", "The strategy is already running.")
        if current.instrument.status != InstrumentStatus.TRADING:
            raise ConflictError(
                "INSTRUMENT_HALTED", f"{current.instrument.symbol} is not trading ({current.instrument.status})."
            )
        if kill_switch_engaged(account=current.account):
            raise ConflictError("KILL_SWITCH", "A kill switch covers this strategy's account.")
        current.status = StrategyStatus.RUNNING
        current.run += 1
        current.error = ""
        current.started_at = timezone.now()
        current.stopped_at = None
        current.state = {}  # a run starts afresh (a grid placed anew, a TWAP's window from now)
        current.last_bar_at = None  # bars before the start only warm it up
        current.save()
        strategy_changed_note(current)
        audit_record(action="strategy.start", actor=actor, target=current, after={"run": current.run})
    return current


def strategy_stop(
    *, strategy: Strategy, actor: Any, reason: str = "stopped", status: str = StrategyStatus.STOPPED, error: str = ""
) -> Strategy:
    """Stop it and cancel its open orders, in one transaction. `status` ERROR or FINISHED when
    the runner stops it (with the error's traceback)."""
    with transaction.atomic():
        current = _locked(strategy)
        if current.status != StrategyStatus.RUNNING:
            if status == StrategyStatus.STOPPED:
                raise ConflictError("strategy_not_running", "The strategy is not running.")
            return current
        current.status = status
        current.error = error
        current.stopped_at = timezone.now()
        current.save()
        strategy_changed_note(current)  # the user's stream counter before the cancels' audit lock
        canceled = order_cancel_all(
            account_ids=[current.account_id], strategy_id=current.pk, actor=actor, reason=f"strategy {reason}"
        )
        if error:
            strategy_log(current, error, level=StrategyLogLine.Level.ERROR)
        audit_record(
            action=f"strategy.{'fail' if status == StrategyStatus.ERROR else 'stop'}",
            actor=actor,
            target=current,
            after={"status": status, "reason": reason, "canceled_orders": len(canceled)},
        )
    return current


def strategy_fail(*, strategy: Strategy, error: BaseException) -> Strategy:
    """The runner's: the strategy's code raised; it stops with status error and the traceback."""
    text = "".join(traceback_module.format_exception(error))
    return strategy_stop(
        strategy=strategy,
        actor=strategy_actor(strategy),
        reason="failed",
        status=StrategyStatus.ERROR,
        error=f"{type(error).__name__}: {error}\n\n{text}"[:20_000],
    )


def strategies_stop_for_kill_switch(*, account: TradingAccount | None, actor: Any) -> int:
    """Stop the running strategies a kill switch now covers (the venue's: all of them); how many."""
    running = Strategy.objects.filter(status=StrategyStatus.RUNNING).select_related("owner")
    if account is not None:
        running = running.filter(account=account)
    stopped = 0
    for strategy in running:
        strategy_stop(strategy=strategy, actor=actor, reason="by the kill switch")
        stopped += 1
    return stopped


def strategy_changed_note(strategy: Strategy) -> None:
    """Number the change in the owner's `strategies` stream (in the caller's transaction) and
    publish the strategy as it is now after commit."""
    seq = user_stream_next(user_id=strategy.owner_id, stream="strategies")
    snapshot = Strategy(**{f.attname: getattr(strategy, f.attname) for f in Strategy._meta.concrete_fields})
    snapshot.owner, snapshot.instrument = strategy.owner, strategy.instrument
    transaction.on_commit(lambda: strategy_changed.send(sender=Strategy, strategy=snapshot, seq=seq))


def strategy_log(strategy: Strategy, message: str, *, level: str = StrategyLogLine.Level.INFO) -> None:
    """Add a line to the strategy's log, keeping the last LOG_LINES_KEPT."""
    line = StrategyLogLine.objects.create(strategy=strategy, level=level, message=message)
    if line.pk % 50 == 0:
        kept = strategy.log_lines.order_by("-id").values_list("id", flat=True)
        oldest_kept = kept[LOG_LINES_KEPT - 1 : LOG_LINES_KEPT].first()
        if oldest_kept is not None:
            strategy.log_lines.filter(id__lt=oldest_kept).delete()


# -- internals --------------------------------------------------------------------------------


def _locked(strategy: Strategy) -> Strategy:
    return Strategy.objects.select_for_update().select_related("owner", "account", "instrument").get(pk=strategy.pk)


def _apply(strategy: Strategy, *, user: User, definition: StrategyDefinition) -> None:
    if definition.name is not None:
        strategy.name = definition.name.strip()[:100]
        if not strategy.name:
            raise DomainError(
                "validation_error", "A strategy needs a name.", status=400, errors={"name": ["Required."]}
            )
    if definition.kind is not None or definition.params is not None:
        kind = strategy_type_get(definition.kind if definition.kind is not None else strategy.kind)
        strategy.kind = kind.name
        strategy.params = params_validate(kind, definition.params if definition.params is not None else strategy.params)
    if definition.account_id is not None:
        account = account_for_orders(user=user, account_id=definition.account_id)
        if account.owner_id != user.pk:  # an admin's strategy trades the admin's own accounts only
            raise NotFoundError("not_found", f"No trading account #{definition.account_id} among your accounts.")
        strategy.account = account
    if definition.symbol is not None:
        strategy.instrument = instrument_get(symbol=definition.symbol)
    if strategy.account.venue_id != strategy.instrument.venue_id:
        raise DomainError(
            "validation_error",
            "The account does not trade on this instrument's venue.",
            status=400,
            errors={"account": ["Another venue."]},
        )
    if definition.interval is not None:
        if definition.interval not in CandleInterval.values:
            raise DomainError(
                "bad_interval",
                f"Unknown interval {definition.interval!r}.",
                status=400,
                errors={"interval": ["Unknown."]},
            )
        strategy.interval = definition.interval
    for name, value in (definition.caps or {}).items():
        if name not in _CAPS:
            raise DomainError("validation_error", f"Unknown cap {name!r}.", status=400, errors={name: ["Unknown."]})
        if value is not None and value <= 0:
            raise DomainError("validation_error", f"{name} must be positive.", status=400, errors={name: ["Positive."]})
        setattr(strategy, name, value)


def _name_free(strategy: Strategy) -> None:
    taken = Strategy.objects.filter(owner_id=strategy.owner_id, name=strategy.name).exclude(pk=strategy.pk)
    if taken.exists():
        raise ConflictError("name_taken", f"You have a strategy named {strategy.name!r} already.")


def _audit_view(strategy: Strategy) -> dict[str, Any]:
    return {
        "name": strategy.name,
        "kind": strategy.kind,
        "params": strategy.params,
        "account": strategy.account_id,
        "symbol": strategy.instrument.symbol,
        "interval": strategy.interval,
        **{name: getattr(strategy, name) for name in _CAPS},
    }
