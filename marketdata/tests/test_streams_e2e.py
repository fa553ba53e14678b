"""End to end: a trade committed in this process reaches a WebSocket client of a real daphne
process through the Redis channel layer, with its `seq` (issue #4; DESIGN §8)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import time
import urllib.request
from decimal import Decimal

import pytest
import websockets
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async

from marketdata.tests.test_candles import cross  # noqa: F401 - a fixture
from portal.api_keys import api_key_create
from portal.tests.servers import daphne_serving

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def daphne_port(tmp_path):
    """daphne serving portal.asgi on the test database and this Redis (see `daphne_serving`)."""
    with daphne_serving(tmp_path) as port:
        yield port


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


def _api(port: int, method: str, path: str, key: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"X-API-Key": key, "Content-Type": "application/json", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - 127.0.0.1 only
        return json.loads(response.read())


def test_orders_placed_through_the_api_stream_contiguously_and_rebuild_the_exact_book(
    daphne_port, funded_account, market
):
    alice = funded_account("alice", BTC="10", USDT="10000")
    bob = funded_account("bob", BTC="10", USDT="10000")
    alice_key = api_key_create(user=alice.owner, name="e2e", scopes=["trade"]).raw_key
    bob_key = api_key_create(user=bob.owner, name="e2e", scopes=["trade"]).raw_key
    orders = [
        (alice_key, alice, "SELL", "1", "101"),
        (alice_key, alice, "SELL", "1", "102"),
        (alice_key, alice, "BUY", "2", "99"),
        (bob_key, bob, "BUY", "1.5", "102"),  # takes 101, then half of 102
        (bob_key, bob, "SELL", "0.5", "99"),  # a quarter of the 99 bid
        (bob_key, bob, "BUY", "0.25", "100"),  # rests
    ]

    async def scenario():
        uri = f"ws://127.0.0.1:{daphne_port}/ws/v1/"
        async with websockets.connect(
            uri, origin="http://localhost", additional_headers={"X-API-Key": alice_key}
        ) as client:
            authenticated = json.loads(await asyncio.wait_for(client.recv(), 5))
            await client.send(
                json.dumps({"op": "subscribe", "streams": ["trades.BTCUSDT", "book.BTCUSDT", "orders", "fills"]})
            )
            received = [json.loads(await asyncio.wait_for(client.recv(), 5)) for _ in range(2)]  # subscribed, snapshot
            for key, account, side, qty, price in orders:
                body = {"account": account.pk, "symbol": "BTCUSDT", "side": side, "type": "LIMIT", "quantity": qty}
                await asyncio.to_thread(_api, daphne_port, "POST", "orders", key, {**body, "price": price})
            with contextlib.suppress(TimeoutError):
                while True:
                    received.append(json.loads(await asyncio.wait_for(client.recv(), 2)))
        depth = await asyncio.to_thread(_api, daphne_port, "GET", "markets/BTCUSDT/depth?limit=500", alice_key)
        return authenticated, received, depth

    authenticated, received, depth = async_to_sync(scenario)()
    assert authenticated == {"op": "authenticated", "user": "alice"}
    streams = {name: [m for m in received if m.get("stream") == name] for name in ("trades.BTCUSDT", "book.BTCUSDT")}
    for name in ("orders", "fills"):
        streams[name] = [m for m in received if m.get("stream") == name]
    for name, messages in streams.items():
        seqs = [m["seq"] for m in messages]
        assert seqs and seqs == list(range(seqs[0], seqs[0] + len(seqs))), (name, seqs)
    assert len(streams["trades.BTCUSDT"]) == 2
    assert {m["account"] for m in streams["orders"] + streams["fills"]} == {alice.pk}
    assert [(m["data"]["price"], m["data"]["role"]) for m in streams["fills"]] == [
        ("101.00000000", "MAKER"),
        ("102.00000000", "MAKER"),
        ("99.00000000", "MAKER"),
    ]
    snapshot, *diffs = streams["book.BTCUSDT"]
    assert snapshot["data"]["snapshot"] is True and len(diffs) == len(orders)
    book = {side: dict(map(tuple, snapshot["data"][side])) for side in ("bids", "asks")}
    for diff in diffs:
        for side in ("bids", "asks"):
            for price, size in diff["data"][side]:
                if Decimal(size) == 0:
                    book[side].pop(price, None)
                else:
                    book[side][price] = size
    rest = {side: {level["price"]: level["quantity"] for level in depth[side]} for side in ("bids", "asks")}
    assert book == rest
    assert depth["sequence"] == diffs[-1]["seq"]
    assert book == {
        "bids": {"100.00000000": "0.25000000", "99.00000000": "1.50000000"},
        "asks": {"102.00000000": "0.50000000"},
    }


def _silent_client(port: int, streams: list[str]) -> socket.socket:
    """A WebSocket client that subscribes, then never reads again (nor answers pings)."""
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    client.sendall(
        (
            f"GET /ws/v1/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://localhost\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += client.recv(1)
    assert answer.startswith(b"HTTP/1.1 101")
    payload = json.dumps({"op": "subscribe", "streams": streams}).encode()
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    client.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)  # a masked text frame, < 126 bytes
    return client


def _closed_by_server(client: socket.socket, within: float) -> bool:
    """Read (and drop) whatever is buffered until the server's close shows, or `within` passes."""
    client.settimeout(0.5)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if client.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


def test_a_client_that_stops_reading_slows_nobody_and_is_closed(tmp_path, cross):  # noqa: F811
    crossed = database_sync_to_async(cross)
    with daphne_serving(tmp_path, ("--ping-interval", "1", "--ping-timeout", "2")) as port:
        silent = _silent_client(port, ["trades.BTCUSDT", "book.BTCUSDT"])

        async def scenario():
            uri = f"ws://127.0.0.1:{port}/ws/v1/"
            async with websockets.connect(uri, origin="http://localhost") as client:
                await client.send(json.dumps({"op": "subscribe", "streams": ["trades.BTCUSDT"]}))
                await asyncio.wait_for(client.recv(), 5)
                for n in range(60):
                    await crossed(str(100 + n % 7), "0.01")
                return [json.loads(await asyncio.wait_for(client.recv(), 5))["seq"] for _ in range(60)]

        seqs = async_to_sync(scenario)()
        closed = _closed_by_server(silent, within=10)
        silent.close()
    assert seqs == list(range(1, 61))
    assert closed, "daphne kept a client that answers no keepalive ping"
