"""The WebSocket streams' names and their fan-out (DESIGN §8, ADR 0006).

After a transaction commits, the engine's events reach `publish` (a `trading_event`
receiver), which sends each stream's message to the channel layer group of that stream; every
WebSocket consumer subscribed to it forwards it to its client. A message carries `seq`, given
inside the transaction under the instrument's lock, so a client sees the commit order and any
gap (then it resyncs from REST, which is the truth).

Built so far: `trades.<SYMBOL>`, one message per transaction that traded, and
`candles.<SYMBOL>.<interval>`, the candle that transaction changed (both numbered by the
instrument's `tape_seq`). The book, ticker and private streams follow ADR 0006.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import threading
import time
from typing import Any

import structlog
from channels.layers import get_channel_layer

from trading.events import TradingEvent

logger = structlog.get_logger("marketdata.streams")

#: Stream names a client may subscribe to: the kind, then the symbol (and the interval).
STREAM_PATTERNS = {
    "trades": re.compile(r"^trades\.([A-Z0-9]{2,32})$"),
    "candles": re.compile(r"^candles\.([A-Z0-9]{2,32})\.(1M|5M|15M|1H|4H|1D)$"),
}


def stream_parse(name: str) -> tuple[str, str] | None:
    """(the stream's canonical name, its symbol) for a name such as `trades.btcusdt` or
    `candles.BTCUSDT.1m` (any case), or None when no stream has that shape."""
    kind, _, rest = name.partition(".")
    pattern = STREAM_PATTERNS.get(kind)
    match = pattern.match(f"{kind}.{rest.upper()}") if pattern else None
    if match is None:
        return None
    symbol = match.group(1)
    return (f"{kind}.{symbol}.{match.group(2).lower()}" if kind == "candles" else f"{kind}.{symbol}"), symbol


def publish(sender: Any, event: TradingEvent, **kwargs: Any) -> None:
    """`trading_event` receiver: the event's stream message to its group. The committing
    thread only hands it over (`_sender`); the channel layer may drop a message under load,
    and the client sees that as a gap in `seq`."""
    if event.kind == "trades":
        _send(f"trades.{event.symbol}", event.data["seq"], event.data["trades"])
    elif event.kind == "candles":
        for interval, candle in event.data["candles"].items():
            _send(f"candles.{event.symbol}.{interval}", event.data["seq"], candle)


def _send(stream: str, seq: int, data: Any) -> None:
    message = {"type": "stream.message", "stream": stream, "seq": seq, "ts": int(time.time() * 1000), "data": data}
    _sender.send(stream, message)  # the group is named as the stream


def serving_loop_set(loop: asyncio.AbstractEventLoop) -> None:
    """The event loop of this process's ASGI server (its consumers' loop): messages are sent
    from it, so an in-memory channel layer is only ever touched from the loop that owns it."""
    _sender.serving_loop = loop


class _Sender:
    """Sends stream messages from one event loop per process, in the order they were handed
    over: the ASGI server's loop where there is one, else a daemon thread's own loop (started
    on first use, and again after a fork: gunicorn's workers). A committed order never waits
    for Redis, and the channel layer's connections live as long as the loop, instead of one
    new loop and connection per message (`async_to_sync`)."""

    def __init__(self) -> None:
        self.serving_loop: asyncio.AbstractEventLoop | None = None
        self._own: tuple[int, asyncio.AbstractEventLoop] | None = None
        self._lock = threading.Lock()

    def send(self, group: str, message: dict) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        loop = self.serving_loop if self.serving_loop is not None and self.serving_loop.is_running() else self._loop()
        future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
        future.add_done_callback(lambda done: _log_failure(done, group, message["seq"]))

    def _loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._own is None or self._own[0] != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="tradeport-streams", daemon=True).start()
                self._own = (os.getpid(), loop)
            return self._own[1]


def _log_failure(done: concurrent.futures.Future, group: str, seq: int) -> None:
    if not done.cancelled() and done.exception() is not None:
        logger.error("stream_publish_failed", stream=group, seq=seq, error=repr(done.exception()))


_sender = _Sender()
