"""Ordering and coalescing stream messages on their way to WebSocket clients (ADR 0006).

`Reorder` puts each stream's messages back in `seq` order, once per serving process (the
process's hub, `marketdata.fanout`, for all its connections). Two processes that commit one
after the other may publish in the other order, so a message ahead of the next expected one
waits, up to a window (time or count); the missing one usually arrives meanwhile. When the
window runs out, what is held goes out as it is and the client sees the gap in `seq`, which
is its cue to resync from REST. Messages at or below the last one delivered (or below the
snapshot a subscription started from) are dropped. A new stream's messages are held from the
moment its group is joined until its first subscriber's starting point is read (`expect`, then
`start`), so none committed after that read is lost while the read runs.

`BookCoalescer` merges book diffs for a subscription that asked for an update speed
(`book.<SYMBOL>@100ms`): the last size of a level wins, and the merged message carries the
range of `seq` it covers (`first_seq` … `seq`).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

Message = dict[str, Any]
#: A line waiting for its start holds at most this many reorder windows of messages.
WAITING_LIMIT = 16


@dataclass
class _Line:
    expected: int | None
    held: dict[int, Message] = field(default_factory=dict)
    held_since: float | None = None
    started: bool = True


class Reorder:
    """Per key (a stream, or a private stream and account): the next `seq` expected and the
    messages held ahead of it."""

    def __init__(self, *, window_seconds: float, window_messages: int) -> None:
        self.window_seconds = window_seconds
        self.window_messages = window_messages
        self._lines: dict[Hashable, _Line] = {}

    def expect(self, key: Hashable) -> None:
        """Hold `key`'s messages until `start` says where they begin (a key already followed
        keeps its place)."""
        if key not in self._lines:
            self._lines[key] = _Line(expected=None, started=False)

    def start(self, key: Hashable, seq: int | None, *, now: float) -> list[Message]:
        """Deliver `key`'s messages above `seq` (its snapshot, or the number read when the
        subscription began); None: from whatever arrives first. Returns the held messages now
        ready, in order. A key already started keeps its place."""
        line = self._lines.get(key)
        if line is not None and line.started:
            return []
        if line is None:
            line = self._lines[key] = _Line(expected=None)
        line.started = True
        line.expected = None if seq is None else seq + 1
        for held_seq in [s for s in line.held if line.expected is not None and s < line.expected]:
            del line.held[held_seq]
        if not line.held:
            return []
        if line.expected is None:
            line.expected = min(line.held)
        ready = self._release(line)
        if line.held:
            line.held_since = now
        return ready

    def lines(self) -> list[Hashable]:
        return list(self._lines)

    def keep_only(self, keys: set[Hashable]) -> None:
        """Forget every key not in `keys` (their subscriptions ended)."""
        for key in set(self._lines) - keys:
            del self._lines[key]

    def accept(self, key: Hashable, message: Message, now: float) -> list[Message]:
        """The messages ready to go out, in order, once `message` arrived."""
        line = self._lines.get(key)
        if line is None:
            return []
        seq = message["seq"]
        if not line.started:
            line.held[seq] = message
            if len(line.held) > self.window_messages * WAITING_LIMIT:
                del line.held[min(line.held)]  # a start that never came: keep the newest only
            return []
        if line.expected is None:
            line.expected = seq
        if seq < line.expected or seq in line.held:
            return []
        if seq == line.expected:
            line.expected += 1
            return [message, *self._release(line)]
        line.held[seq] = message
        if line.held_since is None:
            line.held_since = now
        return self._skip(line, now) if len(line.held) >= self.window_messages else []

    def due(self, now: float) -> list[Message]:
        """What has waited a full window: sent as it is (the client sees the gap)."""
        ready: list[Message] = []
        for line in self._lines.values():
            if line.held_since is not None and now - line.held_since >= self.window_seconds:
                ready += self._skip(line, now)
        return ready

    def next_due(self) -> float | None:
        """When the oldest held message's window runs out (monotonic seconds), if any is held."""
        started = [line.held_since for line in self._lines.values() if line.held_since is not None]
        return min(started) + self.window_seconds if started else None

    def _release(self, line: _Line) -> list[Message]:
        ready = []
        while line.expected in line.held:
            ready.append(line.held.pop(line.expected))
            line.expected += 1
        if not line.held:
            line.held_since = None
        return ready

    def _skip(self, line: _Line, now: float) -> list[Message]:
        """Give up on the missing message(s): jump to the lowest held one and release from it;
        what is still held after another gap waits a window of its own."""
        line.expected = min(line.held)
        ready = self._release(line)
        if line.held:
            line.held_since = now
        return ready


@dataclass
class BookCoalescer:
    """The book diffs of one subscription, merged until its next send."""

    first_seq: int | None = None
    seq: int = 0
    bids: dict[str, str] = field(default_factory=dict)
    asks: dict[str, str] = field(default_factory=dict)

    def add(self, message: Message) -> None:
        if self.first_seq is None:
            self.first_seq = message.get("first_seq", message["seq"])
        self.seq = message["seq"]
        for side, levels in (("bids", self.bids), ("asks", self.asks)):
            for price, size in message["data"][side]:
                levels[price] = size

    def take(self, stream: str, ts: int) -> Message | None:
        """The merged diff (then empty), or None if nothing came since the last one."""
        if self.first_seq is None:
            return None
        merged = {
            "stream": stream,
            "first_seq": self.first_seq,
            "seq": self.seq,
            "ts": ts,
            "data": {
                "snapshot": False,
                "bids": sorted(([p, s] for p, s in self.bids.items()), key=_price, reverse=True),
                "asks": sorted(([p, s] for p, s in self.asks.items()), key=_price),
            },
        }
        self.first_seq, self.bids, self.asks = None, {}, {}
        return merged


def _price(level: list[str]) -> Decimal:
    return Decimal(level[0])
