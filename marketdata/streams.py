"""The WebSocket streams' names and their fan-out (DESIGN §8, ADR 0006).

After a transaction commits, the engine's events reach `publish` (a `trading_events_committed`
receiver), which sends the transaction's stream messages as one batch to the channel layer
group of their instrument or account (`layer_group`); in each serving process the `StreamHub`
(`marketdata.fanout`) that is a member of the group hands each message to the connections
that follow its stream. A message carries `seq`, given
inside the transaction under the instrument's lock, so a client sees the commit order and any
gap (then it resyncs from REST, which is the truth).

- `trades.<SYMBOL>`: one message per transaction that traded (its trades), and
  `candles.<SYMBOL>.<interval>`: the candle that transaction changed; both numbered by the
  instrument's `tape_seq`;
- `book.<SYMBOL>`: one diff per transaction that changed a price level, numbered by
  `book_seq` (the consumer sends a snapshot first);
- `ticker.<SYMBOL>`: the 24 h ticker, read by the serving processes that have subscribers
  (`marketdata.tickers`), at most once per `WS_TICKER_INTERVAL_MS`;
- `orders`, `fills`, `balances`: one message per order, fill or balance changed, numbered per
  account and stream by the account's counters, sent to the account's group;
- `jobs`: one message per change of one of the user's jobs (status, progress), numbered by the
  user's counter (`portal.jobs`, ADR 0007), sent to the user's group;
- `strategies`: one message per change of one of the user's strategies (status, position, P&L
  after each step of the runner), numbered by the user's own counter for it (ADR 0008), sent to
  the user's group.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
import weakref
from typing import Any, NamedTuple

import structlog
from channels.layers import get_channel_layer

from trading.events import PRIVATE_STREAMS, TradingEvent

logger = structlog.get_logger("marketdata.streams")

#: Public streams a client may subscribe to: the kind, then the symbol (and the interval, or
#: for the book an update speed: diffs merged and sent every 100 ms or 1000 ms).
STREAM_PATTERNS = {
    "trades": re.compile(r"^trades\.([A-Z0-9]{2,32})$"),
    "book": re.compile(r"^book\.([A-Z0-9]{2,32})(?:@(100|1000)MS)?$"),
    "ticker": re.compile(r"^ticker\.([A-Z0-9]{2,32})$"),
    "candles": re.compile(r"^candles\.([A-Z0-9]{2,32})\.(1M|5M|15M|1H|4H|1D)$"),
}
#: Private streams: the subscriber's own accounts' orders, fills and balances, all of them
#: (`orders`) or one (`orders.<account id>`).
PRIVATE = frozenset(PRIVATE_STREAMS.values())
_PRIVATE_PATTERN = re.compile(r"^(orders|fills|balances)(?:\.([0-9]{1,18}))?$")
#: The subscriber's own streams that are not an account's: their jobs and their strategies.
JOBS = "jobs"
STRATEGIES = "strategies"
USER_STREAMS = frozenset({JOBS, STRATEGIES})


class StreamName(NamedTuple):
    """A parsed subscription. `name` is canonical (symbols upper case, intervals lower case);
    `group` is the channel layer group of a public stream (its messages' `stream`)."""

    name: str
    kind: str
    symbol: str = ""
    group: str = ""
    interval_ms: int = 0
    account_id: int | None = None


def stream_parse(name: str) -> StreamName | None:
    """The subscription a name such as `trades.btcusdt`, `book.BTCUSDT@100ms`,
    `candles.BTCUSDT.1m` or `orders.42` stands for, or None when no stream has that shape."""
    if name.lower() in USER_STREAMS:
        return StreamName(name.lower(), name.lower(), group=name.lower())
    private = _PRIVATE_PATTERN.match(name.lower())
    if private is not None:
        account = private.group(2)
        return StreamName(name.lower(), private.group(1), account_id=int(account) if account else None)
    kind, _, rest = name.partition(".")
    pattern = STREAM_PATTERNS.get(kind)
    match = pattern.match(f"{kind}.{rest.upper()}") if pattern else None
    if match is None:
        return None
    symbol = match.group(1)
    if kind == "candles":
        group = f"candles.{symbol}.{match.group(2).lower()}"
        return StreamName(group, kind, symbol, group)
    if kind == "book" and match.group(2):
        return StreamName(f"book.{symbol}@{match.group(2)}ms", kind, symbol, f"book.{symbol}", int(match.group(2)))
    return StreamName(f"{kind}.{symbol}", kind, symbol, f"{kind}.{symbol}")


def account_group(account_id: int) -> str:
    """The key of one account's private messages (all three streams); also its channel layer group."""
    return f"account.{account_id}"


def user_group(user_id: int) -> str:
    """The key of one user's `jobs` and `strategies` messages; also its channel layer group."""
    return f"user.{user_id}"


def layer_group(key: str) -> str:
    """The channel layer group that carries the messages of `key` (a public stream's name, or
    an account's or a user's key): one group per instrument for all its public streams, one per
    account, one per user. A transaction's messages to one group travel as one batch (`_Sender`)."""
    if key.startswith(("account.", "user.")):
        return key
    return f"instrument.{key.split('.')[1]}"


def publish(sender: Any, events: list[TradingEvent], **kwargs: Any) -> None:
    """`trading_events_committed` receiver: a committed transaction's stream messages, handed
    over to the sender in one go (so they leave as one batch per channel layer group). The
    committing thread only hands them over (`_sender`); the channel layer may drop a message
    under load, and the client sees that as a gap in `seq`."""
    messages = [message for event in events for message in _messages(event)]
    if messages:
        _sender.send(messages)


def publish_job(sender: Any, job: Any, seq: int, **kwargs: Any) -> None:
    """`portal.jobs.job_changed` receiver: the job as the API shows it, on its owner's `jobs` stream."""
    from portal.api.v1.serializers import JobSerializer

    key = user_group(job.owner_id)
    _sender.send([_message(key, JOBS, seq, JobSerializer(job).data)])


def publish_strategy(sender: Any, strategy: Any, seq: int, **kwargs: Any) -> None:
    """`trading.strategies.services.strategy_changed` receiver: the strategy as the API shows it,
    on its owner's `strategies` stream."""
    from trading.api.v1.strategy_serializers import StrategySerializer

    key = user_group(strategy.owner_id)
    _sender.send([_message(key, STRATEGIES, seq, StrategySerializer(strategy).data)])


def _messages(event: TradingEvent) -> list[tuple[str, dict]]:
    """(channel layer group, message) for each stream message of `event`."""
    if event.kind in PRIVATE_STREAMS and event.account_id is not None:
        key = account_group(event.account_id)
        return [_message(key, PRIVATE_STREAMS[event.kind], event.seq, event.data, account=event.account_id)]
    if event.kind == "trades":
        return [_message(f"trades.{event.symbol}", f"trades.{event.symbol}", event.seq, event.data["trades"])]
    if event.kind == "book":
        book = f"book.{event.symbol}"
        return [_message(book, book, event.seq, {"snapshot": False, **event.data})]
    if event.kind == "candles":
        streams = ((f"candles.{event.symbol}.{interval}", candle) for interval, candle in event.data["candles"].items())
        return [_message(stream, stream, event.seq, candle) for stream, candle in streams]
    return []


def _message(key: str, stream: str, seq: int, data: Any, **extra: Any) -> tuple[str, dict]:
    """One message for the followers of `key`, bound for its channel layer group; the serving
    process's hub (`marketdata.fanout`) hands it to the connections that follow the key."""
    message = {"key": key, "stream": stream, "seq": seq, "ts": int(time.time() * 1000), "data": data}
    return layer_group(key), {**message, **extra}


def serving_loop_set(loop: asyncio.AbstractEventLoop) -> None:
    """The event loop of this process's ASGI server (its consumers' loop): messages are sent
    from it, so an in-memory channel layer is only ever touched from the loop that owns it."""
    _sender.serving_loop = loop


class _Sender:
    """Sends stream messages from one event loop per process, one after the other in the
    order they were handed over: the ASGI server's loop where there is one, else a daemon
    thread's own loop (started on first use, and again after a fork: gunicorn's workers). A
    committed order never waits for Redis; the channel layer's connections live as long as the
    loop; and one send at a time keeps the order and a bounded number of Redis connections
    (sends that all ran at once emptied redis-py's pool under load, and the messages failed)."""

    def __init__(self) -> None:
        self.serving_loop: asyncio.AbstractEventLoop | None = None
        self._own: tuple[int, asyncio.AbstractEventLoop] | None = None
        self._lock = threading.Lock()
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Queue] = weakref.WeakKeyDictionary()

    def send(self, messages: list[tuple[str, dict]]) -> None:
        """Hand over (group, message) pairs; they are queued in one step on the sending loop."""
        layer = get_channel_layer()
        if layer is not None:
            loop = self._target()
            loop.call_soon_threadsafe(self._enqueue, loop, layer, messages)

    def _enqueue(self, loop: asyncio.AbstractEventLoop, layer: Any, messages: list[tuple[str, dict]]) -> None:
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = asyncio.Queue(maxsize=SEND_QUEUE_LIMIT)
            loop.create_task(self._drain(queue, layer))
        for group, message in messages:
            try:
                queue.put_nowait((group, message))
            except asyncio.QueueFull:  # Redis is away: the clients will see the gap in seq
                logger.error("stream_publish_dropped", stream=message["stream"], seq=message["seq"])

    async def _drain(self, queue: asyncio.Queue, layer: Any) -> None:
        """Send what is queued, one batch per group: the messages a transaction produced for an
        instrument (tape, candles, book) or an account (orders, fills, balances) are handed
        over together, so they leave as one channel layer message instead of about fifteen."""
        while True:
            batches: dict[str, list[dict]] = {}
            group, message = await queue.get()
            batches[group] = [message]
            while not queue.empty() and sum(map(len, batches.values())) < BATCH_LIMIT:
                group, message = queue.get_nowait()
                batches.setdefault(group, []).append(message)
            for group, parts in batches.items():
                try:
                    await layer.group_send(group, {"type": "stream.batch", "group": group, "parts": parts})
                except Exception as error:  # noqa: BLE001 - one failed send must not stop the next
                    logger.error("stream_publish_failed", group=group, messages=len(parts), error=repr(error))

    def _target(self) -> asyncio.AbstractEventLoop:
        if self.serving_loop is not None and self.serving_loop.is_running():
            return self.serving_loop
        with self._lock:
            if self._own is None or self._own[0] != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="tradeport-streams", daemon=True).start()
                self._own = (os.getpid(), loop)
            return self._own[1]


#: Messages a process holds for the channel layer before it drops new ones (Redis away).
SEND_QUEUE_LIMIT = 10_000
#: Messages sent as one batch at most.
BATCH_LIMIT = 500


_sender = _Sender()
