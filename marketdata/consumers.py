"""The WebSocket endpoint `/ws/v1/` (DESIGN §8): subscribe to streams, receive their messages.

Client → server, one JSON object per frame:

- `{"op": "subscribe", "streams": ["trades.BTCUSDT", "candles.BTCUSDT.1m"]}` →
  `{"op": "subscribed", "streams": [...]}`
- `{"op": "unsubscribe", "streams": [...]}` → `{"op": "unsubscribed", "streams": [...]}`
- `{"op": "list"}` → `{"op": "list", "streams": [...]}`
- `{"op": "ping"}` → `{"op": "pong", "ts": <ms>}`

Server → client: stream messages `{"stream", "seq", "ts", "data"}`, and error frames
`{"op": "error", "code", "message"}` for a frame that is not a JSON object, an unknown op, an
unknown stream, or too many streams. A client sending more than `WS_MAX_MESSAGES_PER_SECOND`
frames in a second gets an error frame and the socket is closed with code 4029.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from marketdata.models import Instrument
from marketdata.streams import serving_loop_set, stream_parse

#: Close code for a client that floods the server with frames.
CLOSE_FLOOD = 4029


@database_sync_to_async
def _symbols_known(symbols: set[str]) -> set[str]:
    return set(Instrument.objects.filter(symbol__in=symbols).values_list("symbol", flat=True))


class StreamConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        serving_loop_set(asyncio.get_running_loop())
        self.streams: set[str] = set()
        self.window_start = time.monotonic()
        self.window_count = 0
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for stream in self.streams:
            await self.channel_layer.group_discard(stream, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if await self._flooded():
            return
        try:
            content = json.loads(text_data if text_data is not None else (bytes_data or b"").decode())
        except (ValueError, UnicodeDecodeError):
            await self._error("bad_json", "Send one JSON object per frame.")
            return
        if not isinstance(content, dict):
            await self._error("bad_json", "Send one JSON object per frame.")
            return
        await self.receive_json(content)

    async def receive_json(self, content: dict, **kwargs: Any) -> None:
        op = content.get("op")
        if op == "ping":
            await self.send_json({"op": "pong", "ts": int(time.time() * 1000)})
        elif op == "list":
            await self.send_json({"op": "list", "streams": sorted(self.streams)})
        elif op in ("subscribe", "unsubscribe"):
            streams = content.get("streams")
            if not isinstance(streams, list) or not streams or not all(isinstance(s, str) for s in streams):
                await self._error("bad_streams", '"streams" must be a non-empty list of stream names.')
            elif op == "subscribe":
                await self._subscribe(streams)
            else:
                await self._unsubscribe(streams)
        else:
            await self._error("unknown_op", "op must be one of subscribe, unsubscribe, list, ping.")

    async def _subscribe(self, names: list[str]) -> None:
        parsed = {name: stream_parse(name) for name in names}
        unknown = [name for name, found in parsed.items() if found is None]
        known = await _symbols_known({found[1] for found in parsed.values() if found is not None})
        unknown += [name for name, found in parsed.items() if found is not None and found[1] not in known]
        if unknown:
            await self._error(
                "unknown_stream",
                f"No such stream: {', '.join(unknown)}. Available: trades.<SYMBOL>, candles.<SYMBOL>.<interval>.",
            )
            return
        wanted = {found[0] for found in parsed.values() if found is not None}
        if len(self.streams | wanted) > settings.WS_MAX_STREAMS:
            await self._error("too_many_streams", f"At most {settings.WS_MAX_STREAMS} streams per connection.")
            return
        for stream in sorted(wanted - self.streams):
            await self.channel_layer.group_add(stream, self.channel_name)
        self.streams |= wanted
        await self.send_json({"op": "subscribed", "streams": sorted(wanted)})

    async def _unsubscribe(self, names: list[str]) -> None:
        parsed = [stream_parse(name) for name in names]
        gone = {found[0] for found in parsed if found is not None} & self.streams
        for stream in sorted(gone):
            await self.channel_layer.group_discard(stream, self.channel_name)
        self.streams -= gone
        await self.send_json({"op": "unsubscribed", "streams": sorted(gone)})

    async def stream_message(self, event: dict) -> None:
        if event["stream"] in self.streams:
            await self.send_json({key: event[key] for key in ("stream", "seq", "ts", "data")})

    async def _flooded(self) -> bool:
        now = time.monotonic()
        if now - self.window_start >= 1:
            self.window_start, self.window_count = now, 0
        self.window_count += 1
        if self.window_count <= settings.WS_MAX_MESSAGES_PER_SECOND:
            return False
        await self._error("flood", f"More than {settings.WS_MAX_MESSAGES_PER_SECOND} frames in a second.")
        await self.close(code=CLOSE_FLOOD)
        return True

    async def _error(self, code: str, message: str) -> None:
        await self.send_json({"op": "error", "code": code, "message": message})
