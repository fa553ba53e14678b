"""The portal session's user on a WebSocket, resolved once at the handshake."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from django.http.cookie import parse_cookie


class SessionUserMiddleware:
    """Puts the user of the handshake's session cookie in `scope["user"]`, as Channels'
    `AuthMiddlewareStack` does, without wrapping `send`: Channels' session middleware inspects
    every outgoing message (it saves sessions on HTTP responses), and a stream socket sends
    thousands while it never changes the session (bench/ws_fanout)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        cookies = parse_cookie(dict(scope.get("headers") or []).get(b"cookie", b"").decode("latin-1"))
        user = await _session_user(cookies.get(settings.SESSION_COOKIE_NAME, ""))
        return await self.inner({**scope, "user": user}, receive, send)


@database_sync_to_async
def _session_user(session_key: str) -> Any:
    if not session_key:
        return AnonymousUser()
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    request = HttpRequest()
    request.session = session
    return get_user(request)  # Django's own rules: the backend, the session's password hash
