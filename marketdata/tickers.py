"""The `ticker.<SYMBOL>` streams, computed where their subscribers are.

A ticker is a read of 24 hours of candles, too dear for the committing process to run per
trade, and useless where nobody listens. So each serving process keeps one `TickerHub` (per
event loop): it follows the `trades.<SYMBOL>` group of every symbol its connections want a
ticker of, and at most once per `WS_TICKER_INTERVAL_MS` after a trade it reads the ticker and
hands it to those connections. A ticker message is a full state numbered by the tape's `seq`
it was read at, so its `seq` grows with gaps: nothing is lost between two of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from typing import Any

import structlog
from channels.db import database_sync_to_async
from django.conf import settings

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
    return {"type": "stream.message", "stream": f"ticker.{symbol}", "seq": instrument.tape_seq, "data": data}


class TickerHub:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.followers: dict[str, set[str]] = {}
        self.channel: str | None = None
        self.listener: asyncio.Task | None = None
        self.due: set[str] = set()

    async def follow(self, symbol: str, channel_name: str) -> None:
        if self.channel is None:
            self.channel = await self.layer.new_channel()
            self.listener = asyncio.get_running_loop().create_task(self._listen())
        if symbol not in self.followers:
            self.followers[symbol] = set()
            await self.layer.group_add(f"trades.{symbol}", self.channel)
        self.followers[symbol].add(channel_name)

    async def unfollow(self, symbol: str, channel_name: str) -> None:
        followers = self.followers.get(symbol)
        if followers is None:
            return
        followers.discard(channel_name)
        if not followers and self.channel is not None:
            del self.followers[symbol]
            await self.layer.group_discard(f"trades.{symbol}", self.channel)

    async def _listen(self) -> None:
        assert self.channel is not None
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - Redis gone for a moment: keep listening
                logger.error("ticker_listen_failed", error=repr(error))
                await asyncio.sleep(1)
                continue
            symbol = message.get("stream", "").partition(".")[2]
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
        if message is not None:
            for channel_name in list(self.followers.get(symbol, ())):
                with contextlib.suppress(Exception):  # a full channel: that client sees no ticker this time
                    await self.layer.send(channel_name, {**message, "ts": _now_ms()})


def _now_ms() -> int:
    return int(time.time() * 1000)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TickerHub] = weakref.WeakKeyDictionary()


def ticker_hub(layer: Any) -> TickerHub:
    """This event loop's hub (a serving process has one loop; tests start one per test)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None or hub.layer is not layer:
        hub = _hubs[loop] = TickerHub(layer)
    return hub
