"""The WebSocket application of /ws/ (portal.asgi routes it; tests drive it directly)."""

from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from marketdata.consumers import StreamConsumer
from portal.ws_auth import SessionUserMiddleware

websocket_application = AllowedHostsOriginValidator(
    SessionUserMiddleware(URLRouter([path("ws/v1/", StreamConsumer.as_asgi())]))
)
