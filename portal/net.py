"""Client address of a request, honouring X-Forwarded-For only behind a trusted proxy."""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The normalized client address (computed once per request)."""
    try:
        return request._tradeport_client_ip  # type: ignore[attr-defined]
    except AttributeError:
        request._tradeport_client_ip = _client_ip(request)  # type: ignore[attr-defined]
        return request._tradeport_client_ip  # type: ignore[attr-defined]


def _client_ip(request: HttpRequest) -> str | None:
    candidate = request.META.get("REMOTE_ADDR", "")
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            # The entry our proxy appended is the last one; earlier ones come from the client.
            candidate = forwarded.split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None
