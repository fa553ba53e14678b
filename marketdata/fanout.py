"""Fan-out inside one serving process: one channel layer membership per stream, not one per
connection (DESIGN §8, ADR 0006; measured by bench/ws_fanout).

Every WebSocket connection of a process that follows a stream registers with the process's
`StreamHub` (one per event loop) under the stream's key (an account's key for the private
streams). The hub joins the key's channel layer group once (one per instrument, one per
account: `streams.layer_group`), with a channel of its own, receives each batch once, puts
each stream's messages back in `seq` order once for the whole process (`delivery.Reorder`:
every follower of a process sees the same sequence), and hands each message, in order, to the
followers of its key as an `Outgoing`: the message, its JSON text encoded once, and its
WebSocket frame built once on first use (where the server offers frames,
`portal/asgi_server.py`). So a message for a thousand clients is one Redis delivery per process,
not a thousand, one ordering, one encoding and one framing.

A stream's order starts where its first subscriber's starting point was read: `expect` before
the read (the hub holds what arrives meanwhile), `start` after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import Callable, Hashable
from typing import Any, Protocol

import structlog
from channels.layers import get_channel_layer
from django.conf import settings

from marketdata.delivery import Reorder
from marketdata.streams import layer_group

logger = structlog.get_logger("marketdata.fanout")

#: The parts of a stream message a client sees.
CLIENT_KEYS = ("stream", "first_seq", "seq", "ts", "data", "account")
#: How often the hub renews its group memberships: the core Redis layer forgets a membership
#: after its `group_expiry` (one day by default), and a hub lives as long as its process.
RENEW_SECONDS = 3600
#: How long the hub may hand out messages before it lets the event loop turn: a backlog of
#: batches is read from a queue without waiting, and the sockets are written only when the
#: loop turns (bench/ws_fanout's layer-fed step: without it, a process with a backlog wrote
#: nothing until the whole backlog was handed out).
YIELD_SECONDS = 0.01


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


def order_line(message: dict[str, Any]) -> Hashable:
    """The sequence a stream message is numbered in: its stream's, or for a private stream its
    stream's per account (or per user: `jobs`)."""
    return message["stream"] if message["key"] == message["stream"] else (message["stream"], message["key"])


def line_key(line: Hashable) -> str:
    """The hub key whose followers receive a sequence's messages."""
    return line[1] if isinstance(line, tuple) else str(line)


class Follower(Protocol):
    async def hub_message(self, outgoing: Outgoing) -> None: ...


class StreamHub:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.channel: str | None = None
        self.followers: dict[str, dict[Follower, None]] = {}
        #: The keys followed in each channel layer group the hub belongs to.
        self.joined: dict[str, set[str]] = {}
        self.reorder = Reorder(
            window_seconds=settings.WS_REORDER_WINDOW_MS / 1000, window_messages=settings.WS_REORDER_WINDOW_MESSAGES
        )
        self._tasks: list[asyncio.Task] = []
        self._timer: asyncio.TimerHandle | None = None
        #: Connections subscribe concurrently: one of them opens the channel and joins a group.
        self._joining = asyncio.Lock()
        #: Messages go out from arrivals, the reorder window's timer and `start`, never interleaved.
        self._delivering = asyncio.Lock()

    def expect(self, line: Hashable) -> None:
        """A subscriber is about to read where `line` starts: hold its messages until `start`
        (a line already started keeps its place)."""
        self.reorder.expect(line)

    async def start(self, line: Hashable, seq: int | None) -> None:
        """`line` starts above `seq`: what was held above it goes out now, in order."""
        loop = asyncio.get_running_loop()
        async with self._delivering:
            await self._deliver(self.reorder.start(line, seq, now=loop.time()))
        self._arm()

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
                self.reorder.keep_only({line for line in self.reorder.lines() if line_key(line) in self.followers})
                if not keys:
                    self.joined.pop(group, None)
                    with contextlib.suppress(Exception):  # Redis gone: the membership expires by itself
                        await self.layer.group_discard(group, self.channel)

    async def _listen(self) -> None:
        assert self.channel is not None
        loop = asyncio.get_running_loop()
        turned = loop.time()
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
            held = False
            async with self._delivering:
                for part in message.get("parts", ()):
                    if part["key"] not in self.followers:
                        continue
                    ready = self.reorder.accept(order_line(part), part, now)
                    held = held or not ready
                    await self._deliver(ready)
            if held:
                self._arm()
            if loop.time() - turned >= YIELD_SECONDS:
                await asyncio.sleep(0)
                turned = loop.time()

    async def _deliver(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            followers = self.followers.get(message["key"])
            if not followers:
                continue
            outgoing = Outgoing(message)
            for follower in list(followers):
                try:
                    await follower.hub_message(outgoing)
                except Exception as error:  # noqa: BLE001 - one broken connection must not stop the others
                    logger.error("stream_delivery_failed", stream=message.get("stream"), error=repr(error))

    def _arm(self) -> None:
        """Wake up when the oldest held message's window runs out (a timer that fires early
        finds nothing due and sets the next one)."""
        due = self.reorder.next_due()
        if due is None or (self._timer is not None and self._timer.when() <= due):
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(due, lambda: loop.create_task(self._on_timer()))

    async def _on_timer(self) -> None:
        self._timer = None
        async with self._delivering:
            await self._deliver(self.reorder.due(asyncio.get_running_loop().time()))
        self._arm()

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
