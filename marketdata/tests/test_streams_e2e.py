"""End to end: a trade committed in this process reaches a WebSocket client of a real daphne
process through the Redis channel layer, with its `seq` (issue #4; DESIGN §8)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import websockets
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection

from marketdata.tests.test_candles import cross  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db(transaction=True)
BIN = Path(sys.executable).parent
ASGI_APP = "portal.asgi:application"


@pytest.fixture
def daphne_port(tmp_path):
    """daphne serving portal.asgi on the test database and this Redis, on a free port of
    127.0.0.1; stopped by its PID."""
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL); CI runs on them")
    db = connection.settings_dict
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.set_inheritable(True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "DB_CONN_MAX_AGE": "0",
        "EMBEDDED_BACKGROUND": "0",
    }
    log = tmp_path / "daphne.log"
    with log.open("wb") as output:  # a file, not a pipe: a full pipe would stall daphne
        proc = subprocess.Popen(
            [str(BIN / "daphne"), "--fd", str(listener.fileno()), "--access-log", "/dev/null", ASGI_APP],
            env=env,
            pass_fds=(listener.fileno(),),
            start_new_session=True,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    port = listener.getsockname()[1]
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2).status == 200:  # noqa: S310
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"daphne did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        listener.close()


def test_a_trade_reaches_a_websocket_client_of_daphne_through_redis(daphne_port, cross):  # noqa: F811
    crossed = database_sync_to_async(cross)

    async def scenario():
        uri = f"ws://127.0.0.1:{daphne_port}/ws/v1/"
        async with websockets.connect(uri, origin="http://localhost") as client:
            await client.send(json.dumps({"op": "subscribe", "streams": ["trades.BTCUSDT"]}))
            subscribed = json.loads(await asyncio.wait_for(client.recv(), 5))
            await crossed("101", "0.5")
            await crossed("103", "0.5")
            first = json.loads(await asyncio.wait_for(client.recv(), 5))
            second = json.loads(await asyncio.wait_for(client.recv(), 5))
        return subscribed, first, second

    subscribed, first, second = async_to_sync(scenario)()
    assert subscribed == {"op": "subscribed", "streams": ["trades.BTCUSDT"]}
    assert (first["stream"], first["seq"], first["data"][0]["price"]) == ("trades.BTCUSDT", 1, "101.00000000")
    assert (second["seq"], second["data"][0]["price"]) == (2, "103.00000000")
