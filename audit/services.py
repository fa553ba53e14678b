"""Recording audit events: the one small API every other app calls."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from audit.context import AuditContext, audit_context_get
from audit.models import AuditEvent
from portal import rawsql

GENESIS_HASH = "0" * 64
#: Any 64-bit number identifying "the audit chain" among PostgreSQL advisory locks.
_CHAIN_LOCK_ID = 0x7472_6164_6570_6F72  # "tradepor"
_INSERT_ATTEMPTS = 5


def _json_number(text: str) -> float | int:
    """PostgreSQL's jsonb keeps numbers as exact decimals and gives integral ones back as
    integers (1e20 → 100000000000000000000, -0.0 → 0): store them that way from the start,
    or the hash computed now would not match the row read back later."""
    number = float(text)
    return int(number) if number.is_integer() else number


def _normalize_json(value: Any) -> Any:
    """What a JSONField gives back after a round trip (Decimals and datetimes as strings)."""
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder), parse_float=_json_number)


def _normalize_ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    # The database keeps no IPv6 zone ("fe80::1%eth0" is stored as "fe80::1"); hash what is stored.
    return str(address).split("%", 1)[0]


def audit_event_hash(event: AuditEvent) -> str:
    """SHA-256 over the previous hash and every recorded field, in a fixed canonical form."""
    payload = {
        "seq": event.seq,
        "occurred_at": event.occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor_type": event.actor_type,
        "actor_user_id": event.actor_user_id,
        "actor_api_key_id": event.actor_api_key_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target_label": event.target_label,
        "before": event.before,
        "after": event.after,
        "ip": _normalize_ip(event.ip),
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "prev_hash": event.prev_hash,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RecordedActor:
    """An actor already resolved to the fields the log stores: it can travel as plain data
    (an order queued for another process to match) and be recorded there as the same actor."""

    actor_type: str
    actor_label: str
    actor_user_id: int | None = None
    actor_api_key_id: int | None = None


def audit_actor_resolve(actor: Any) -> RecordedActor:
    """`actor` (see `audit_record`) as the current request would record it."""
    return RecordedActor(**_actor_fields(actor, audit_context_get()))


def _actor_fields(actor: Any, context: AuditContext) -> dict[str, Any]:
    from portal.models import ApiKey, User

    if isinstance(actor, RecordedActor):
        return dataclasses.asdict(actor)
    if isinstance(actor, str):
        return {"actor_type": AuditEvent.ActorType.SYSTEM, "actor_label": actor[:150]}
    if isinstance(actor, ApiKey):
        via = f" via key {actor.prefix}"
        return {
            "actor_type": AuditEvent.ActorType.API_KEY,
            "actor_user_id": actor.user_id,
            "actor_api_key_id": actor.pk,
            # Fits the column even for a 150-character username (PostgreSQL refuses longer text).
            "actor_label": actor.user.get_username()[: 150 - len(via)] + via,
        }
    if isinstance(actor, User):
        fields = {
            "actor_type": AuditEvent.ActorType.USER,
            "actor_user_id": actor.pk,
            "actor_label": actor.get_username(),
        }
        if context.api_key_id and context.user_id == actor.pk:
            fields["actor_type"] = AuditEvent.ActorType.API_KEY
            fields["actor_api_key_id"] = context.api_key_id
        return fields
    if context.user_id is not None:
        user = User.objects.filter(pk=context.user_id).first()
        if user is not None:
            return _actor_fields(user, context)
    return {"actor_type": AuditEvent.ActorType.ANONYMOUS, "actor_label": "anonymous"}


@dataclass(frozen=True)
class Target:
    """What an event is about, when it is not a model instance (e.g. a username that failed)."""

    type: str
    id: str = ""
    label: str = ""


@dataclass(frozen=True)
class AuditSpec:
    """One event to record with `audit_record_many` (the arguments of `audit_record`)."""

    action: str
    actor: Any = None
    target: models.Model | Target | None = None
    before: dict | None = None
    after: dict | None = None
    #: Whose request this is (ip, user agent, request id); None: the current one. The engine
    #: records an order placed in a batch with the context of the request that sent it.
    context: AuditContext | None = None


def _event_fields(spec: AuditSpec) -> dict[str, Any]:
    context = spec.context or audit_context_get()
    target = spec.target
    if isinstance(target, models.Model):
        target_fields = {
            "target_type": target._meta.label_lower,
            "target_id": str(target.pk),
            "target_label": str(target)[:255],
        }
    elif isinstance(target, Target):
        target_fields = {"target_type": target.type, "target_id": target.id, "target_label": target.label[:255]}
    else:
        target_fields = {}
    return {
        **_actor_fields(spec.actor, context),
        **target_fields,
        "action": spec.action,
        "before": _normalize_json(spec.before),
        "after": _normalize_json(spec.after),
        "ip": _normalize_ip(context.ip),
        # A client can send NUL in a header; PostgreSQL refuses NUL in text and the request would fail.
        "user_agent": (context.user_agent or "").replace("\x00", "")[:512],
        "request_id": context.request_id[:128],
    }


def audit_record(
    *,
    action: str,
    actor: Any = None,
    target: models.Model | Target | None = None,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction when there is one.

    `actor` is a User, an ApiKey, a system component name, or None for "whoever the
    current request / job acts for". Call it last in a transaction: the chain lock is held
    from here until commit.
    """
    return audit_record_many([AuditSpec(action=action, actor=actor, target=target, before=before, after=after)])[0]


def audit_record_many(specs: list[AuditSpec]) -> list[AuditEvent]:
    """Append several events in order with one chain lock, one read and one INSERT (the engine
    records an order, its fills and the orders it completed together)."""
    if not specs:
        return []
    field_sets = [_event_fields(spec) for spec in specs]
    if connection.in_atomic_block:
        # Inside the caller's transaction the chain lock makes the next seq ours: no savepoint
        # (two round trips) is needed to retry a collision that cannot happen.
        return _append(field_sets)
    for attempt in range(_INSERT_ATTEMPTS):
        try:
            with transaction.atomic():
                return _append(field_sets)
        except IntegrityError:
            # Another writer took this seq (only possible without the chain lock); retry on top of it.
            if attempt == _INSERT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _append(field_sets: list[dict[str, Any]]) -> list[AuditEvent]:
    return _events_issue(audit_chain_claim(), field_sets)()


@dataclass(frozen=True)
class ChainClaim:
    """The chain lock taken and the read of the chain's head issued (see `audit_chain_claim`)."""

    head: rawsql.Pending


def audit_chain_claim() -> ChainClaim:
    """Take the chain lock (held until the caller's transaction ends) and issue the read of
    the chain's head, as two statements: a read in the lock's statement would use a snapshot
    older than the lock. Inside a `rawsql.pipeline()` both share a round trip with other
    writes; `audit_append_issue` then appends on top of the head. (SQLite: the IMMEDIATE
    transaction took the database's write lock when it began.)"""
    if connection.vendor == "postgresql":
        rawsql.issue("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_ID])
    return ChainClaim(head=rawsql.issue(_chain_head_sql()))


def audit_append_issue(claim: ChainClaim, specs: list[AuditSpec]) -> Callable[[], list[AuditEvent]]:
    """Append `specs` on the claimed chain (inside the claim's transaction, after its pipeline);
    issues the INSERT, and returns a function that gives the events once it ran."""
    return _events_issue(claim, [_event_fields(spec) for spec in specs])


def _events_issue(claim: ChainClaim, field_sets: list[dict[str, Any]]) -> Callable[[], list[AuditEvent]]:
    last = claim.head.fetchone()
    seq, prev_hash = (last[0], last[1]) if last else (0, GENESIS_HASH)
    now = timezone.now()
    events = []
    for fields in field_sets:
        seq += 1
        event = AuditEvent(seq=seq, prev_hash=prev_hash, occurred_at=now, **fields)
        event.hash = prev_hash = audit_event_hash(event)
        events.append(event)
    keys_set = rawsql.insert_issue(events)

    def inserted() -> list[AuditEvent]:
        keys_set()
        return events

    return inserted


@functools.cache
def _chain_head_sql() -> str:
    table = rawsql.quote(AuditEvent._meta.db_table)
    return f'SELECT "seq", "hash" FROM {table} ORDER BY "seq" DESC LIMIT 1'  # noqa: S608 - names only


@dataclass(frozen=True)
class ChainVerdict:
    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str = ""


def audit_chain_verify(*, chunk_size: int = 2000) -> ChainVerdict:
    """Walk the chain in order; name the first event whose content or link does not hold."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=chunk_size):
        if event.seq != expected_seq:
            return ChainVerdict(False, checked, expected_seq, f"event #{expected_seq} is missing")
        if event.prev_hash != expected_prev:
            return ChainVerdict(False, checked, event.seq, "link to the previous event does not match")
        if audit_event_hash(event) != event.hash:
            return ChainVerdict(False, checked, event.seq, "content does not match its hash")
        expected_prev = event.hash
        expected_seq += 1
        checked += 1
    return ChainVerdict(True, checked)
