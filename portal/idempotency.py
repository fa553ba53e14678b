"""Idempotency-Key semantics (DESIGN §7), stored in the database so no retry can run twice.

Same key + same request → the stored response is replayed; same key + another request →
422; the same key while the first request still runs → 409. Keys are scoped per caller
(user or API key) and live IDEMPOTENCY_KEY_TTL_SECONDS.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from portal import rawsql
from portal.errors import ConflictError, DomainError
from portal.models import IdempotencyRecord

MAX_KEY_LENGTH = 255
#: Statuses that are not stored: the caller may retry them with the same key.
RETRYABLE_STATUSES = {409, 429}
STORED_HEADERS = ("Location", "Content-Type")


@dataclass(frozen=True)
class IdempotencyStart:
    """Either a fresh record to complete later, or a finished one to replay."""

    record: IdempotencyRecord
    replay: bool


def request_fingerprint(*, method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), b"\n", path.encode(), b"\n", body):
        digest.update(part)
    return digest.hexdigest()


def _validate_key(key: str) -> None:
    if not (0 < len(key) <= MAX_KEY_LENGTH) or not key.isprintable() or not key.isascii():
        raise DomainError(
            "idempotency_key_invalid",
            f"Idempotency-Key must be 1–{MAX_KEY_LENGTH} printable ASCII characters.",
            status=400,
        )


def idempotency_key_reused() -> DomainError:
    return DomainError(
        "idempotency_key_reused", "This Idempotency-Key was already used with a different request.", status=422
    )


def _in_progress() -> ConflictError:
    return ConflictError(
        "idempotency_request_in_progress",
        "A request with this Idempotency-Key is still being processed; retry later.",
    )


def _is_replay(existing: IdempotencyRecord, *, fingerprint: str, now) -> bool:
    """True if `existing` answers this request (replay it); False if it is the claim of an
    attempt that died unanswered; 422 for another request's key, 409 while one runs."""
    if existing.fingerprint != fingerprint:
        raise idempotency_key_reused()
    if existing.is_complete:
        return True
    if existing.locked_until > now:
        raise _in_progress()
    return False


def idempotency_begin(*, scope: str, key: str, method: str, path: str, fingerprint: str) -> IdempotencyStart:
    """Claim `key` for this request, or say why it cannot run (replay / 409 / 422)."""
    _validate_key(key)
    now = timezone.now()
    lock_until = now + timedelta(seconds=settings.IDEMPOTENCY_LOCK_SECONDS)
    for _ in range(3):
        record = IdempotencyRecord(
            scope=scope, key=key, method=method, path=path[:2048], fingerprint=fingerprint, locked_until=lock_until
        )
        if rawsql.insert_unless_conflict(record, ("scope", "key")):
            return IdempotencyStart(record=record, replay=False)
        existing = idempotency_record_find(scope=scope, key=key)
        if existing is None:
            continue  # released or expired between our insert and our read: claim again
        if _is_replay(existing, fingerprint=fingerprint, now=now):
            return IdempotencyStart(record=existing, replay=True)
        # The first attempt died without an answer: take its claim over, exactly once.
        taken = IdempotencyRecord.objects.filter(
            pk=existing.pk, response_status__isnull=True, locked_until=existing.locked_until
        ).update(locked_until=lock_until)
        if taken:
            existing.locked_until = lock_until
            return IdempotencyStart(record=existing, replay=False)
        raise _in_progress()
    raise ConflictError("idempotency_request_in_progress", "The Idempotency-Key is contended; retry later.")


@dataclass
class IdempotencyTicket:
    """A key claimed in Redis only: its record is written once, already answered, by whoever
    finishes the request — the order combiner writes it in the order's own transaction
    (ADR 0005), so no retry can find the order placed and the key unanswered."""

    scope: str
    key: str
    method: str
    path: str
    fingerprint: str
    #: The record was written (or deliberately not) where the answer was made.
    answered: bool = False

    def claim_key(self) -> str:
        from portal.redis_client import redis_key

        return redis_key("idempotency", self.scope, hashlib.sha256(self.key.encode()).hexdigest())


class IdempotencyKeyTaken(Exception):
    """A record for this key was written meanwhile (by another attempt at the same request)."""


def idempotency_begin_deferred(
    *, scope: str, key: str, method: str, path: str, fingerprint: str
) -> IdempotencyStart | IdempotencyTicket:
    """Claim `key` in Redis while the request runs (a concurrent duplicate gets 409), and look
    for its answered record (a replay). Answer with `idempotency_answer_record`, then give
    the claim back with `idempotency_end_deferred`."""
    from portal.redis_client import redis_client

    _validate_key(key)
    ticket = IdempotencyTicket(scope=scope, key=key, method=method, path=path[:2048], fingerprint=fingerprint)
    claim = ticket.claim_key()
    if not redis_client().set(claim, "1", nx=True, px=settings.IDEMPOTENCY_LOCK_SECONDS * 1000):
        raise _in_progress()
    try:
        existing = idempotency_record_find(scope=scope, key=key)
        if existing is not None:
            if _is_replay(existing, fingerprint=fingerprint, now=timezone.now()):
                redis_client().delete(claim)
                return IdempotencyStart(record=existing, replay=True)
            # A claim of the other kind, whose request died without an answer: drop it.
            IdempotencyRecord.objects.filter(pk=existing.pk, response_status__isnull=True).delete()
    except BaseException:
        redis_client().delete(claim)
        raise
    return ticket


def idempotency_record_find(*, scope: str, key: str) -> IdempotencyRecord | None:
    """The key's record, unless it is past its retention (then it is deleted and None)."""
    rows = rawsql.issue(_record_sql(), [scope, key]).fetchall()
    existing = rawsql.instances(IdempotencyRecord, rows)[0] if rows else None
    expired_before = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS)
    if existing is not None and existing.created_at < expired_before:
        IdempotencyRecord.objects.filter(pk=existing.pk, created_at=existing.created_at).delete()
        return None
    return existing


@functools.cache
def _record_sql() -> str:
    q = rawsql.quote
    return (
        f"SELECT {rawsql.columns(IdempotencyRecord)} FROM {q(IdempotencyRecord._meta.db_table)} "  # noqa: S608
        f"WHERE {q('scope')} = %s AND {q('key')} = %s"
    )


def idempotency_answer_record(
    ticket: IdempotencyTicket, *, status: int, body, headers: dict[str, str]
) -> IdempotencyRecord | None:
    """The answered record to store for `ticket` (unsaved), or None when the answer may change
    on a retry (5xx, 409, 429) and the key stays free."""
    if status >= 500 or status in RETRYABLE_STATUSES:
        return None
    now = timezone.now()
    return IdempotencyRecord(
        scope=ticket.scope,
        key=ticket.key,
        method=ticket.method,
        path=ticket.path,
        fingerprint=ticket.fingerprint,
        response_status=status,
        response_body=json.loads(json.dumps(body, cls=DjangoJSONEncoder)),
        response_headers={name: headers[name] for name in STORED_HEADERS if name in headers},
        locked_until=now,
        completed_at=now,
    )


def idempotency_answers_store(records: list[IdempotencyRecord]) -> None:
    """INSERT answered records in the caller's transaction; `IdempotencyKeyTaken` if one of
    the keys has a record already (the caller's transaction must then roll back)."""
    if rawsql.insert_unless_conflict_many(records, ("scope", "key")) < len(records):
        raise IdempotencyKeyTaken()


def idempotency_end_deferred(ticket: IdempotencyTicket) -> None:
    """Give the Redis claim back (the record, if any, is written by now)."""
    from portal.redis_client import redis_client

    redis_client().delete(ticket.claim_key())


def idempotency_claim_form(*, user_id: int, token: str, path: str) -> IdempotencyRecord | None:
    """Claim a rendered portal form's one-time token, so sending the form twice (reload,
    double click) acts once. None: this form was already sent, or is being handled."""
    try:
        start = idempotency_begin(
            scope=f"web:{user_id}",
            key=token,
            method="POST",
            path=path,
            fingerprint=request_fingerprint(method="POST", path=path, body=token.encode()),
        )
    except DomainError:
        return None
    return None if start.replay else start.record


def idempotency_complete(*, record: IdempotencyRecord, status: int, body, headers: dict[str, str]) -> None:
    """Store the answer for replays, or release the key when the outcome may change on retry."""
    if status >= 500 or status in RETRYABLE_STATUSES:
        idempotency_release(record=record)
        return
    record.response_status = status
    record.response_body = body
    record.response_headers = {name: headers[name] for name in STORED_HEADERS if name in headers}
    record.completed_at = timezone.now()
    rawsql.update(record, ("response_status", "response_body", "response_headers", "completed_at"))


def idempotency_release(*, record: IdempotencyRecord) -> None:
    """Give an unfinished key back, so the same key may be sent again."""
    IdempotencyRecord.objects.filter(pk=record.pk, response_status__isnull=True).delete()


def idempotency_purge_expired() -> int:
    """Delete keys older than their retention; returns how many."""
    cutoff = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
