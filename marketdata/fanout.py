"""Fan-out inside one serving process: one channel layer membership per stream, not one per
connection (DESIGN §8, ADR 0006; measured by bench/ws_fanout).

Every WebSocket connection of a process that follows a stream registers with the process's
`StreamHub` (one per event loop) under the stream's key (an account's key for the private
streams). The hub joins the key's channel layer group once (one per instrument, one per
account: `streams.layer_group`), with a channel of its own, receives each batch once, and
hands each message in it to the followers of its key as an `Outgoing`: the message, its JSON
text encoded once, and its WebSocket frame built once on first use (where the server offers
frames, `portal/asgi_server.py`). A follower sends that frame as is when the message is the next
one it expects. So a message for a thousand clients is one Redis delivery per process, not a
thousand, one encoding and one framing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import structlog
from channels.layers import get_channel_layer

from marketdata.streams import layer_group

logger = structlog.get_logger("marketdata.fanout")

#: The parts of a stream message a client sees.
CLIENT_KEYS = ("stream", "first_seq", "seq", "ts", "data", "account")
#: How often the hub renews its group memberships: the core Redis layer forgets a membership
#: after its `group_expiry` (one day by default), and a hub lives as long as its process.
RENEW_SECONDS = 3600


def client_text(message: dict[str, Any]) -> str:
    """The JSON frame a client receives for a stream message."""
    return json.dumps({key: message[key] for key in CLIENT_KEYS if key in message})


class Outgoing:
    """A stream message as it leaves this process: the message, its client text and, once a
    connection asks for it, its WebSocket frame; each built once for every connection."""

    __slots__ = ("_frame", "message", "text")

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self.text = client_text(message)
        self._frame: bytes | None = None

    def frame(self, prepare: Callable[[str], bytes]) -> bytes:
        if self._frame is None:
            self._frame = prepare(self.text)
        return self._frame


class Follower(Protocol):
    async def hub_message(self, outgoing: Outgoing, now: float) -> None:
        """`now`: the event loop's time when the message arrived in this process."""


class StreamHub:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.followers: dict[str, dict[Follower, None]] = {}
        #: The keys followed in each channel layer group the hub belongs to.
        self.joined: dict[str, set[str]] = {}
        self._tasks: list[asyncio.Task] = []
        #: Connections subscribe concurrently: one of them opens the channel and joins a group.
        self._joining = asyncio.Lock()

    async def follow(self, key: str, follower: Follower) -> None:
        async with self._joining:
            if self.channel is None:
                self.channel = await self.layer.new_channel()
                loop = asyncio.get_running_loop()
                self._tasks = [loop.create_task(self._listen()), loop.create_task(self._renew())]
            if key not in self.followers:
                group = layer_group(key)
                if group not in self.joined:
                    await self.layer.group_add(group, self.channel)
                    self.joined[group] = set()
                self.joined[group].add(key)
                self.followers[key] = {}
        self.followers[key][follower] = None

    async def unfollow(self, key: str, follower: Follower) -> None:
        followers = self.followers.get(key)
        if followers is None:
            return
        followers.pop(follower, None)
        async with self._joining:
            if not followers and self.followers.get(key) is followers:
                del self.followers[key]
                group = layer_group(key)
                keys = self.joined.get(group, set())
                keys.discard(key)
                if not keys:
                    self.joined.pop(group, None)
                    with contextlib.suppress(Exception):  # Redis gone: the membership expires by itself
                        await self.layer.group_discard(group, self.channel)

    async def _listen(self) -> None:
        assert self.channel is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - Redis gone for a moment: keep listening
                logger.error("stream_receive_failed", error=repr(error))
                await asyncio.sleep(1)
                continue
            now = loop.time()
            for part in message.get("parts", ()):
                followers = self.followers.get(part["key"])
                if not followers:
                    continue
                outgoing = Outgoing(part)
                for follower in list(followers):
                    try:
                        await follower.hub_message(outgoing, now)
                    except Exception as error:  # noqa: BLE001 - one broken connection must not stop the others
                        logger.error("stream_delivery_failed", stream=part.get("stream"), error=repr(error))

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            for group in list(self.joined):
                with contextlib.suppress(Exception):
                    await self.layer.group_add(group, self.channel)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StreamHub] = weakref.WeakKeyDictionary()


def stream_hub() -> StreamHub:
    """This event loop's hub (a serving process has one loop; tests start one per test)."""
    loop = asyncio.get_running_loop()
    layer = get_channel_layer()
    hub = _hubs.get(loop)
    if hub is None or hub.layer is not layer:
        hub = _hubs[loop] = StreamHub(layer)
    return hub
