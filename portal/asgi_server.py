"""The portal's ASGI server: daphne, with one extension for the stream fan-out.

Run it as daphne, with daphne's options: `python -m portal.asgi_server -b 127.0.0.1 -p 8000
portal.asgi:application` (`make run`, the compose `ws` service, the end-to-end tests and
bench/ws_fanout do).

The extension `tradeport.websocket.frames`, in the scope of every WebSocket connection:

- `prepare(text) -> bytes`: the server → client frame of a text message (unmasked, one frame);
- `write(frame, text)`: puts that frame on the connection, in order with everything else the
  application sends on it. On a closed connection it does nothing, as daphne does with a late
  send; on a connection that negotiated compression it sends `text` as a message instead.

Why: a frame from the server is the same bytes for every client, so a stream message going to a
thousand connections of one process is framed once (autobahn's `PreparedMessage`, made for
broadcast), not a thousand times through Channels' `send`, daphne's reply handling and
autobahn's framing. And the frames written to a connection during one turn of the event loop
leave together, in one `send` on its socket at the end of the turn, straight away when Twisted
holds nothing unsent for it; Twisted's own `write` would register every connection with the
event loop's selector, wait for it to be writable and unregister it again, per message.
A connection that cannot take more (a slow client) gets the rest through Twisted's `write`, so
its backlog and daphne's keepalive timeout work as before. bench/ws_fanout measures both.

Anything else (the ASGI `send`), and any server without the extension, works as usual
(`marketdata/consumers.py` falls back to `send`).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from autobahn.websocket.protocol import PreparedMessage
from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol

FRAMES_EXTENSION = "tradeport.websocket.frames"


def text_frame(text: str) -> bytes:
    return PreparedMessage(text.encode(), isBinary=False, applyMask=False, doNotCompress=True).payloadHybi


class FrameWriter:
    """The frames waiting for the end of the event loop's turn on one connection."""

    __slots__ = ("__weakref__", "compressed", "flusher", "pending", "protocol")

    def __init__(self, protocol: WebSocketProtocol, flusher: Flusher) -> None:
        self.protocol = protocol
        self.flusher = flusher
        self.pending: list[bytes] = []
        #: Whether the connection negotiated compression: known once the handshake is done,
        #: which is before anything is written.
        self.compressed: bool | None = None

    def __call__(self, frame: bytes, text: str) -> None:
        """Queues `frame` for the end of the loop's turn. Touches only this writer (a thousand
        connections' objects do not stay in the CPU's caches); `flush` checks the connection."""
        if self.compressed is None:
            self.compressed = self.protocol._perMessageCompress is not None
        if self.compressed:
            self.flush()
            if self.protocol.state == WebSocketProtocol.STATE_OPEN:
                self.protocol.sendMessage(text.encode())  # compressed per connection
            return
        if not self.pending:
            self.flusher.add(self)
        self.pending.append(frame)

    def flush(self) -> None:
        frames, self.pending = self.pending, []
        protocol = self.protocol
        if not frames or protocol.state != WebSocketProtocol.STATE_OPEN:
            return  # closing: nothing may follow the close frame
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        transport = protocol.transport
        sent = 0
        if not protocol.send_queue and _idle_tcp(transport):
            written = transport.writeSomeData(data)
            sent = written if isinstance(written, int) and written > 0 else 0
        if sent < len(data):
            # Behind unsent data, over TLS, or the socket is full: Twisted buffers it (and
            # notices a lost connection).
            transport.write(data[sent:])


class Flusher:
    """Sends every connection's pending frames once per turn of the event loop."""

    def __init__(self) -> None:
        self.dirty: list[FrameWriter] = []

    def add(self, writer: FrameWriter) -> None:
        if not self.dirty:
            asyncio.get_running_loop().call_soon(self.flush)
        self.dirty.append(writer)

    def flush(self) -> None:
        dirty, self.dirty = self.dirty, []
        for writer in dirty:
            writer.flush()


def _idle_tcp(transport: Any) -> bool:
    """A plain TCP transport that is open and has nothing unsent: bytes given to its socket now
    go out in order."""
    return (
        getattr(transport, "TLS", True) is False
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        and not transport._tempDataLen
        and transport.offset == len(transport.dataBuffer)
    )


class FramesServer(Server):
    """daphne's server, handing each WebSocket connection the frames extension."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.flusher = Flusher()
        self.writers: weakref.WeakKeyDictionary[WebSocketProtocol, FrameWriter] = weakref.WeakKeyDictionary()

    def create_application(self, protocol: Any, scope: dict) -> Any:
        if isinstance(protocol, WebSocketProtocol):
            writer = self.writers[protocol] = FrameWriter(protocol, self.flusher)
            scope.setdefault("extensions", {})[FRAMES_EXTENSION] = {"prepare": text_frame, "write": writer}
        return super().create_application(protocol, scope)

    async def handle_reply(self, protocol: Any, message: dict) -> None:
        """The application's own sends go out after the frames it wrote before them."""
        writer = self.writers.get(protocol)
        if writer is not None and writer.pending:
            writer.flush()
        await super().handle_reply(protocol, message)


class FramesCommandLine(CommandLineInterface):
    server_class = FramesServer


if __name__ == "__main__":
    FramesCommandLine.entrypoint()
