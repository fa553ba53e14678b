"""The WebSocket application of /ws/ (portal.asgi routes it; tests drive it directly)."""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from marketdata.consumers import StreamConsumer

websocket_application = AllowedHostsOriginValidator(
    AuthMiddlewareStack(URLRouter([path("ws/v1/", StreamConsumer.as_asgi())]))
)
