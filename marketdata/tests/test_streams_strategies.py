"""The `strategies` stream: a user's own strategies' changes (started, each step of the runner
with its position and P&L, stopped), numbered per user and after commit (ADR 0008)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from marketdata.tests.test_streams import ORIGIN, run
from portal.api_keys import api_key_create
from portal.routing import websocket_application
from trading.strategies.runner import StrategyRunner
from trading.strategies.services import StrategyDefinition, strategy_create, strategy_start, strategy_stop
from trading.tests.bars import candles_of, candles_store

pytestmark = pytest.mark.django_db(transaction=True)

GRID = {"lower": 90, "upper": 99, "levels": 4, "quantity": 0.1}


def grid_of(account):
    definition = StrategyDefinition(name="grid", kind="grid", params=GRID, account_id=account.pk, symbol="BTCUSDT")
    return strategy_create(user=account.owner, definition=definition, actor=account.owner)


def test_the_strategies_stream_follows_the_users_own_strategies_in_order(market, funded_account):
    alice, bob = funded_account("alice", USDT="10000"), funded_account("bob", USDT="10000")
    key = api_key_create(user=alice.owner, name="ws", scopes=["read"]).raw_key
    alices, bobs = grid_of(alice), grid_of(bob)

    def life() -> None:
        strategy_start(strategy=bobs, actor=bob.owner)
        strategy_start(strategy=alices, actor=alice.owner)
        candles_store(market.btcusdt, candles_of([100, 100]))
        StrategyRunner().tick(now=float(candles_of([100, 100]).time[-1]) + 61)
        strategy_stop(strategy=alices, actor=alice.owner)

    async def scenario():
        socket = WebsocketCommunicator(websocket_application, "/ws/v1/", headers=ORIGIN)
        assert (await socket.connect())[0]
        await socket.send_json_to({"op": "auth", "api_key": key})
        await socket.receive_json_from()
        await socket.send_json_to({"op": "subscribe", "streams": ["strategies"]})
        subscribed = await socket.receive_json_from()
        await database_sync_to_async(life)()
        received = []
        while not await socket.receive_nothing(timeout=0.5):
            received.append(await socket.receive_json_from())
        await socket.disconnect()
        return subscribed, received

    subscribed, received = run(scenario)
    assert subscribed == {"op": "subscribed", "streams": ["strategies"]}
    assert {m["data"]["id"] for m in received} == {alices.pk}
    assert all(m["stream"] == "strategies" for m in received)
    assert [m["data"]["status"] for m in received] == ["running", "running", "stopped"]  # start, its first step, stop
    seqs = [m["seq"] for m in received]
    alice.owner.refresh_from_db()
    assert seqs == list(range(seqs[0], seqs[0] + 3)) and seqs[-1] == alice.owner.strategies_seq
