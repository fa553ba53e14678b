"""The WebSocket endpoint /ws/v1/: the protocol, its errors and limits, and the trades stream
numbered in commit order (ADR 0006). The channel layer is the configured one: Redis when
REDIS_URL is set (CI), in-memory otherwise."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from marketdata.consumers import CLOSE_FLOOD
from marketdata.fanout import stream_hub
from marketdata.models import Instrument
from marketdata.streams import layer_group, serving_loop_set
from marketdata.tests.test_candles import clock, cross  # noqa: F401 - fixtures
from portal.routing import websocket_application

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = [(b"origin", b"http://localhost")]


def run(scenario):
    """Run an async scenario from a sync test (no asyncio plugin needed)."""
    return async_to_sync(scenario)()


async def _connected() -> WebsocketCommunicator:
    socket = WebsocketCommunicator(websocket_application, "/ws/v1/", headers=ORIGIN)
    connected, _ = await socket.connect()
    assert connected
    return socket


def test_subscribe_then_every_trade_transaction_arrives_in_commit_order_without_gaps(cross):  # noqa: F811
    crossed = database_sync_to_async(cross)

    async def scenario():
        socket = await _connected()
        await socket.send_json_to({"op": "subscribe", "streams": ["trades.btcusdt"]})
        assert await socket.receive_json_from() == {"op": "subscribed", "streams": ["trades.BTCUSDT"]}
        await crossed("101", "0.5")
        await crossed("102", "0.25")
        first = await socket.receive_json_from(timeout=5)
        second = await socket.receive_json_from(timeout=5)
        tape_seq = await database_sync_to_async(lambda: Instrument.objects.get(symbol="BTCUSDT").tape_seq)()
        await socket.disconnect()
        return first, second, tape_seq

    first, second, tape_seq = run(scenario)
    assert first["stream"] == second["stream"] == "trades.BTCUSDT" and first["ts"] > 0
    assert (first["seq"], second["seq"]) == (1, 2) == (tape_seq - 1, tape_seq)  # the resting sells count not
    assert [(t["price"], t["quantity"]) for t in first["data"]] == [("101.00000000", "0.50000000")]
    assert Decimal(second["data"][0]["price"]) == Decimal("102")


def test_each_trading_transaction_sends_the_candle_it_changed_per_interval(cross, clock):  # noqa: F811
    crossed = database_sync_to_async(cross)  # at the clock's 09:58:30

    async def scenario():
        socket = await _connected()
        await socket.send_json_to({"op": "subscribe", "streams": ["candles.btcusdt.1M", "candles.BTCUSDT.1h"]})
        subscribed = await socket.receive_json_from()
        await crossed("101", "0.5")
        await crossed("99", "0.5")
        received = [await socket.receive_json_from(timeout=5) for _ in range(4)]
        await socket.disconnect()
        return subscribed, received

    subscribed, received = run(scenario)
    assert subscribed == {"op": "subscribed", "streams": ["candles.BTCUSDT.1h", "candles.BTCUSDT.1m"]}
    minute = [m for m in received if m["stream"] == "candles.BTCUSDT.1m"]
    hour = [m for m in received if m["stream"] == "candles.BTCUSDT.1h"]
    assert [m["seq"] for m in minute] == [m["seq"] for m in hour] == [1, 2]
    assert minute[1]["data"] == {
        "open_time": "2026-11-23T09:58:00Z",
        "close_time": "2026-11-23T09:58:59.999000Z",
        "open": "101.00000000",
        "high": "101.00000000",
        "low": "99.00000000",
        "close": "99.00000000",
        "volume": "1.00000000",
        "quote_volume": "100.00000000",
        "trade_count": 2,
    }
    assert hour[1]["data"]["open_time"] == "2026-11-23T09:00:00Z"


def test_ping_list_unsubscribe_and_error_frames(market):
    async def scenario():
        socket = await _connected()
        frames = []
        for message in (
            {"op": "ping"},
            {"op": "subscribe", "streams": ["trades.BTCUSDT", "trades.ETHUSDT"]},
            {"op": "list"},
            {"op": "unsubscribe", "streams": ["trades.ETHUSDT"]},
            {"op": "list"},
            {"op": "dance"},
            {"op": "subscribe", "streams": ["trades.NOPE", "book.NOPE"]},
            {"op": "subscribe", "streams": "trades.BTCUSDT"},
        ):
            await socket.send_json_to(message)
            frames.append(await socket.receive_json_from())
        await socket.send_to(text_data="{not json")
        frames.append(await socket.receive_json_from())
        await socket.send_to(text_data="[1, 2]")
        frames.append(await socket.receive_json_from())
        await socket.disconnect()
        return frames

    frames = run(scenario)
    assert frames[0]["op"] == "pong" and frames[0]["ts"] > 0
    assert frames[1] == {"op": "subscribed", "streams": ["trades.BTCUSDT", "trades.ETHUSDT"]}
    assert frames[2] == {"op": "list", "streams": ["trades.BTCUSDT", "trades.ETHUSDT"]}
    assert frames[3] == {"op": "unsubscribed", "streams": ["trades.ETHUSDT"]}
    assert frames[4] == {"op": "list", "streams": ["trades.BTCUSDT"]}
    assert [f.get("code") for f in frames[5:]] == [
        "unknown_op",
        "unknown_stream",
        "bad_streams",
        "bad_json",
        "bad_json",
    ]
    assert "trades.NOPE" in frames[6]["message"] and "book.NOPE" in frames[6]["message"]


def test_too_many_streams_is_refused_and_a_flood_closes_the_socket(market, settings):
    settings.WS_MAX_STREAMS = 1
    settings.WS_MAX_MESSAGES_PER_SECOND = 5

    async def scenario():
        socket = await _connected()
        await socket.send_json_to({"op": "subscribe", "streams": ["trades.BTCUSDT", "trades.ETHUSDT"]})
        too_many = await socket.receive_json_from()
        for _ in range(5):
            await socket.send_json_to({"op": "ping"})
        replies = [await socket.receive_json_from() for _ in range(4)]
        flood = await socket.receive_json_from()
        closed = await socket.receive_output()
        return too_many, replies, flood, closed

    too_many, replies, flood, closed = run(scenario)
    assert too_many["code"] == "too_many_streams"
    assert {r["op"] for r in replies} == {"pong"}
    assert flood["code"] == "flood"
    assert closed == {"type": "websocket.close", "code": CLOSE_FLOOD}


def test_connections_of_a_process_share_one_channel_layer_membership_per_stream(cross):  # noqa: F811
    crossed = database_sync_to_async(cross)

    async def scenario():
        sockets = [WebsocketCommunicator(websocket_application, "/ws/v1/", headers=ORIGIN) for _ in range(5)]
        for socket in sockets:
            assert (await socket.connect())[0]
        await asyncio.gather(
            *(socket.send_json_to({"op": "subscribe", "streams": ["trades.BTCUSDT"]}) for socket in sockets)
        )
        for socket in sockets:
            await socket.receive_json_from()
        hub = stream_hub()
        members = await _group_members(hub.layer, layer_group("trades.BTCUSDT"))
        await crossed("101", "0.5")
        received = [await socket.receive_json_from(timeout=5) for socket in sockets]
        for socket in sockets:
            await socket.disconnect()
        return hub, members, received

    hub, members, received = run(scenario)
    assert members == [hub.channel]
    assert [message["seq"] for message in received] == [1] * 5


async def _group_members(layer, group: str) -> list[str]:
    """The channels in a channel layer group: in-memory, this process's view of the PUB/SUB
    layer, or the core Redis layer's sorted set."""
    if hasattr(layer, "_get_layer"):
        loop_layer = layer._get_layer()
        return sorted(loop_layer.groups.get(loop_layer._get_group_channel_name(group), ()))
    if hasattr(layer, "groups") and not hasattr(layer, "_group_key"):
        return sorted(layer.groups.get(group, {}))
    connection = layer.connection(layer.consistent_hash(group))
    return sorted(member.decode() for member in await connection.zrange(layer._group_key(group), 0, -1))


def test_a_transactions_messages_for_an_instrument_travel_as_one_batch(cross):  # noqa: F811
    crossed = database_sync_to_async(cross)

    async def scenario():
        serving_loop_set(asyncio.get_running_loop())
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(layer_group("trades.BTCUSDT"), channel)
        await crossed("101", "0.5")  # a resting sell (the book), then a buy that takes it
        batches = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(2)]
        await layer.group_discard(layer_group("trades.BTCUSDT"), channel)
        return batches

    resting, crossing = run(scenario)
    assert resting["type"] == crossing["type"] == "stream.batch"
    assert [part["stream"] for part in resting["parts"]] == ["book.BTCUSDT"]
    streams = [part["stream"] for part in crossing["parts"]]
    assert streams[0] == "trades.BTCUSDT" and streams[-1] == "book.BTCUSDT"
    assert sorted(streams[1:-1]) == sorted(f"candles.BTCUSDT.{i}" for i in ("1m", "5m", "15m", "1h", "4h", "1d"))


def test_messages_published_out_of_order_reach_every_connection_in_seq_order(cross):  # noqa: F811
    """Two processes may publish in another order than they committed: the process's hub puts
    a stream back in order once, for all its connections."""
    crossed = database_sync_to_async(cross)

    def batch(seq: int) -> dict:
        part = {"key": "trades.BTCUSDT", "stream": "trades.BTCUSDT", "seq": seq, "ts": 1, "data": [{"n": seq}]}
        return {"type": "stream.batch", "group": layer_group("trades.BTCUSDT"), "parts": [part]}

    async def scenario():
        sockets = [await _connected() for _ in range(3)]
        for socket in sockets:
            await socket.send_json_to({"op": "subscribe", "streams": ["trades.BTCUSDT"]})
            await socket.receive_json_from()
        await crossed("101", "0.5")  # seq 1, in order
        layer = get_channel_layer()
        for seq in (3, 4, 2):
            await layer.group_send(layer_group("trades.BTCUSDT"), batch(seq))
        received = [[(await socket.receive_json_from(timeout=5))["seq"] for _ in range(4)] for socket in sockets]
        for socket in sockets:
            await socket.disconnect()
        return received

    assert run(scenario) == [[1, 2, 3, 4]] * 3
