"""API keys: issue, authenticate, revoke. Keys are shown once and stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import pickle
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.context import audit_context_update
from audit.services import audit_record
from portal.choices import ApiKeyScope, Role
from portal.errors import DomainError, NotFoundError
from portal.models import ApiKey, User
from portal.tracked_cache import TrackedLocalCache

KEY_PREFIX_MARK = "tpk_"
_PREFIX_LENGTH = 12
logger = structlog.get_logger("portal.api_keys")


class ApiKeyRejected(DomainError):
    """A presented key cannot be used; `status` is 401 (who are you?) or 403 (not from there)."""

    status = 401


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    raw_key: str


def _hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def _validate_networks(allowed_ips: list[str]) -> list[str]:
    normalized = []
    for entry in allowed_ips:
        try:
            normalized.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
        except ValueError:
            raise DomainError(
                "invalid_ip_allowlist",
                f"'{entry}' is not an IP address or network.",
                status=400,
                errors={"allowed_ips": [f"'{entry}' is not an IP address or CIDR network."]},
            ) from None
    return normalized


def _validate_scopes(scopes: list[str], user: User) -> list[str]:
    valid = {choice.value for choice in ApiKeyScope}
    unknown = [scope for scope in scopes if scope not in valid]
    if unknown or not scopes:
        raise DomainError(
            "invalid_scope",
            f"Scopes must be a non-empty subset of {sorted(valid)}.",
            status=400,
            errors={"scopes": [f"Unknown or missing scopes: {unknown or 'none given'}."]},
        )
    if ApiKeyScope.TRADE in scopes and not user.has_role_at_least(Role.TRADER):
        raise DomainError("scope_not_allowed", "Only traders and above may hold keys with the trade scope.", status=403)
    return sorted(set(scopes))


def api_key_check_request(
    *,
    user: User,
    scopes: list[str],
    allowed_ips: list[str],
    expires_at: datetime | None,
    actor: User | ApiKey | None = None,
) -> tuple[list[str], list[str]]:
    """Validate a key request; returns normalized (scopes, allowed_ips) or raises DomainError.

    A key acts as its user, so issuing one for somebody else is an operator's act, and for
    staff an admin's (no take-over of a stronger account).
    """
    acting_user = actor.user if isinstance(actor, ApiKey) else actor
    if isinstance(acting_user, User) and acting_user.pk != user.pk:
        needed = Role.ADMIN if user.is_staff or user.has_role_at_least(Role.OPERATOR) else Role.OPERATOR
        if not acting_user.has_role_at_least(needed):
            raise DomainError("role_forbidden", f"Only the {needed} role may issue keys for this user.", status=403)
    if api_keys_active(user=user).count() >= settings.API_KEY_MAX_ACTIVE_PER_USER:
        raise DomainError(
            "api_key_limit",
            f"A user holds at most {settings.API_KEY_MAX_ACTIVE_PER_USER} active API keys; revoke one first.",
            status=409,
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise DomainError(
            "invalid_expiry",
            "The expiry must lie in the future.",
            status=400,
            errors={"expires_at": ["Must lie in the future."]},
        )
    return _validate_scopes(scopes, user), _validate_networks(allowed_ips)


@transaction.atomic
def api_key_create(
    *,
    user: User,
    name: str,
    scopes: list[str],
    allowed_ips: list[str] | None = None,
    expires_at: datetime | None = None,
    actor: User | ApiKey | None = None,
) -> IssuedApiKey:
    """Issue a key for `user`; the returned raw key is the only time its secret exists in clear."""
    User.objects.select_for_update().filter(pk=user.pk).first()  # one issue at a time per user: the cap holds
    scopes, allowed_ips = api_key_check_request(
        user=user, scopes=scopes, allowed_ips=allowed_ips or [], expires_at=expires_at, actor=actor
    )
    prefix = secrets.token_hex(_PREFIX_LENGTH // 2)
    raw_key = f"{KEY_PREFIX_MARK}{prefix}.{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        user=user,
        name=name.strip() or "API key",
        prefix=prefix,
        hashed_key=_hash(raw_key),
        scopes=scopes,
        allowed_ips=allowed_ips,
        expires_at=expires_at,
    )
    audit_record(action="api_key.create", actor=actor or user, target=api_key, after=_public_state(api_key))
    return IssuedApiKey(api_key=api_key, raw_key=raw_key)


def _public_state(api_key: ApiKey) -> dict:
    return {
        "user": api_key.user_id,
        "name": api_key.name,
        "prefix": api_key.prefix,
        "scopes": api_key.scopes,
        "allowed_ips": api_key.allowed_ips,
        "expires_at": api_key.expires_at,
        "revoked_at": api_key.revoked_at,
    }


def _ip_allowed(api_key: ApiKey, ip: str | None) -> bool:
    if not api_key.allowed_ips:
        return True
    if ip is None:
        return False
    address = ipaddress.ip_address(ip)
    return any(address in ipaddress.ip_network(network) for network in api_key.allowed_ips)


def _reject(api_key: ApiKey, code: str, message: str, status: int = 401) -> ApiKeyRejected:
    """The refusal to raise; audited once per key and reason per interval, so a leaked key
    hammering the API cannot flood the audit chain."""
    interval = settings.API_KEY_USE_AUDIT_INTERVAL_SECONDS
    if cache.add(f"api-key-rejected:{api_key.pk}:{code}", 1, timeout=interval):
        audit_record(action="api_key.rejected", actor=api_key, target=api_key, after={"reason": code})
    return ApiKeyRejected(code, message, status=status)


def api_key_authenticate(*, raw_key: str, ip: str | None) -> ApiKey:
    """The usable key behind `raw_key`, or ApiKeyRejected naming why not.

    Reads are audited at most once per key per API_KEY_USE_AUDIT_INTERVAL_SECONDS (with
    the last-used time); every write a key makes is audited by the action itself.
    """
    if not raw_key.startswith(KEY_PREFIX_MARK) or "." not in raw_key:
        raise ApiKeyRejected("api_key_invalid", "The API key is malformed.")
    prefix = raw_key[len(KEY_PREFIX_MARK) :].split(".", 1)[0]
    api_key = _key_with_user(prefix)
    if api_key is None or not hmac.compare_digest(api_key.hashed_key, _hash(raw_key)):
        raise ApiKeyRejected("api_key_invalid", "The API key is not valid.")
    if api_key.is_revoked:
        raise _reject(api_key, "api_key_revoked", "The API key was revoked.")
    if api_key.is_expired:
        raise _reject(api_key, "api_key_expired", "The API key has expired.")
    if not api_key.user.is_active:
        raise _reject(api_key, "user_inactive", "The key's user is deactivated.")
    if not _ip_allowed(api_key, ip):
        raise _reject(api_key, "api_key_ip_not_allowed", f"The API key may not be used from {ip}.", status=403)
    audit_context_update(user_id=api_key.user_id, api_key_id=api_key.pk)
    structlog.contextvars.bind_contextvars(user=api_key.user.get_username(), api_key=api_key.prefix)
    _note_use(api_key, ip)
    return api_key


def _record_cache_key(prefix: str) -> str:
    return f"api-key:{prefix}"


def _key_with_user(prefix: str) -> ApiKey | None:
    """The key with its user, role and two-factor flag: from this process's copy, else the
    shared cache, else the database.

    The shared record is dropped whenever the key, its user, the user's groups or devices
    change (portal.signals), and Redis then tells every process to drop its copy
    (portal.tracked_cache), so revocation and role changes take effect at once everywhere;
    API_KEY_CACHE_SECONDS only bounds how long an unused record lingers.
    """
    record_key = _record_cache_key(prefix)
    local = _local_copies()
    if local is not None:
        local_key = cache.make_key(record_key)
        copy = local.get(local_key)
        if copy is not None:
            return pickle.loads(copy)  # noqa: S301 - bytes this process pickled itself; a fresh object per request
        generation = local.current_generation()
    api_key = cache.get(record_key)
    if api_key is None:
        # The password hash stays out of the caches; a deferred field is also left alone
        # if the cached user is ever saved.
        api_key = ApiKey.objects.select_related("user").defer("user__password").filter(prefix=prefix).first()
        if api_key is None:
            return None
        _ = api_key.user.role, api_key.user.two_factor_enabled  # computed once, cached with the record
        cache.set(record_key, api_key, timeout=settings.API_KEY_CACHE_SECONDS)
    if local is not None:
        local.remember(local_key, pickle.dumps(api_key), generation)
    return api_key


_tracked_copies: TrackedLocalCache | None = None


def _local_copies() -> TrackedLocalCache | None:
    """The process-local record copies when the shared cache is Redis (else the shared cache
    is already in process) and API_KEY_LOCAL_COPIES is on."""
    global _tracked_copies
    if not (settings.REDIS_URL and settings.API_KEY_LOCAL_COPIES):
        return None
    if _tracked_copies is None:
        _tracked_copies = TrackedLocalCache(
            settings.REDIS_URL, cache.make_key(_record_cache_key("")), max_age=settings.API_KEY_CACHE_SECONDS
        )
    return _tracked_copies


def api_key_cache_forget(*, user_id: int | None = None, prefix: str | None = None, every: bool = False) -> None:
    """Drop cached key records: one key's (`prefix`), all keys of a user (`user_id`), or all."""
    prefixes = [prefix] if prefix else []
    if every:
        prefixes += ApiKey.objects.values_list("prefix", flat=True)
    elif user_id is not None:
        prefixes += ApiKey.objects.filter(user_id=user_id).values_list("prefix", flat=True)
    if prefixes:
        record_keys = [_record_cache_key(each) for each in prefixes]
        cache.delete_many(record_keys)  # Redis then tells the other processes to drop their copies
        local = _local_copies()
        if local is not None:
            local.forget([cache.make_key(each) for each in record_keys])


#: (key id, prefix) → monotonic time this process last noted the key's use; spares the
#: shared cache a round trip on most requests (the shared cache still decides).
_noted_in_process: dict[tuple[int, str], float] = {}


def _note_use(api_key: ApiKey, ip: str | None) -> None:
    interval = settings.API_KEY_USE_AUDIT_INTERVAL_SECONDS
    memo_key = (api_key.pk, api_key.prefix)
    now_monotonic = time.monotonic()
    if now_monotonic - _noted_in_process.get(memo_key, -interval) < interval:
        return
    _noted_in_process[memo_key] = now_monotonic
    if not cache.add(f"api-key-used:{api_key.pk}", 1, timeout=interval):
        return
    now = timezone.now()
    with transaction.atomic():
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now, last_used_ip=ip)
        audit_record(action="api_key.use", actor=api_key, target=api_key, after={"ip": ip})
    api_key.last_used_at, api_key.last_used_ip = now, ip


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: User | ApiKey | None) -> ApiKey:
    """Revoke a key for good (idempotent: revoking a revoked key changes nothing)."""
    locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if locked.revoked_at is not None:
        return locked
    before = _public_state(locked)
    locked.revoked_at = timezone.now()
    locked.save(update_fields=["revoked_at"])
    audit_record(action="api_key.revoke", actor=actor, target=locked, before=before, after=_public_state(locked))
    return locked


def api_key_list(*, user: User) -> QuerySet[ApiKey]:
    """The keys `user` may see: their own."""
    return ApiKey.objects.filter(user=user).select_related("user")


def api_keys_active(*, user: User) -> QuerySet[ApiKey]:
    """`user`'s keys that still authenticate: not revoked, not expired."""
    return ApiKey.objects.filter(user=user, revoked_at__isnull=True).exclude(expires_at__lte=timezone.now())


def api_key_get(*, user: User, key_id: int) -> ApiKey:
    """One of `user`'s keys (operators may reach any); another user's key is simply not found."""
    keys = ApiKey.objects.select_related("user")
    if not user.has_role_at_least(Role.OPERATOR):
        keys = keys.filter(user=user)
    api_key = keys.filter(pk=key_id).first()
    if api_key is None:
        raise NotFoundError("not_found", "No such API key.")
    return api_key


def api_keys_purge_expired(*, older_than_days: int = 30) -> int:
    """Delete keys revoked or expired more than `older_than_days` ago; the audit log keeps their story."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = ApiKey.objects.filter(revoked_at__lt=cutoff).delete()
    deleted_expired, _ = ApiKey.objects.filter(expires_at__lt=cutoff).delete()
    return deleted + deleted_expired
