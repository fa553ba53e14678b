"""Rate limits per API key / user / client IP and per endpoint class, via django-ratelimit.

A view names its class with `rate_limit_class` ("read", "write", "trade"); otherwise safe
methods count as "read" and the rest as "write". Counters live in the shared cache.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django_ratelimit.core import _split_rate, get_usage
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import BaseThrottle

from portal.cache import counts_leased
from portal.models import ApiKey
from portal.net import client_ip


def rate_limit_class_of(request, view) -> str:
    if not request.user or not request.user.is_authenticated:
        return "anonymous"
    declared = getattr(view, "rate_limit_class", None)
    if declared:
        return declared
    return "read" if request.method in SAFE_METHODS else "write"


@functools.cache  # a handful of configured rates, read on every API call
def _lease_size(rate: str) -> int:
    """Counts a process may reserve at once for `rate` (portal/cache.py): 1 % of the limit, at
    most 32, so a busy caller costs one Redis round trip per block instead of per request,
    and a limit loses less than 1 % per process to counts leased but not used."""
    limit, _period = _split_rate(rate)  # django-ratelimit's own parser, so both read a rate alike
    return max(1, min(32, limit // 100))


def _caller_key(request) -> str:
    if isinstance(request.auth, ApiKey):
        return f"key:{request.auth.pk}"
    if request.user and request.user.is_authenticated:
        return f"user:{request.user.pk}"
    return f"ip:{client_ip(request) or 'unknown'}"


class EndpointClassRateThrottle(BaseThrottle):
    """DRF throttle backed by django-ratelimit; leaves the usage on the request for headers."""

    def allow_request(self, request, view) -> bool:
        endpoint_class = rate_limit_class_of(request, view)
        rate = settings.API_RATE_LIMITS[endpoint_class]
        caller = _caller_key(request)
        with counts_leased(_lease_size(rate)):
            usage = get_usage(
                request._request,
                group=f"api:{endpoint_class}",
                key=lambda group, _request: caller,
                rate=rate,
                increment=True,
            )
        if usage is None:
            return True
        request.rate_limit_usage = usage
        self.time_left = max(1, usage["time_left"])
        return not usage["should_limit"]

    def wait(self) -> float:
        return self.time_left


def api_key_failure_wait(request) -> float | None:
    """Count a rejected API key against the client address; the seconds to wait once the
    address is over API_KEY_FAILURE_LIMIT_PER_IP, else None. Counted on failures only, so a
    valid key costs nothing here."""
    address = client_ip(request) or "unknown"
    usage = get_usage(
        request,
        group="api:key-failures",
        key=lambda group, _request: address,
        rate=settings.API_KEY_FAILURE_LIMIT_PER_IP,
        increment=True,
    )
    if usage is None or not usage["should_limit"]:
        return None
    return float(max(1, usage["time_left"]))


def rate_limit_headers(usage: dict) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(usage["limit"]),
        "RateLimit-Remaining": str(max(0, usage["limit"] - usage["count"])),
        "RateLimit-Reset": str(max(0, usage["time_left"])),
    }
