"""Portal sign-in with lock-out after repeated failures and optional TOTP two-factor."""

from __future__ import annotations

import base64
from io import BytesIO

from django.conf import settings
from django.contrib.auth import authenticate, login
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_ratelimit.core import get_usage

from audit.services import Target, audit_record
from portal.errors import DomainError
from portal.models import User
from portal.net import client_ip


class LoginRefused(DomainError):
    status = 401


def _failure_usage(request: HttpRequest, username: str, *, increment: bool) -> list[dict]:
    """Failure counters of this username and of this client address."""
    counters = [
        ("login-failures:user", username.lower(), settings.LOGIN_FAILURE_LIMIT),
        ("login-failures:ip", client_ip(request) or "unknown", settings.LOGIN_FAILURE_LIMIT_PER_IP),
    ]
    usages = []
    for group, value, rate in counters:
        usage = get_usage(request, group=group, key=lambda _g, _r, value=value: value, rate=rate, increment=increment)
        if usage is not None:
            usages.append(usage)
    return usages


# One message for every failure: it must not tell a guesser that the password was right.
INVALID_CREDENTIALS_MESSAGE = (
    "Username, password or authentication code is not correct. "
    "If two-factor authentication is on, enter the 6-digit code from your app."
)


def _locked_for(usages: list[dict], *, at_limit_counts: bool) -> int | None:
    """Seconds until the lock lifts, or None when not locked."""
    for usage in usages:
        over = usage["count"] >= usage["limit"] if at_limit_counts else usage["should_limit"]
        if over:
            return max(1, usage["time_left"])
    return None


def _lock_message(seconds: int) -> str:
    minutes = max(1, (seconds + 59) // 60)
    return (
        f"Too many failed sign-ins. This account is locked; try again in {minutes} minute{'s' if minutes != 1 else ''}."
    )


def confirmed_totp_device(user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def login_attempt(*, request: HttpRequest, username: str, password: str, otp_token: str = "") -> User:
    """Sign `username` in, or refuse with a reason code; failures count towards a lock-out.

    Attempts for one username run one at a time, so parallel guesses cannot all slip in
    before the first failure is counted.
    """
    busy_key = f"login-busy:{username.lower()}"
    if not cache.add(busy_key, 1, timeout=30):
        raise LoginRefused("login_busy", "Another sign-in for this account is in progress; try again.", status=429)
    try:
        return _login_attempt(request=request, username=username, password=password, otp_token=otp_token)
    finally:
        cache.delete(busy_key)


def _login_attempt(*, request: HttpRequest, username: str, password: str, otp_token: str) -> User:
    locked = _locked_for(_failure_usage(request, username, increment=False), at_limit_counts=True)
    if locked is not None:
        audit_record(action="auth.login_locked", actor="anonymous", target=Target(type="portal.user", label=username))
        raise LoginRefused("login_locked", _lock_message(locked), status=429)
    user = authenticate(request, username=username, password=password)
    device = confirmed_totp_device(user) if user is not None else None
    if user is not None and device is not None and not device.verify_token(otp_token.strip()):
        audit_record(action="auth.otp_failed", actor=user, target=user)
        user = None
    if user is None:
        usages = _failure_usage(request, username, increment=True)
        locked = _locked_for(usages, at_limit_counts=True)
        if locked is not None:
            audit_record(action="auth.locked_out", actor="anonymous", target=Target(type="portal.user", label=username))
            raise LoginRefused("login_locked", _lock_message(locked), status=429)
        raise LoginRefused("invalid_credentials", INVALID_CREDENTIALS_MESSAGE)
    login(request, user)
    if device is not None:
        otp_login(request, device)
    return user


@transaction.atomic
def totp_setup_begin(*, user: User) -> TOTPDevice:
    """A fresh, unconfirmed TOTP device for `user` (replacing an earlier unconfirmed one)."""
    if confirmed_totp_device(user) is not None:
        raise DomainError(
            "otp_already_enabled", "Two-factor authentication is already on; turn it off first.", status=409
        )
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


def totp_pending_device(*, user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=False).first()


def totp_qr_data_uri(device: TOTPDevice) -> str:
    """The otpauth:// URL of `device` as an SVG data URI for the authenticator app to scan."""
    import qrcode
    from qrcode.image.svg import SvgPathFillImage

    image = qrcode.make(device.config_url, image_factory=SvgPathFillImage, box_size=10)
    buffer = BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def totp_secret_base32(device: TOTPDevice) -> str:
    return base64.b32encode(device.bin_key).decode("ascii").rstrip("=")


@transaction.atomic
def totp_setup_confirm(*, request: HttpRequest, user: User, token: str) -> TOTPDevice:
    device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).first()
    if device is None:
        raise DomainError("otp_setup_missing", "Start the two-factor setup first.", status=409)
    if not device.verify_token(token.strip()):
        raise DomainError("otp_invalid", "The authentication code is not valid; check your device's clock.")
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    otp_login(request, device)
    audit_record(action="auth.2fa_enable", actor=user, target=user)
    return device


@transaction.atomic
def totp_disable(*, user: User, token: str) -> None:
    device = confirmed_totp_device(user)
    if device is None:
        raise DomainError("otp_not_enabled", "Two-factor authentication is not enabled.", status=409)
    if not device.verify_token(token.strip()):
        raise DomainError("otp_invalid", "The authentication code is not valid.")
    TOTPDevice.objects.filter(user=user).delete()
    audit_record(action="auth.2fa_disable", actor=user, target=user)
