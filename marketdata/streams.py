"""The WebSocket streams' names and their fan-out (DESIGN §8, ADR 0006).

After a transaction commits, the engine's events reach `publish` (a `trading_event`
receiver), which sends each stream's message to the channel layer group of that stream; every
WebSocket consumer subscribed to it forwards it to its client. A message carries `seq`, given
inside the transaction under the instrument's lock, so a client sees the commit order and any
gap (then it resyncs from REST, which is the truth).

Built so far: `trades.<SYMBOL>`, one message per transaction that traded. The book, ticker,
candle and private streams follow ADR 0006.
"""

from __future__ import annotations

import re
import time
from typing import Any

import structlog
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from trading.events import TradingEvent

logger = structlog.get_logger("marketdata.streams")

#: Stream names a client may subscribe to, and what each carries.
STREAM_PATTERNS = {"trades": re.compile(r"^trades\.([A-Z0-9]{2,32})$")}


def stream_parse(name: str) -> tuple[str, str] | None:
    """(kind, symbol) of a stream name such as `trades.BTCUSDT` (the symbol in any case), or
    None when no stream has that shape."""
    kind, _, rest = name.partition(".")
    pattern = STREAM_PATTERNS.get(kind)
    match = pattern.match(f"{kind}.{rest.upper()}") if pattern else None
    return (kind, match.group(1)) if match else None


def publish(sender: Any, event: TradingEvent, **kwargs: Any) -> None:
    """`trading_event` receiver: the event's stream message to its group. The channel layer
    may drop a message under load; the client sees that as a gap in `seq`."""
    if event.kind != "trades":
        return
    stream = f"trades.{event.symbol}"
    message = {
        "type": "stream.message",
        "stream": stream,
        "seq": event.data["seq"],
        "ts": int(time.time() * 1000),
        "data": event.data["trades"],
    }
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(stream, message)  # the group is named as the stream
    except Exception:  # noqa: BLE001 - a lost hint, never a failed order (the commit is done)
        logger.exception("stream_publish_failed", stream=stream, seq=message["seq"])
