"""ASGI entry point (daphne): HTTP and the WebSocket routes of /ws/."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402

if settings.EMBEDDED and settings.EMBEDDED_BACKGROUND:
    from portal.embedded import embedded_scheduler_start

    embedded_scheduler_start()
    if settings.SIMULATOR_ENABLED:
        from marketdata.simulator import simulator_start_embedded

        simulator_start_embedded()
    from trading.strategies.runner import strategy_runner_start_embedded

    strategy_runner_start_embedded()

from portal.routing import websocket_application  # noqa: E402

application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket_application})
