#!/usr/bin/env python
"""bench/ws_load: the child processes of bench/ws_fanout.py, one role per subcommand.

    python -m bench.ws_load clients --port P --clients N --streams trades.BTCUSDT,book.BTCUSDT
    python -m bench.ws_load trader            # Django, places orders at a fixed rate on command
    python -m bench.ws_load layer-recv --channels N --messages M --group G
    python -m bench.ws_load layer-send --messages M --group G

Each one talks to bench/ws_fanout.py through its stdin and stdout: commands are JSON lines on
stdin, answers are lines `WSBENCH <json>` on stdout (anything else a library prints there is
ignored). The Django roles read their settings from the environment bench/ws_fanout.py gives
them (DATABASE_URL, REDIS_URL, CHANNEL_LAYER, ...).

`clients` is the WebSocket load generator: N connections to daphne in one asyncio process, each
subscribed to the streams. It speaks the WebSocket protocol itself (RFC 6455 client frames on an
`asyncio.Protocol`, no permessage-deflate, which daphne does not offer anyway): about a third
of the CPU per received message of a `websockets` client task per connection, so the
generator, which shares the machine's two cores with daphne, gets in the way of the
measurement as little as it can. Per message it records the delivery latency (receive time
minus the message's `ts`, both `time.time()` of this machine) and checks `seq` per stream per
connection.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import struct
import sys
import time

#: Latency histogram: 1 ms buckets; the last one holds everything from HIST_MS on.
HIST_MS = 30_000


def emit(payload: dict) -> None:
    sys.stdout.write("WSBENCH " + json.dumps(payload) + "\n")
    sys.stdout.flush()


def raise_nofile() -> int:
    """Raise this process's open-file limit to its hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def stdin_lines():
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        if line.strip():
            yield json.loads(line)


# --------------------------------------------------------------------------- the load generator


class StepStats:
    """What the connections of one process received during one step (one trade rate)."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}
        self.snapshots = 0
        self.hist: dict[str, list[int]] = {}
        self.gap_missing: dict[str, int] = {}
        self.gap_events: dict[str, int] = {}
        self.out_of_order: dict[str, int] = {}
        self.first_recv: float | None = None
        self.last_recv: float | None = None
        self.bytes = 0

    def hist_for(self, stream: str) -> list[int]:
        hist = self.hist.get(stream)
        if hist is None:
            hist = self.hist[stream] = [0] * (HIST_MS + 1)
            self.count[stream] = 0
            self.gap_missing[stream] = 0
            self.gap_events[stream] = 0
            self.out_of_order[stream] = 0
        return hist


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    """One client frame (FIN set), masked as RFC 6455 requires of a client."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    if length:
        repeated = (mask * (length // 4 + 1))[:length]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")
    return header + mask + payload


class WsClient(asyncio.Protocol):
    """One WebSocket connection: the handshake, then frames parsed as they arrive."""

    def __init__(self, gen: Generator, port: int) -> None:
        self.gen = gen
        self.port = port
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.open = False
        self.fragments: list[bytes] = []
        self.handshake: asyncio.Future = asyncio.get_running_loop().create_future()
        self.reply: asyncio.Future | None = None
        #: Last seq per stream (kept across steps: a gap between two steps counts too).
        self.last: dict[str, int] = {}
        self.closed_reason = ""

    # -- asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET /ws/v1/ HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                "Origin: http://localhost\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc) -> None:
        if self.open:
            self.gen.closed += 1
            self.closed_reason = self.closed_reason or repr(exc)
        self.open = False
        for future in (self.handshake, self.reply):
            if future is not None and not future.done():
                future.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        now = time.time() * 1000.0
        buffer = self.buffer
        buffer += data
        if not self.open:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.handshake.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace")))
                return
            self.open = True
            self.handshake.set_result(True)
        offset = 0
        size = len(buffer)
        while size - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            length = second & 0x7F
            start = offset + 2
            if length == 126:
                if size - offset < 4:
                    break
                length = int.from_bytes(buffer[start : start + 2], "big")
                start += 2
            elif length == 127:
                if size - offset < 10:
                    break
                length = int.from_bytes(buffer[start : start + 8], "big")
                start += 8
            if second & 0x80:  # a masked server frame is a protocol error; skip its key
                start += 4
            if size < start + length:
                break
            payload = bytes(buffer[start : start + length])
            offset = start + length
            opcode = first & 0x0F
            if opcode in (1, 2, 0):
                if not first & 0x80:
                    self.fragments.append(payload)
                    continue
                if self.fragments:
                    payload = b"".join([*self.fragments, payload])
                    self.fragments = []
                self.gen.stats.bytes += len(payload)
                self.on_message(payload, now)
            elif opcode == 9:  # ping: answer at once, or daphne closes the socket after --ping-timeout
                self.transport.write(_masked_frame(10, payload))
            elif opcode == 8:
                self.closed_reason = f"close frame {payload[:2].hex()} {payload[2:].decode(errors='replace')}"
                self.transport.write(_masked_frame(8, payload[:2]))
                self.transport.close()
                break
        if offset:
            del buffer[:offset]

    # -- messages
    def on_message(self, payload: bytes, now: float) -> None:
        message = json.loads(payload)
        stream = message.get("stream")
        if stream is None:
            if self.reply is not None and not self.reply.done():
                self.reply.set_result(message)
            elif message.get("op") == "error":
                self.gen.errors.append(message)
            return
        stats = self.gen.stats
        hist = stats.hist_for(stream)
        seq = message["seq"]
        data = message.get("data")
        if isinstance(data, dict) and data.get("snapshot"):
            stats.snapshots += 1
            self.last[stream] = seq
            return
        first_seq = message.get("first_seq")
        if first_seq is None and isinstance(data, dict):
            first_seq = data.get("first_seq")
        if first_seq is None:
            first_seq = seq
        last = self.last.get(stream)
        if last is not None:
            if first_seq > last + 1:
                stats.gap_missing[stream] += first_seq - last - 1
                stats.gap_events[stream] += 1
            elif seq <= last:
                stats.out_of_order[stream] += 1
        if last is None or seq > last:
            self.last[stream] = seq
        stats.count[stream] += 1
        latency = int(now - message["ts"])
        hist[latency if 0 <= latency < HIST_MS else (HIST_MS if latency > 0 else 0)] += 1
        if stats.first_recv is None:
            stats.first_recv = now
        stats.last_recv = now
        self.gen.last_frame = time.monotonic()

    async def request(self, payload: dict, timeout: float) -> dict:
        self.reply = asyncio.get_running_loop().create_future()
        self.transport.write(_masked_frame(1, json.dumps(payload).encode()))
        try:
            return await asyncio.wait_for(self.reply, timeout)
        finally:
            self.reply = None

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.open = False
            with contextlib.suppress(Exception):
                self.transport.write(_masked_frame(8, struct.pack("!H", 1000)))
            self.transport.close()


class Generator:
    def __init__(self, port: int, clients: int, streams: list[str], concurrency: int) -> None:
        self.port = port
        self.n = clients
        self.streams = streams
        self.concurrency = concurrency
        self.clients: list[WsClient] = []
        self.stats = StepStats()
        self.errors: list[dict] = []
        self.closed = 0
        self.last_frame = time.monotonic()
        self.lags: list[float] = []

    async def connect_all(self) -> dict:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(self.concurrency)
        started = time.perf_counter()

        async def one() -> None:
            async with gate:
                _, client = await loop.create_connection(lambda: WsClient(self, self.port), "127.0.0.1", self.port)
                self.clients.append(client)
                await asyncio.wait_for(client.handshake, 30)
                answer = await client.request({"op": "subscribe", "streams": self.streams}, 30)
                if answer.get("op") != "subscribed":
                    raise RuntimeError(f"subscribe answered {answer}")

        results = await asyncio.gather(*(one() for _ in range(self.n)), return_exceptions=True)
        failures = [repr(r) for r in results if isinstance(r, BaseException)]
        return {
            "connected": self.n - len(failures),
            "connect_s": time.perf_counter() - started,
            "failures": failures[:5],
            "failed": len(failures),
        }

    async def lag_monitor(self) -> None:
        """Event loop lag of this process: how late a 10 ms sleep wakes up."""
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            self.lags.append((time.perf_counter() - started - 0.01) * 1000)

    def start(self, baseline: dict[str, int]) -> None:
        self.stats = StepStats()
        self.errors = []
        self.closed = 0
        self.lags = []
        for stream, seq in baseline.items():
            for client in self.clients:
                client.last.setdefault(stream, seq)
        self.cpu_start = cpu_seconds_self()
        self.wall_start = time.perf_counter()

    async def drain(self, expect: dict[str, int], timeout: float, quiet: float) -> dict:
        """Wait until every connection has the expected last seq of each stream in `expect` and
        the other streams went quiet, or nothing arrived for `quiet` s, or `timeout` s passed;
        then the step's figures, counting what a connection still lacks as lost."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            idle = time.monotonic() - self.last_frame
            reached = all(c.last.get(s, -1) >= seq for c in self.clients if c.open for s, seq in expect.items())
            if (reached and idle >= min(0.3, quiet)) or idle >= quiet:
                break
            await asyncio.sleep(0.05)
        stats = self.stats
        tails: dict[str, int] = {}
        clients_with_loss = 0
        for stream in set(stats.count) | set(expect):
            end = expect.get(stream)
            if end is None:
                end = max((c.last.get(stream, -1) for c in self.clients), default=-1)
            stats.hist_for(stream)
            tails[stream] = sum(max(0, end - c.last.get(stream, end)) for c in self.clients)
        for client in self.clients:
            behind = any(client.last.get(stream, expect.get(stream, 0)) < expect.get(stream, -1) for stream in expect)
            clients_with_loss += behind
        lags = sorted(self.lags) or [0.0]
        return {
            "count": stats.count,
            "snapshots": stats.snapshots,
            "hist": {s: {str(i): n for i, n in enumerate(h) if n} for s, h in stats.hist.items()},
            "gap_missing": stats.gap_missing,
            "gap_events": stats.gap_events,
            "out_of_order": stats.out_of_order,
            "tail_missing": tails,
            "clients_behind": clients_with_loss,
            "first_recv": stats.first_recv,
            "last_recv": stats.last_recv,
            "bytes": stats.bytes,
            "closed": self.closed,
            "closed_since_connect": sum(not c.open for c in self.clients),
            "closed_reasons": [c.closed_reason for c in self.clients if c.closed_reason][:3],
            "open": sum(c.open for c in self.clients),
            "errors": self.errors[:5],
            "cpu_s": cpu_seconds_self() - self.cpu_start,
            "wall_s": time.perf_counter() - self.wall_start,
            "lag_p99_ms": lags[min(len(lags) - 1, int(len(lags) * 0.99))],
            "lag_max_ms": lags[-1],
        }


async def clients_main(args) -> None:
    nofile = raise_nofile()
    streams = [s for s in args.streams.split(",") if s]
    gen = Generator(args.port, args.clients, streams, args.concurrency)
    monitor = asyncio.create_task(gen.lag_monitor())
    connected = await gen.connect_all()
    emit({"ready": connected["failed"] == 0, "nofile": nofile, **connected, "errors": gen.errors[:5]})
    async for command in stdin_lines():
        if command["cmd"] == "start":
            gen.start(command.get("baseline", {}))
            emit({"started": True})
        elif command["cmd"] == "drain":
            emit(await gen.drain(command.get("expect", {}), command.get("timeout", 10), command.get("quiet", 1.5)))
        elif command["cmd"] == "quit":
            break
    monitor.cancel()
    for client in gen.clients:
        client.close()
    await asyncio.sleep(0.2)
    emit({"bye": True})


# --------------------------------------------------------------------------- the trader


def django_setup() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    django.setup()


def trader_main(args) -> None:
    """Places, each tick, a resting limit sell and a crossing limit buy at the same price from
    two accounts of the bench trader: one trade per tick, each order its own transaction, as
    two API clients would. Ticks are scheduled at a fixed rate from the step's start; a late
    tick runs at once (no skipping), so a trader that cannot keep up shows as a lower
    achieved rate."""
    django_setup()
    from decimal import Decimal

    from django.db import connection

    from marketdata.models import Instrument
    from trading.models import TradingAccount
    from trading.order_rules import OrderRejected, OrderRequest
    from trading.services import order_place

    symbol = args.symbol
    seller, buyer = TradingAccount.objects.filter(owner__username="bench-trader").order_by("id")[:2]
    price, quantity = Decimal(args.price), Decimal(args.quantity)
    sell = OrderRequest(side="SELL", type="LIMIT", quantity=quantity, price=price)
    buy = OrderRequest(side="BUY", type="LIMIT", quantity=quantity, price=price)

    def tape_seq() -> int:
        return Instrument.objects.values_list("tape_seq", flat=True).get(symbol=symbol)

    emit({"ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        if command.get("cmd") == "quit":
            break
        rate, seconds = float(command["rate"]), float(command["seconds"])
        ticks = max(1, round(rate * seconds))
        seq_start = tape_seq()
        cpu_start = cpu_seconds_self()
        durations: list[float] = []
        late_ms = 0.0
        rejected = 0
        started = time.perf_counter()
        for tick in range(ticks):
            due = started + tick / rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            else:
                late_ms = max(late_ms, -wait * 1000)
            t0 = time.perf_counter()
            for account, request in ((seller, sell), (buyer, buy)):
                try:
                    order_place(account=account, instrument=symbol, request=request, actor="ws-bench")
                except OrderRejected:
                    rejected += 1
            durations.append((time.perf_counter() - t0) * 1000)
        elapsed = time.perf_counter() - started
        span = max(elapsed, ticks / rate)  # the last tick's own duration is not a slower rate
        seq_end = tape_seq()
        durations.sort()
        emit(
            {
                "ticks": ticks,
                "seconds": elapsed,
                "achieved": ticks / span,
                "seq_start": seq_start,
                "seq_end": seq_end,
                "trades": seq_end - seq_start,
                "rejected": rejected,
                "tick_p50_ms": durations[len(durations) // 2],
                "tick_p99_ms": durations[min(len(durations) - 1, int(len(durations) * 0.99))],
                "late_max_ms": late_ms,
                "cpu_s": cpu_seconds_self() - cpu_start,
            }
        )
        connection.close()


# --------------------------------------------------------------------------- the layer alone

#: A `trades.BTCUSDT` message of one trade as the engine sends it (same keys, similar size).
SAMPLE_TRADES = [
    {
        "id": 123456,
        "symbol": "BTCUSDT",
        "price": "64000.00000000",
        "quantity": "0.00020000",
        "quote_quantity": "12.80000000",
        "taker_side": "BUY",
        "time": "2026-11-23T19:57:03.123456Z",
    }
]


def _layer():
    django_setup()
    from channels.layers import get_channel_layer

    return get_channel_layer()


def layer_recv_main(args) -> None:
    """N channels of this process in one group, each received by its own task: the layer
    delivering to N receivers, without sockets, daphne or Django (the goal's reference; daphne's
    StreamHub itself receives each message once per process, marketdata/fanout.py)."""
    raise_nofile()
    layer = _layer()

    async def run() -> dict:
        channels = [await layer.new_channel() for _ in range(args.channels)]
        for channel in channels:
            await layer.group_add(args.group, channel)
        counts = [0] * len(channels)
        lost = [0]
        times = {"first": None, "last": None}
        done = asyncio.Event()
        remaining = [len(channels)]
        total = [0]

        async def receiver(index: int, channel: str) -> None:
            last = 0
            while True:
                message = await layer.receive(channel)
                now = time.perf_counter()
                if times["first"] is None:
                    times["first"] = now
                times["last"] = now
                seq = message["seq"]
                if seq > last + 1:
                    lost[0] += seq - last - 1
                last = seq
                counts[index] += 1
                total[0] += 1
                if seq >= args.messages:
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        done.set()

        tasks = [asyncio.create_task(receiver(i, c)) for i, c in enumerate(channels)]
        await asyncio.sleep(0.2)
        emit({"ready": True})
        cpu_start = cpu_seconds_self()
        waited = 0.0
        while not done.is_set():
            before = total[0]
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(done.wait(), args.quiet)
            waited += args.quiet
            if done.is_set():
                break
            if total[0] == before and (times["first"] is not None or waited >= args.start_timeout):
                break  # nothing arrived for `quiet` seconds: the rest is lost
        cpu = cpu_seconds_self() - cpu_start
        for task in tasks:
            task.cancel()
        delivered = sum(counts)
        expected = args.messages * len(channels)
        seconds = (times["last"] - times["first"]) if times["first"] is not None else float("nan")
        return {
            "delivered": delivered,
            "expected": expected,
            "lost": expected - delivered,
            "gaps": lost[0],
            "seconds": seconds,
            "rate": delivered / seconds if seconds and seconds == seconds else 0.0,
            "cpu_s": cpu,
        }

    async def main() -> None:
        result = await asyncio.wait_for(run(), args.timeout)
        emit(result)

    try:
        asyncio.run(main())
    except TimeoutError:
        emit({"error": f"layer-recv did not finish within {args.timeout}s"})


def layer_send_main(args) -> None:
    """`group_send` of M messages, one after another as fast as the layer takes them, from its
    own process (as the trading process publishes). With `--stream`, each is a batch of one
    message of that stream numbered from `--after` + 1, as the trading process sends them to
    the serving processes' hubs (the layer-fed step of bench/ws_fanout)."""
    layer = _layer()

    async def run() -> dict:
        started = time.perf_counter()
        for seq in range(args.after + 1, args.after + args.messages + 1):
            message = {
                "type": "stream.message",
                "stream": args.stream or "trades.BTCUSDT",
                "seq": seq,
                "ts": int(time.time() * 1000),
                "data": SAMPLE_TRADES,
            }
            if args.stream:
                part = {**message, "key": args.stream}
                del part["type"]
                message = {"type": "stream.batch", "group": args.group, "parts": [part]}
            await layer.group_send(args.group, message)
        return {"sent": args.messages, "seconds": time.perf_counter() - started}

    emit(asyncio.run(run()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="role", required=True)
    clients = sub.add_parser("clients")
    clients.add_argument("--port", type=int, required=True)
    clients.add_argument("--clients", type=int, required=True)
    clients.add_argument("--streams", required=True)
    clients.add_argument("--concurrency", type=int, default=50, help="handshakes + subscribes in flight")
    trader = sub.add_parser("trader")
    trader.add_argument("--symbol", default="BTCUSDT")
    trader.add_argument("--price", default="64000.00", help="inside the demo market maker's spread")
    trader.add_argument("--quantity", default="0.0002")
    recv = sub.add_parser("layer-recv")
    recv.add_argument("--channels", type=int, required=True)
    recv.add_argument("--messages", type=int, required=True)
    recv.add_argument("--group", required=True)
    recv.add_argument("--quiet", type=float, default=3.0)
    recv.add_argument("--start-timeout", type=float, default=30.0)
    recv.add_argument("--timeout", type=float, default=120.0)
    send = sub.add_parser("layer-send")
    send.add_argument("--messages", type=int, required=True)
    send.add_argument("--group", required=True)
    send.add_argument("--stream", default="", help="send hub batches of this stream (as the trading process)")
    send.add_argument("--after", type=int, default=0, help="number the messages from this + 1")
    args = parser.parse_args(argv)
    if args.role == "clients":
        asyncio.run(clients_main(args))
    elif args.role == "trader":
        trader_main(args)
    elif args.role == "layer-recv":
        layer_recv_main(args)
    else:
        layer_send_main(args)


if __name__ == "__main__":
    main()
