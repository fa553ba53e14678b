"""Fan-out inside one serving process: one channel layer membership per stream, not one per
connection (DESIGN §8, ADR 0006; measured by bench/ws_fanout).

Every WebSocket connection of a process that follows a stream registers with the process's
`StreamHub` (one per event loop). The hub joins the stream's channel layer group once, with a
channel of its own, receives each message once, encodes it to JSON once, and hands it to its
followers, which send that text as is when it is the next message they expect. So a message
for a thousand clients is one Redis delivery per process, not a thousand, and one encoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from typing import Any, Protocol

import structlog
from channels.layers import get_channel_layer

logger = structlog.get_logger("marketdata.fanout")

#: The parts of a stream message a client sees.
CLIENT_KEYS = ("stream", "first_seq", "seq", "ts", "data", "account")
#: How often the hub renews its group memberships: the core Redis layer forgets a membership
#: after its `group_expiry` (one day by default), and a hub lives as long as its process.
RENEW_SECONDS = 3600


def client_text(message: dict[str, Any]) -> str:
    """The JSON frame a client receives for a stream message."""
    return json.dumps({key: message[key] for key in CLIENT_KEYS if key in message})


class Follower(Protocol):
    async def hub_message(self, message: dict[str, Any], text: str) -> None: ...


class StreamHub:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.followers: dict[str, dict[Follower, None]] = {}
        self._tasks: list[asyncio.Task] = []
        #: Connections subscribe concurrently: one of them opens the channel and joins a group.
        self._joining = asyncio.Lock()

    async def follow(self, group: str, follower: Follower) -> None:
        async with self._joining:
            if self.channel is None:
                self.channel = await self.layer.new_channel()
                loop = asyncio.get_running_loop()
                self._tasks = [loop.create_task(self._listen()), loop.create_task(self._renew())]
            if group not in self.followers:
                await self.layer.group_add(group, self.channel)
                self.followers[group] = {}
        self.followers[group][follower] = None

    async def unfollow(self, group: str, follower: Follower) -> None:
        followers = self.followers.get(group)
        if followers is None:
            return
        followers.pop(follower, None)
        async with self._joining:
            if not followers and self.followers.get(group) is followers:
                del self.followers[group]
                with contextlib.suppress(Exception):  # Redis gone: the membership expires by itself
                    await self.layer.group_discard(group, self.channel)

    async def _listen(self) -> None:
        assert self.channel is not None
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - Redis gone for a moment: keep listening
                logger.error("stream_receive_failed", error=repr(error))
                await asyncio.sleep(1)
                continue
            followers = self.followers.get(message.get("group", ""))
            if not followers:
                continue
            text = client_text(message)
            for follower in list(followers):
                try:
                    await follower.hub_message(message, text)
                except Exception as error:  # noqa: BLE001 - one broken connection must not stop the others
                    logger.error("stream_delivery_failed", stream=message.get("stream"), error=repr(error))

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            for group in list(self.followers):
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
