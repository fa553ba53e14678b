"""The book stream (a snapshot, then diffs that rebuild the exact book), the coalesced book,
the ticker stream, and the private streams with their authentication (DESIGN §8, ADR 0006).
The channel layer is the configured one: Redis when REDIS_URL is set (CI), in-memory otherwise."""

from __future__ import annotations

from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from conftest import TEST_PASSWORD
from marketdata.consumers import CLOSE_UNAUTHORIZED
from marketdata.tests.test_streams import ORIGIN, run
from portal.api_keys import api_key_create
from portal.routing import websocket_application
from trading.selectors import book_depth
from trading.services import order_cancel

pytestmark = pytest.mark.django_db(transaction=True)
D = Decimal


async def _socket(headers=()) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(websocket_application, "/ws/v1/", headers=[*ORIGIN, *headers])
    connected, _ = await socket.connect()
    assert connected
    return socket


def _apply(book: dict[str, dict[str, str]], data: dict) -> None:
    for side in ("bids", "asks"):
        for price, size in data[side]:
            if D(size) == 0:
                book[side].pop(price, None)
            else:
                book[side][price] = size


def _depth_levels(market) -> dict[str, dict[str, str]]:
    depth = book_depth(instrument=market.btcusdt, levels=1000)
    return {
        side: {format(level.price, "f"): format(level.quantity, "f") for level in levels}
        for side, levels in (("bids", depth.bids), ("asks", depth.asks))
    }


def test_a_book_subscription_starts_with_a_snapshot_and_its_diffs_rebuild_the_exact_book(market, funded_account, place):
    maker = funded_account("maker", BTC="10", USDT="10000")
    taker = funded_account("taker", BTC="10", USDT="10000")
    hitter = funded_account("hitter", BTC="10")
    place(maker, "SELL", qty="1", price="101")
    place(maker, "BUY", qty="2", price="99")
    placed = database_sync_to_async(place)

    async def scenario():
        socket = await _socket()
        await socket.send_json_to({"op": "subscribe", "streams": ["book.btcusdt"]})
        subscribed = await socket.receive_json_from()
        snapshot = await socket.receive_json_from(timeout=5)
        await placed(maker, "SELL", qty="0.5", price="101")
        await placed(taker, "BUY", qty="1.7", price="101")  # takes 101 whole, rests 0.2 at 101
        await placed(hitter, "SELL", qty="2.2", price="98", time_in_force="IOC")  # empties the bids
        diffs = [await socket.receive_json_from(timeout=5) for _ in range(3)]
        await socket.disconnect()
        return subscribed, snapshot, diffs

    subscribed, snapshot, diffs = run(scenario)
    assert subscribed == {"op": "subscribed", "streams": ["book.BTCUSDT"]}
    assert snapshot["stream"] == "book.BTCUSDT" and snapshot["data"]["snapshot"] is True
    assert snapshot["data"]["asks"] == [["101.00000000", "1.00000000"]]
    assert snapshot["data"]["bids"] == [["99.00000000", "2.00000000"]]
    assert [diff["seq"] for diff in diffs] == [snapshot["seq"] + 1, snapshot["seq"] + 2, snapshot["seq"] + 3]
    assert all(diff["data"]["snapshot"] is False for diff in diffs)
    assert diffs[2]["data"]["bids"] == [["101.00000000", "0.00000000"], ["99.00000000", "0.00000000"]]
    assert diffs[1]["data"] == {
        "snapshot": False,
        "bids": [["101.00000000", "0.20000000"]],
        "asks": [["101.00000000", "0.00000000"]],
    }
    book = {side: {price: size for price, size in snapshot["data"][side]} for side in ("bids", "asks")}
    for diff in diffs:
        _apply(book, diff["data"])
    assert book == _depth_levels(market)
    assert book_depth(instrument=market.btcusdt).sequence == diffs[-1]["seq"]


def test_a_coalesced_book_subscription_merges_diffs_and_names_the_range_it_covers(
    market, funded_account, place, settings
):
    maker = funded_account("maker", BTC="10")
    placed = database_sync_to_async(place)

    async def scenario():
        socket = await _socket()
        await socket.send_json_to({"op": "subscribe", "streams": ["book.BTCUSDT@1000ms"]})
        await socket.receive_json_from()
        snapshot = await socket.receive_json_from(timeout=5)
        first = await placed(maker, "SELL", qty="1", price="105")
        await placed(maker, "SELL", qty="1", price="106")
        await database_sync_to_async(order_cancel)(order=first, actor="test")
        merged = await socket.receive_json_from(timeout=5)
        nothing_more = await socket.receive_nothing(timeout=1.2)
        await socket.disconnect()
        return snapshot, merged, nothing_more

    snapshot, merged, nothing_more = run(scenario)
    assert merged["stream"] == "book.BTCUSDT@1000ms"
    assert (merged["first_seq"], merged["seq"]) == (snapshot["seq"] + 1, snapshot["seq"] + 3)
    assert merged["data"] == {
        "snapshot": False,
        "bids": [],
        "asks": [["105.00000000", "0.00000000"], ["106.00000000", "1.00000000"]],
    }
    assert nothing_more


def test_the_ticker_stream_starts_with_the_ticker_and_follows_trades(market, funded_account, place, settings):
    settings.WS_TICKER_INTERVAL_MS = 100
    seller = funded_account("seller", BTC="10")
    buyer = funded_account("buyer", USDT="100000")
    placed = database_sync_to_async(place)

    async def scenario():
        socket = await _socket()
        await socket.send_json_to({"op": "subscribe", "streams": ["ticker.BTCUSDT"]})
        await socket.receive_json_from()
        first = await socket.receive_json_from(timeout=5)
        await placed(seller, "SELL", qty="2", price="100")
        await placed(buyer, "BUY", qty="2", price="100")
        after = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return first, after

    first, after = run(scenario)
    assert first["stream"] == after["stream"] == "ticker.BTCUSDT"
    assert first["data"]["last"] is None and first["data"]["trade_count"] == 0
    assert after["seq"] > first["seq"]
    assert D(after["data"]["last"]) == D("100") and D(after["data"]["base_volume"]) == D("2")
    assert after["data"]["trade_count"] == 1


def test_private_streams_need_authentication_and_carry_only_the_users_own_accounts(market, funded_account, place):
    alice = funded_account("alice", BTC="10", USDT="10000")
    bob = funded_account("bob", BTC="10", USDT="10000")
    key = api_key_create(user=alice.owner, name="ws", scopes=["read"]).raw_key
    placed = database_sync_to_async(place)

    async def scenario():
        anonymous = await _socket()
        await anonymous.send_json_to({"op": "subscribe", "streams": ["orders"]})
        refused_anonymous = await anonymous.receive_json_from()
        await anonymous.disconnect()

        socket = await _socket()
        await socket.send_json_to({"op": "auth", "api_key": key})
        authenticated = await socket.receive_json_from()
        await socket.send_json_to({"op": "subscribe", "streams": [f"orders.{bob.pk}"]})
        refused_other = await socket.receive_json_from()
        await socket.send_json_to({"op": "subscribe", "streams": ["orders", "fills", "balances"]})
        subscribed = await socket.receive_json_from()
        await placed(bob, "SELL", qty="1", price="100")
        await placed(alice, "BUY", qty="1", price="100")
        received = []
        while not await socket.receive_nothing(timeout=0.5):
            received.append(await socket.receive_json_from())
        await socket.disconnect()
        return refused_anonymous, authenticated, refused_other, subscribed, received

    refused_anonymous, authenticated, refused_other, subscribed, received = run(scenario)
    assert refused_anonymous["code"] == "unauthorized_stream"
    assert authenticated == {"op": "authenticated", "user": "alice"}
    assert refused_other["code"] == "unauthorized_stream" and f"orders.{bob.pk}" in refused_other["message"]
    assert subscribed == {"op": "subscribed", "streams": ["balances", "fills", "orders"]}
    assert {message["account"] for message in received} == {alice.pk}
    by_stream = {stream: [m for m in received if m["stream"] == stream] for stream in ("orders", "fills", "balances")}
    assert [m["data"]["status"] for m in by_stream["orders"]] == ["FILLED"]
    assert [(m["data"]["side"], m["data"]["role"]) for m in by_stream["fills"]] == [("BUY", "TAKER")]
    assert {m["data"]["asset"] for m in by_stream["balances"]} == {"BTC", "USDT"}
    for messages in by_stream.values():
        seqs = [m["seq"] for m in messages]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    alice.refresh_from_db()
    assert by_stream["orders"][-1]["seq"] == alice.orders_seq and by_stream["balances"][-1]["seq"] == alice.balances_seq


def test_a_private_message_reaches_the_client_once_however_many_subscriptions_cover_it(market, funded_account, place):
    alice = funded_account("alice", BTC="10", USDT="10000")
    key = api_key_create(user=alice.owner, name="ws", scopes=["read"]).raw_key
    placed = database_sync_to_async(place)

    async def scenario():
        socket = await _socket([(b"x-api-key", key.encode())])
        await socket.receive_json_from()  # authenticated
        await socket.send_json_to({"op": "subscribe", "streams": ["orders"]})
        await socket.receive_json_from()
        await placed(alice, "BUY", qty="1", price="90")
        received = [await socket.receive_json_from(timeout=5)]
        await socket.send_json_to({"op": "subscribe", "streams": [f"orders.{alice.pk}"]})  # the same sequence
        received.append(await socket.receive_json_from(timeout=5))
        await placed(alice, "BUY", qty="1", price="91")
        while not await socket.receive_nothing(timeout=0.5):
            received.append(await socket.receive_json_from())
        await socket.disconnect()
        return received

    received = run(scenario)
    orders = [message["seq"] for message in received if message.get("stream") == "orders"]
    assert orders == list(range(orders[0], orders[0] + 2))  # each order once, in order
    assert {"op": "subscribed", "streams": [f"orders.{alice.pk}"]} in received


def test_the_portal_session_cookie_authenticates_the_socket(market, funded_account):
    account = funded_account("alice", USDT="1")
    client = Client()
    assert client.login(username="alice", password=TEST_PASSWORD)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    async def scenario():
        socket = await _socket([(b"cookie", cookie)])
        await socket.send_json_to({"op": "subscribe", "streams": [f"balances.{account.pk}"]})
        subscribed = await socket.receive_json_from()
        await socket.disconnect()
        return subscribed

    assert run(scenario) == {"op": "subscribed", "streams": [f"balances.{account.pk}"]}


def test_a_bad_api_key_gets_an_error_frame_and_a_close_with_its_reason(market):
    async def scenario():
        socket = await _socket([(b"x-api-key", b"tpk_nope.secret")])
        error = await socket.receive_json_from()
        closed = await socket.receive_output()
        return error, closed

    error, closed = run(scenario)
    assert error["op"] == "error" and error["code"] == "auth_failed" and "api_key_invalid" in error["message"]
    assert closed == {"type": "websocket.close", "code": CLOSE_UNAUTHORIZED}
