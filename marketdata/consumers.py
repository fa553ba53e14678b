"""The WebSocket endpoint `/ws/v1/` (DESIGN §8, ADR 0006).

Client → server, one JSON object per frame:

- `{"op": "auth", "api_key": "tpk_…"}` → `{"op": "authenticated", "user": …}` (or send the key
  in the handshake's `X-API-Key` / `Authorization: Api-Key …` header, or come with the
  portal's session cookie);
- `{"op": "subscribe", "streams": ["trades.BTCUSDT", "book.BTCUSDT@100ms", "orders", "jobs"]}` →
  `{"op": "subscribed", "streams": [...]}`; a book subscription then starts with a snapshot;
- `{"op": "unsubscribe", "streams": [...]}` → `{"op": "unsubscribed", "streams": [...]}`;
- `{"op": "list"}` → `{"op": "list", "streams": [...]}`;
- `{"op": "ping"}` → `{"op": "pong", "ts": <ms>}`.

Server → client: stream messages `{"stream", "seq", "ts", "data"}` (private ones also carry
`account`; coalesced book diffs `first_seq`), and error frames `{"op": "error", "code",
"message"}`. A client that floods frames is closed with 4029, one whose key fails with 4001.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from marketdata.delivery import BookCoalescer, Message
from marketdata.fanout import Outgoing, client_text, stream_hub
from marketdata.models import Instrument
from marketdata.selectors import tape_seqs
from marketdata.streams import (
    PRIVATE,
    USER_STREAMS,
    StreamName,
    account_group,
    serving_loop_set,
    stream_parse,
    user_group,
)
from marketdata.tickers import ticker_hub, ticker_message
from portal.api_keys import ApiKeyRejected, api_key_authenticate
from portal.asgi_server import FRAMES_EXTENSION
from portal.choices import ApiKeyScope
from portal.net import client_ip_from
from portal.users import user_stream_seq
from trading.events import PRIVATE_ORDER, levels_json
from trading.selectors import Depth, account_stream_seqs, book_depth

#: Close codes: a key that failed, a client that floods the server.
CLOSE_UNAUTHORIZED = 4001
CLOSE_FLOOD = 4029


@dataclass
class _Subscription:
    """One subscribed name: the keys it follows in the process's hub (a public stream's name, or
    an account's key), the accounts it covers (private streams), the number it started from (a
    book's snapshot, the last ticker sent), and its coalesced diffs (a book with an update speed)."""

    stream: StreamName
    keys: tuple[str, ...]
    accounts: frozenset[int] = frozenset()
    floor: int = 0
    #: A private subscription's starting number per account.
    floors: dict[int, int] = field(default_factory=dict)
    #: Messages that arrived while the starting point was read (None once it is known).
    waiting: list[Message] | None = field(default_factory=list)
    coalescer: BookCoalescer = field(default_factory=BookCoalescer)
    flush_at: float | None = None


class StreamConsumer(AsyncJsonWebsocketConsumer):
    #: Stream messages reach a connection from its process's `StreamHub`, so a connection has
    #: no channel layer channel of its own (an unknown alias: Channels then opens none).
    channel_layer_alias = "tradeport-streams-via-hub"

    async def connect(self) -> None:
        serving_loop_set(asyncio.get_running_loop())
        self.subscriptions: dict[str, _Subscription] = {}
        #: The public subscriptions by the stream their messages carry (`_route`).
        self.routes: dict[str, list[_Subscription]] = {}
        user = self.scope.get("user")
        self.user = user if getattr(user, "is_authenticated", False) else None
        self.can_read_private = self.user is not None
        self.window_start, self.window_count = time.monotonic(), 0
        self.timer: asyncio.TimerHandle | None = None
        #: The server's frames extension, when it has one (portal/asgi_server.py).
        frames = (self.scope.get("extensions") or {}).get(FRAMES_EXTENSION) or {}
        self.write_frame: Callable[[bytes, str], None] | None = frames.get("write")
        self.prepare_frame: Callable[[str], bytes] | None = frames.get("prepare")
        await self.accept()
        presented = _presented_key(self.scope)
        if presented is not None:
            await self._authenticate(presented)

    async def disconnect(self, code: int) -> None:
        if self.timer is not None:
            self.timer.cancel()
        for sub in self.subscriptions.values():
            if sub.stream.kind == "ticker":
                await ticker_hub().unfollow(sub.stream.symbol, self)
        for key in self._keys():
            await stream_hub().unfollow(key, self)

    # -- client frames ---------------------------------------------------------------------

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
            await self.send_json({"op": "list", "streams": sorted(self.subscriptions)})
        elif op == "auth":
            key = content.get("api_key")
            if not isinstance(key, str) or not key:
                await self._error("bad_auth", '"api_key" must be the API key, as a string.')
            else:
                await self._authenticate(key)
        elif op in ("subscribe", "unsubscribe"):
            streams = content.get("streams")
            if not isinstance(streams, list) or not streams or not all(isinstance(s, str) for s in streams):
                await self._error("bad_streams", '"streams" must be a non-empty list of stream names.')
            elif op == "subscribe":
                await self._subscribe(streams)
            else:
                await self._unsubscribe(streams)
        else:
            await self._error("unknown_op", "op must be one of auth, subscribe, unsubscribe, list, ping.")

    async def _authenticate(self, raw_key: str) -> None:
        try:
            api_key = await database_sync_to_async(api_key_authenticate)(raw_key=raw_key, ip=_scope_ip(self.scope))
        except ApiKeyRejected as rejected:
            await self._error("auth_failed", f"{rejected.message} ({rejected.code})")
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.user = api_key.user
        self.can_read_private = api_key.has_scope(ApiKeyScope.READ)
        await self.send_json({"op": "authenticated", "user": self.user.get_username()})

    async def _subscribe(self, names: list[str]) -> None:
        parsed = {name: stream_parse(name) for name in names}
        wanted = {found.name: found for found in parsed.values() if found is not None}
        symbols = {found.symbol for found in wanted.values() if found.symbol}
        known = set(await database_sync_to_async(tape_seqs)(symbols=symbols)) if symbols else set()
        unknown = [
            name for name, found in parsed.items() if found is None or (found.symbol and found.symbol not in known)
        ]
        if unknown:
            await self._error("unknown_stream", f"No such stream: {', '.join(unknown)}. {STREAMS_AVAILABLE}")
            return
        new = [found for name, found in sorted(wanted.items()) if name not in self.subscriptions]
        if len(self.subscriptions) + len(new) > settings.WS_MAX_STREAMS:
            await self._error("too_many_streams", f"At most {settings.WS_MAX_STREAMS} streams per connection.")
            return
        accounts = await self._accounts_of([found for found in new if found.kind in PRIVATE | USER_STREAMS])
        if accounts is None:
            return
        for found in new:
            covered: frozenset[int] = frozenset()
            if found.kind in PRIVATE:
                covered = accounts if found.account_id is None else frozenset({found.account_id})
                keys = tuple(account_group(pk) for pk in sorted(covered))
            elif found.kind in USER_STREAMS:
                assert self.user is not None  # _accounts_of refused an anonymous subscriber
                keys = (user_group(self.user.pk),)
            else:
                keys = () if found.kind == "ticker" else (found.group,)
            for key in set(keys) - self._keys():
                await stream_hub().follow(key, self)
            self.subscriptions[found.name] = _Subscription(found, keys, covered)
        self._route()
        for line in self._order_lines(new):
            stream_hub().expect(line)
        starts = await database_sync_to_async(_start_points)(new, self.user)
        await self.send_json({"op": "subscribed", "streams": sorted(wanted)})
        for found in new:
            await self._start(self.subscriptions[found.name], starts)

    async def _accounts_of(self, private: list[StreamName]) -> frozenset[int] | None:
        """The user's own accounts, when the private subscriptions asked for (accounts' streams,
        `jobs`, `strategies`) are theirs; None after an error frame."""
        if not private:
            return frozenset()
        names = ", ".join(found.name for found in private)
        if self.user is None or not self.can_read_private:
            await self._error(
                "unauthorized_stream", f"{names}: authenticate first (a session, or an API key with the read scope)."
            )
            return None
        owned = frozenset(await database_sync_to_async(account_stream_seqs)(user=self.user))
        refused = [found.name for found in private if found.account_id is not None and found.account_id not in owned]
        if refused:
            await self._error("unauthorized_stream", f"{', '.join(refused)}: not an account of yours.")
            return None
        return owned

    async def _start(self, sub: _Subscription, starts: dict[Hashable, Any]) -> None:
        """Where a new subscription's messages start: after its book snapshot (sent now), or
        after the counters read once its groups were joined (what came before is in REST); what
        arrived meanwhile waited and follows."""
        found = sub.stream
        if found.kind == "ticker":
            if starts.get(found.group) is not None:
                sub.floor = starts[found.group]["seq"]
                await self.send(text_data=client_text(starts[found.group]))
            sub.waiting = None
            await ticker_hub().follow(found.symbol, self, seq=sub.floor)
            return
        lines: dict[Hashable, int]
        if found.kind in PRIVATE:
            sub.floors = {account_id: starts[(found.kind, account_id)] for account_id in sub.accounts}
            lines = {(found.kind, account_group(account_id)): seq for account_id, seq in sub.floors.items()}
        elif found.kind in USER_STREAMS:
            sub.floor = starts[found.kind]
            lines = {(found.kind, sub.keys[0]): sub.floor}
        else:
            sub.floor = starts[found.group].sequence if found.kind == "book" else starts[found.group]
            lines = {found.group: sub.floor}
        for line, seq in lines.items():
            await stream_hub().start(line, seq)
        if found.kind == "book":
            await self.send_json(_snapshot_json(found.name, starts[found.group]))
        while sub.waiting:
            message = sub.waiting.pop(0)
            if self._take(sub, message, waited=True) and not self._sent_by_another(sub, message):
                await self._send_stream(message, None)
        sub.waiting = None

    async def _unsubscribe(self, names: list[str]) -> None:
        parsed = [stream_parse(name) for name in names]
        gone = sorted({found.name for found in parsed if found is not None} & set(self.subscriptions))
        kept_before = self._keys()
        for name in gone:
            found = self.subscriptions.pop(name).stream
            if found.kind == "ticker":
                await ticker_hub().unfollow(found.symbol, self)
        self._route()
        for key in kept_before - self._keys():
            await stream_hub().unfollow(key, self)
        await self.send_json({"op": "unsubscribed", "streams": gone})

    # -- stream messages -------------------------------------------------------------------

    async def hub_message(self, outgoing: Outgoing) -> None:
        """A stream message from the process's hub, in order: to the subscriptions it belongs to."""
        message = outgoing.message
        if message["stream"] in PRIVATE:
            subs: Iterable[_Subscription] = self.subscriptions.values()
        else:
            subs = self.routes.get(message["stream"], ())
        wanted = False
        for sub in subs:
            if self._take(sub, message):
                wanted = True
        if wanted:
            await self._send_stream(message, outgoing)

    def _take(self, sub: _Subscription, message: Message, *, waited: bool = False) -> bool:
        """Whether `sub` sends `message` as it is. A subscription still reading its starting
        point keeps the message for then (unless `waited`: it is that moment); a coalesced book
        merges it into its next diff."""
        if not _covers(sub, message):
            return False
        if sub.waiting is not None and not waited:
            sub.waiting.append(message)
            return False
        if message["seq"] <= _floor(sub, message):
            return False
        if sub.stream.interval_ms:
            sub.coalescer.add(message)
            if sub.flush_at is None:
                sub.flush_at = self._now() + sub.stream.interval_ms / 1000
                self._arm()
            return False
        if sub.stream.kind == "ticker":
            sub.floor = message["seq"]
        return True

    def _sent_by_another(self, sub: _Subscription, message: Message) -> bool:
        """Whether another subscription already sent this private message (a client gets each
        once, however many of its subscriptions cover it)."""
        if message["stream"] not in PRIVATE:
            return False
        return any(
            other is not sub
            and other.waiting is None
            and _covers(other, message)
            and message["seq"] > _floor(other, message)
            for other in self.subscriptions.values()
        )

    async def _send_stream(self, message: Message, outgoing: Outgoing | None) -> None:
        """A stream message as the hub made it (its frame, when the server takes frames), or
        encoded here (one that waited for its subscription's start)."""
        if outgoing is None:
            await self.send(text_data=client_text(message))
        elif self.write_frame is None or self.prepare_frame is None:
            await self.send(text_data=outgoing.text)
        else:
            self.write_frame(outgoing.frame(self.prepare_frame), outgoing.text)

    def _arm(self) -> None:
        """Wake up when the next coalesced book is due."""
        due = [sub.flush_at for sub in self.subscriptions.values() if sub.flush_at is not None]
        if not due or (self.timer is not None and self.timer.when() <= min(due)):
            return
        if self.timer is not None:
            self.timer.cancel()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_at(min(due), lambda: loop.create_task(self._on_timer()))

    async def _on_timer(self) -> None:
        self.timer = None
        now = self._now()
        for sub in list(self.subscriptions.values()):
            if sub.flush_at is not None and sub.flush_at <= now:
                sub.flush_at = None
                merged = sub.coalescer.take(sub.stream.name, int(time.time() * 1000))
                if merged is not None:
                    await self.send_json(merged)
        self._arm()

    # -- helpers ---------------------------------------------------------------------------

    def _route(self) -> None:
        self.routes = {}
        for sub in self.subscriptions.values():
            if sub.stream.group:
                self.routes.setdefault(sub.stream.group, []).append(sub)

    def _keys(self) -> set[str]:
        return {key for sub in self.subscriptions.values() for key in sub.keys}

    def _order_lines(self, names: list[StreamName] | None = None) -> set[Hashable]:
        """The sequences (`fanout.order_line`) the subscriptions of `names` follow (of every
        subscription by default)."""
        subs = self.subscriptions.values() if names is None else [self.subscriptions[found.name] for found in names]
        keys: set[Hashable] = set()
        for sub in subs:
            if sub.stream.kind == "ticker":
                continue
            if sub.stream.kind in PRIVATE:
                keys |= {(sub.stream.kind, account_group(account_id)) for account_id in sub.accounts}
            elif sub.stream.kind in USER_STREAMS:
                keys.add((sub.stream.kind, sub.keys[0]))
            else:
                keys.add(sub.stream.group)
        return keys

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

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


STREAMS_AVAILABLE = (
    "Available: trades.<SYMBOL>, book.<SYMBOL> (or @100ms, @1000ms), ticker.<SYMBOL>, "
    "candles.<SYMBOL>.<interval>, and your own orders, fills, balances (or .<account id>), jobs and strategies."
)


def _start_points(new: list[StreamName], user) -> dict[Hashable, Any]:
    """Read once the groups are joined: each new subscription's starting number (the book's
    snapshot for a book)."""
    starts: dict[Hashable, Any] = {}
    symbols = {found.symbol for found in new if found.kind in ("trades", "candles")}
    tape = tape_seqs(symbols=symbols) if symbols else {}
    for found in new:
        if found.kind == "book" and found.group not in starts:
            starts[found.group] = book_depth(
                instrument=Instrument.objects.get(symbol=found.symbol), levels=settings.WS_BOOK_SNAPSHOT_LEVELS
            )
        elif found.kind in ("trades", "candles"):
            starts[found.group] = tape[found.symbol]
        elif found.kind == "ticker":
            starts[found.group] = ticker_message(found.symbol)
    private = [found for found in new if found.kind in PRIVATE]
    if private:
        for account_id, counters in account_stream_seqs(user=user).items():
            for kind, seq in zip(PRIVATE_ORDER, counters, strict=True):
                starts[(kind, account_id)] = seq
    for kind in {found.kind for found in new} & USER_STREAMS:
        starts[kind] = user_stream_seq(user=user, stream=kind)
    return starts


def _covers(sub: _Subscription, message: Message) -> bool:
    """Whether `message` belongs to `sub`: a private one to its stream and accounts (a public
    one reaches only the subscriptions routed by its stream)."""
    if message["stream"] not in PRIVATE:
        return True
    return sub.stream.kind == message["stream"] and message["account"] in sub.accounts


def _floor(sub: _Subscription, message: Message) -> int:
    """The number `sub` starts above for `message`'s sequence."""
    return sub.floors.get(message["account"], 0) if "account" in message else sub.floor


def _snapshot_json(name: str, depth: Depth) -> Message:
    return {
        "stream": name,
        "seq": depth.sequence,
        "ts": int(time.time() * 1000),
        "data": {
            "snapshot": True,
            "bids": levels_json((level.price, level.quantity) for level in depth.bids),
            "asks": levels_json((level.price, level.quantity) for level in depth.asks),
        },
    }


def _presented_key(scope: dict) -> str | None:
    """An API key sent with the handshake: `X-API-Key: <key>` or `Authorization: Api-Key <key>`."""
    headers = dict(scope.get("headers") or [])
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "api-key" and credentials.strip():
        return credentials.strip()
    key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return key or None


def _scope_ip(scope: dict) -> str | None:
    headers = dict(scope.get("headers") or [])
    client = scope.get("client") or ("", 0)
    return client_ip_from(client[0] or "", headers.get(b"x-forwarded-for", b"").decode("latin-1"))
