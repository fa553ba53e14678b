"""The `ticker.<SYMBOL>` streams, computed where their subscribers are.

A ticker is a read of 24 hours of candles, too dear for the committing process to run per
trade, and useless where nobody listens. So each serving process keeps one `TickerHub` (per
event loop): it follows the `trades.<SYMBOL>` stream (through the process's `StreamHub`) of
every symbol its connections want a ticker of, and at most once per `WS_TICKER_INTERVAL_MS`
after a trade it reads the ticker and hands it to those connections. A ticker message is a
full state numbered by the tape's `seq` it was read at, so its `seq` grows with gaps: nothing
is lost between two of them.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

import structlog
from channels.db import database_sync_to_async
from django.conf import settings

from marketdata.fanout import Follower, Outgoing, stream_hub
from marketdata.models import Instrument

logger = structlog.get_logger("marketdata.tickers")


def ticker_message(symbol: str) -> dict[str, Any] | None:
    """The `ticker.<SYMBOL>` message: the REST ticker, numbered by the tape's `seq` it was read at."""
    from marketdata.api.v1.serializers import TickerSerializer
    from marketdata.selectors import ticker_24h

    instrument = Instrument.objects.filter(symbol=symbol).first()
    if instrument is None:
        return None
    data = dict(TickerSerializer(ticker_24h(instrument=instrument)).data)
    return {"stream": f"ticker.{symbol}", "seq": instrument.tape_seq, "ts": int(time.time() * 1000), "data": data}


class TickerHub:
    def __init__(self) -> None:
        self.followers: dict[str, dict[Follower, None]] = {}
        self.due: set[str] = set()

    async def follow(self, symbol: str, follower: Follower, *, seq: int) -> None:
        """`follower` wants `symbol`'s tickers; `seq`: the tape's number its first ticker was read at."""
        if symbol not in self.followers:
            self.followers[symbol] = {}
            tape = f"trades.{symbol}"
            stream_hub().expect(tape)
            await stream_hub().follow(tape, self)
            await stream_hub().start(tape, seq)
        self.followers[symbol][follower] = None

    async def unfollow(self, symbol: str, follower: Follower) -> None:
        followers = self.followers.get(symbol)
        if followers is None:
            return
        followers.pop(follower, None)
        if not followers:
            del self.followers[symbol]
            await stream_hub().unfollow(f"trades.{symbol}", self)

    async def hub_message(self, outgoing: Outgoing) -> None:
        """A trade on a followed symbol: its ticker is due."""
        symbol = outgoing.message["stream"].partition(".")[2]
        if symbol in self.followers and symbol not in self.due:
            self.due.add(symbol)
            asyncio.get_running_loop().call_later(settings.WS_TICKER_INTERVAL_MS / 1000, self._send_soon, symbol)

    def _send_soon(self, symbol: str) -> None:
        asyncio.ensure_future(self._send(symbol))

    async def _send(self, symbol: str) -> None:
        self.due.discard(symbol)
        try:
            message = await database_sync_to_async(ticker_message)(symbol)
        except Exception as error:  # noqa: BLE001 - a failed read must not stop the next ticker
            logger.error("ticker_read_failed", symbol=symbol, error=repr(error))
            return
        if message is None:
            return
        outgoing = Outgoing(message)
        for follower in list(self.followers.get(symbol, ())):
            try:
                await follower.hub_message(outgoing)
            except Exception as error:  # noqa: BLE001 - one broken connection must not stop the others
                logger.error("ticker_delivery_failed", symbol=symbol, error=repr(error))


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TickerHub] = weakref.WeakKeyDictionary()


def ticker_hub() -> TickerHub:
    """This event loop's ticker hub."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = TickerHub()
    return hub
