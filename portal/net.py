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
    return client_ip_from(request.META.get("REMOTE_ADDR", ""), request.META.get("HTTP_X_FORWARDED_FOR", ""))


def client_ip_from(remote_addr: str, forwarded_for: str) -> str | None:
    """The client's address from the peer's and the X-Forwarded-For header (HTTP or a
    WebSocket handshake)."""
    candidate = remote_addr
    if settings.TRUST_X_FORWARDED_FOR and forwarded_for:
        # The entry our proxy appended is the last one; earlier ones come from the client.
        candidate = forwarded_for.split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None
