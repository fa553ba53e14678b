#!/usr/bin/env python
"""bench/ws_fanout: WebSocket fan-out through daphne and the Redis channel layer.

Run from the repository root with the project's virtualenv (PostgreSQL and Redis on localhost):

    .venv/bin/python bench/ws_fanout.py                    # full run, --max-minutes 10 (rounds that fit)
    .venv/bin/python bench/ws_fanout.py --quick            # smoke run, about a minute
    .venv/bin/python bench/ws_fanout.py --streams trades.BTCUSDT   # without the book stream
    .venv/bin/python bench/ws_fanout.py --layers pubsub --daphne-procs 2   # two daphnes, one socket
    .venv/bin/python bench/ws_fanout.py --layers pubsub,pubsub:daphne      # frames vs daphne's own command

What it does (figures and reading in bench/README.md):

1. Recreates the database `tradeport_wsbench`, migrates it, flushes Redis db 11, and seeds the
   demo market plus a bench trader with funded accounts (`bench.order_engine.bench_setup`).
2. Starts, for each channel layer (`CHANNEL_LAYER=core`: channels_redis.core.RedisChannelLayer,
   `pubsub`: channels_redis.pubsub.RedisPubSubChannelLayer; portal/settings/channels.py),
   `--daphne-procs` daphne processes (default 1, as docker-compose's `ws` service runs it;
   DB_POOL=1 each; `python -m portal.asgi_server`, or daphne's own command for a `--layers`
   entry ending in `:daphne`) on one listening socket created here, handed to each as `--fd N`: the
   kernel gives each accepted connection to one of them, as a deployment would scale the `ws`
   service on more cores. And one trading process (`python -m bench.ws_load trader`: Django on
   the same database, Redis and layer, `EMBEDDED_BACKGROUND=0`).
3. Round after round, for every (clients, layer) pair in a new random order:
   - the layer alone, once per (layer, clients) and round: `python -m bench.ws_load
     layer-recv` holds N channels in one group and receives on each, `layer-send` in another
     process `group_send`s M messages as fast as the layer takes them; deliveries per second
     from the first to the last receive;
   - end to end: first `settle` (daphne idle, no stale group members left by the previous
     cell), then `python -m bench.ws_load clients` opens N WebSocket connections to that
     layer's daphne, each subscribed to `--streams`; then for each trade rate of `--rates`,
     the trading process trades at that rate for `--step-seconds` (a resting sell and a
     crossing buy per tick: one trade, one `trades.BTCUSDT` message, book diffs), and the
     clients report latency (receive time minus the message's `ts`), deliveries, gaps in
     `seq` per stream per connection, and what a connection still lacks `--drain-timeout`
     seconds after the step. Rates go up until a step fails (p99 ≥ 150 ms, a gap, a message
     undelivered, a connection closed, or the trader below 95 % of the rate); then the goal's
     own rate (1000 clients: 10/s, 100 clients: 50/s) and the highest rate are still measured
     (the saturation step: deliveries/s counts to the last message received, so it is the
     throughput, the figure the ratio goal compares with the layer alone);
   - end to end fed as the layer alone is (each cell's last step, `--no-layer-fed` skips it):
     `layer-send` group_sends the layer-alone run's number of `trades.BTCUSDT` messages as the
     hubs' batches, as fast as the layer takes them, to the connected clients through daphne;
     deliveries/s from the first receive to the last, like the reference. The trading steps
     cannot offer that much on this machine: the trader shares the 2 cores.
   CPU seconds of daphne (summed over its processes), the load generator, the trader and
   redis-server come from /proc; on the pubsub layer a Redis subscriber in this process also
   times commit → Redis. How many connections each daphne process accepted is counted from its
   open sockets.
4. Reports medians over rounds; each ratio to the layer alone is the median of per-round
   ratios (both figures of a ratio from the same round, same layer, same client count).

Writes the markdown report to stdout and to bench/results/ws_fanout-<timestamp>.md (+ .json
with every round, and the processes' logs in bench/results/ws_fanout-<timestamp>-logs/).
Every process is started here and stopped by its PID (its own process group) when the run
ends, fails or is interrupted. All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import random
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_overhead import (  # noqa: E402
    BIN,
    PG_ADMIN,
    PG_HOST,
    PG_PORT,
    ROOT,
    base_env,
    cpu_model,
    dist_versions,
    http_get,
    log,
    ram_total,
    stop_processes,
)
from bench.api_overhead import cpu_seconds as proc_cpu_seconds  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DB_NAME = "tradeport_wsbench"
REDIS_URL = "redis://127.0.0.1:6379/11"
LAYERS = ("core", "pubsub")
#: How the server is run, after a colon in a `--layers` entry (`pubsub`, `pubsub:daphne`): the
#: project's server (`python -m portal.asgi_server`: daphne with the frames extension, as
#: `make run` and compose run it) or daphne's own command (every stream message goes through
#: Channels' `send` per connection).
SERVERS = {"": [sys.executable, "-m", "portal.asgi_server"], "daphne": [str(BIN / "daphne")]}
#: What daphne serves: the project's ASGI application, as docker-compose's `ws` service.
APP = "portal.asgi:application"
SYMBOL = "BTCUSDT"
TRADES = f"trades.{SYMBOL}"
#: The channel layer group of every public stream of the symbol (marketdata.streams.layer_group).
INSTRUMENT_GROUP = f"instrument.{SYMBOL}"
#: The goals of the issue.
P99_GOAL_MS = 150.0
RATIO_GOAL = 0.5
GOAL_CELLS = ((1000, 10.0), (100, 50.0))
GOAL_RATE = dict(GOAL_CELLS)
#: A step whose trader achieved less than this share of the asked rate is "trader-limited".
TRADER_SHARE = 0.95


# --------------------------------------------------------------------------- processes


#: The channel layer's prefix in every process of the bench (its Redis names start with it).
LAYER_PREFIX = "asgi"


def channel_layer(setup: str) -> str:
    """The channel layer of a `--layers` entry (`pubsub:daphne` → `pubsub`)."""
    return setup.partition(":")[0]


def env_for(layer: str, appname: str, **extra: str) -> dict[str, str]:
    env = base_env(PG_ADMIN, appname)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DATABASE_URL": f"postgres://{PG_ADMIN}@{PG_HOST}:{PG_PORT}/{DB_NAME}",
            "REDIS_URL": REDIS_URL,
            "CHANNEL_LAYER": channel_layer(layer),
            # The key names this script reads (group_members, the commit → Redis probe).
            "CHANNEL_LAYER_PREFIX": LAYER_PREFIX,
            "EMBEDDED_BACKGROUND": "0",
            **extra,
        }
    )
    return env


class Child:
    """A child process spoken to by JSON lines: commands on its stdin, `WSBENCH <json>` answers
    on its stdout (other output goes to its log file). Its own process group, stopped by PID."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], logdir: Path, pass_fds=()) -> None:
        self.name = name
        self.logfile = logdir / f"{name}.log"
        self.log = open(self.logfile, "ab")  # noqa: SIM115 - the child's lifetime
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            pass_fds=pass_fds,
            start_new_session=True,
        )
        self.answers: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        for raw in self.proc.stdout:
            if raw.startswith(b"WSBENCH "):
                self.answers.put(json.loads(raw[8:]))
            else:
                self.log.write(raw)
                self.log.flush()
        self.answers.put(None)

    def send(self, command: dict) -> None:
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()

    def recv(self, timeout: float) -> dict:
        try:
            answer = self.answers.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.name} did not answer within {timeout:.0f} s; see {self.logfile}") from None
        if answer is None:
            tail = self.logfile.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{self.name} exited (code {self.proc.poll()}); {self.logfile}:\n{tail}")
        return answer

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.reader.join(timeout=5)
        self.log.close()


class Daphne:
    """`procs` daphne processes serving one listening socket created here, each started with
    `daphne --fd N`: every process accepts on it, and the kernel hands each new connection to
    one of them (a deployment running the `ws` service on more cores)."""

    def __init__(self, layer: str, logdir: Path, procs: int = 1) -> None:
        self.layer = layer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.sock.set_inheritable(True)
        fd = self.sock.fileno()
        self.inode = os.fstat(fd).st_ino
        self.logfiles: list[Path] = []
        self.procs: list[subprocess.Popen] = []
        try:
            for index in range(procs):
                logfile = logdir / f"daphne-{layer}-{index}.log"
                # As docker-compose runs the `ws` service: a bounded psycopg pool per process.
                env = env_for(layer, f"wsbench-daphne-{layer}-{index}", DB_POOL="1", DB_POOL_MAX="10")
                server = SERVERS[layer.partition(":")[2]]
                command = [*server, "--fd", str(fd), "--access-log", "/dev/null", "-v", "0", APP]
                with open(logfile, "ab") as out:  # the server writes to its own copy
                    self.procs.append(
                        subprocess.Popen(
                            command,
                            cwd=ROOT,
                            env=env,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            pass_fds=(fd,),
                            start_new_session=True,
                        )
                    )
                self.logfiles.append(logfile)
        except BaseException:
            self.stop()  # the processes started so far
            raise

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def rss_mib(self) -> float:
        return sum(rss_mib(pid) for pid in self.pids)

    def _polls_socket(self, pid: int) -> bool:
        """Whether `pid` has the listening socket in one of its epoll sets (its reactor runs
        and listens): /proc/PID/fdinfo of an eventpoll fd lists each watched file's inode."""
        wanted = re.compile(rf"\bino:{self.inode:x}\b")
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[eventpoll]" and wanted.search(
                        Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
                    ):
                        return True
        return False

    def wait_ready(self, timeout: float = 90) -> None:
        """Until every process polls the socket and /livez answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc, logfile in zip(self.procs, self.logfiles, strict=True):
                if proc.poll() is not None:
                    raise SystemExit(f"daphne ({self.layer}, pid {proc.pid}) exited early; see {logfile}")
            if all(self._polls_socket(pid) for pid in self.pids):
                with contextlib.suppress(OSError):
                    if http_get(self.port, "/livez", timeout=2)[0] == 200:
                        return
            time.sleep(0.3)
        raise SystemExit(
            f"daphne ({self.layer}) not listening in every process or not answering /livez within "
            f"{timeout:.0f} s; see {', '.join(map(str, self.logfiles))}"
        )

    def connections(self) -> list[int]:
        """Established connections to the listening port held by each process (sockets whose
        inode /proc/net/tcp lists with that local port)."""
        local = f":{self.port:04X}"
        inodes: set[str] = set()
        with contextlib.suppress(OSError):
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[1].endswith(local) and fields[3] == "01":
                    inodes.add(f"socket:[{fields[9]}]")
        counts = []
        for pid in self.pids:
            count = 0
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        count += os.readlink(f"/proc/{pid}/fd/{fd}") in inodes
            counts.append(count)
        return counts

    def stop(self) -> None:
        stop_processes(self.procs)
        self.sock.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` so far (0 for a process gone)."""
    return proc_cpu_seconds(pid) or 0.0


def rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError):
        match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
        if match:
            return int(match.group(1)) / 1024
    return float("nan")


def redis_client():
    import redis

    return redis.Redis.from_url(REDIS_URL)


def group_members(layer: str, group: str) -> int:
    """Subscribers of `group` left in Redis: channel names in the core layer's group set, or
    processes subscribed to the pubsub layer's group channel (pub/sub ignores the db number)."""
    client = redis_client()
    if channel_layer(layer) == "core":
        return int(client.zcard(f"{LAYER_PREFIX}:group:{group}"))
    channel = f"{LAYER_PREFIX}__group__{group}"
    return int(dict(client.pubsub_numsub(channel)).get(channel.encode(), 0))


def tape_seq() -> int:
    import psycopg

    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_ADMIN, dbname=DB_NAME, autocommit=True) as conn:
        return int(conn.execute("select tape_seq from marketdata_instrument where symbol = %s", [SYMBOL]).fetchone()[0])


# --------------------------------------------------------------------------- setup


def pg_admin():
    import psycopg

    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_ADMIN, dbname="postgres", autocommit=True)


def prepare() -> dict:
    log(f"recreating database {DB_NAME}, flushing Redis db 11, migrating, seeding")
    with pg_admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    redis_client().flushdb()
    env = env_for("core", "wsbench-setup")
    for args in (
        ["migrate", "--no-input", "-v", "0"],
        ["shell", "-c", "from bench.order_engine import bench_setup; bench_setup()"],
    ):
        result = subprocess.run(
            [str(BIN / "python"), "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
        )
        if result.returncode != 0:
            raise SystemExit(f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr}")
    match = re.search(r"^SETUP=(.*)$", result.stdout, re.M)
    if not match:
        raise SystemExit(f"bench_setup printed no SETUP line:\n{result.stdout}")
    return json.loads(match.group(1))


def raise_nofile() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def machine_info() -> dict[str, str]:
    with pg_admin() as conn:
        pg = conn.execute("show server_version").fetchone()[0]
    redis_version = redis_client().info("server").get("redis_version", "?")
    dists = ("daphne", "Twisted", "autobahn", "channels", "channels-redis", "redis", "hiredis", "msgpack", "Django")
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "ram": ram_total(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": f"{dist_versions(dists)}, Redis {redis_version}, PostgreSQL {pg}",
    }


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------- measurements


def python_module(*args: str) -> list[str]:
    return [str(BIN / "python"), "-m", "bench.ws_load", *args]


def run_ceiling(layer: str, clients: int, messages: int, logdir: Path, redis_pid: int | None) -> dict:
    """The layer alone: `clients` channels of one process in one group, `messages` group_sends."""
    group = f"wsbench.ceiling.{os.urandom(4).hex()}"
    env = env_for(layer, "wsbench-layer")
    recv = Child(
        f"layer-recv-{layer}",
        python_module("layer-recv", "--channels", str(clients), "--messages", str(messages), "--group", group),
        env,
        logdir,
    )
    send = None
    try:
        ready = recv.recv(timeout=120)
        if not ready.get("ready"):
            raise RuntimeError(f"layer-recv: {ready}")
        redis_before = cpu_seconds(redis_pid) if redis_pid else 0.0
        send = Child(
            f"layer-send-{layer}",
            python_module("layer-send", "--messages", str(messages), "--group", group),
            env,
            logdir,
        )
        sent = send.recv(timeout=120)
        result = recv.recv(timeout=180)
        if "error" in result:
            raise RuntimeError(result["error"])
        result.update(
            {
                "messages": messages,
                "send_seconds": sent["seconds"],
                "redis_cpu_s": (cpu_seconds(redis_pid) - redis_before) if redis_pid else float("nan"),
            }
        )
        return result
    finally:
        for child in (send, recv):
            if child is not None:
                child.stop()
        with contextlib.suppress(Exception):
            client = redis_client()
            client.delete(f"{LAYER_PREFIX}:group:{group}")


class PublishProbe(threading.Thread):
    """pubsub layer only: a Redis subscriber of the group's channel in this process, for the
    first leg of the latency, commit (`ts`) → message published in Redis and read back here."""

    def __init__(self, group: str) -> None:
        super().__init__(daemon=True)
        import msgpack

        self.unpack = msgpack.unpackb
        self.pubsub = redis_client().pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(f"{LAYER_PREFIX}__group__{group}")
        self.latencies: list[float] = []
        self.stopping = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.stopping.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is not None:
                now = time.time() * 1000
                with contextlib.suppress(Exception):
                    self.latencies.extend(now - part["ts"] for part in self.unpack(message["data"])["parts"])

    def reset(self) -> None:
        self.latencies = []

    def percentiles(self) -> tuple[float, float]:
        values = sorted(self.latencies)
        if not values:
            return float("nan"), float("nan")
        return values[len(values) // 2], values[min(len(values) - 1, int(len(values) * 0.99))]

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=2)
        with contextlib.suppress(Exception):
            self.pubsub.close()


def hist_merge(target: dict[int, int], source: dict[str, int]) -> None:
    for bucket, count in source.items():
        target[int(bucket)] = target.get(int(bucket), 0) + count


def percentile(hist: dict[int, int], fraction: float) -> float:
    total = sum(hist.values())
    if not total:
        return float("nan")
    wanted = fraction * total
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= wanted:
            return float(bucket)
    return float(max(hist))


def gens_send(gens: list[Child], command: dict) -> None:
    for gen in gens:
        gen.send(command)


def gens_recv(gens: list[Child], timeout: float) -> list[dict]:
    return [gen.recv(timeout=timeout) for gen in gens]


def settle(daphne: Daphne, layer: str, streams: list[str], timeout: float = 20.0) -> dict[str, int]:
    """Before a cell: wait until this layer's daphne processes are idle (together under 5 % of
    a core for 0.5 s: done with the previous cell's backlog) and, on the core layer, its groups
    are empty: a process's StreamHub leaves a stream's group when its last follower left. A
    member whose `group_discard` failed would stay in the group until `group_expiry` (a day),
    and every `group_send` would still carry it. Such stale members are counted, then removed,
    so that each cell starts alike."""
    deadline = time.monotonic() + timeout
    while True:
        before = daphne.cpu_seconds()
        time.sleep(0.5)
        idle = daphne.cpu_seconds() - before < 0.025
        left = {INSTRUMENT_GROUP: group_members(layer, INSTRUMENT_GROUP)}
        if (idle and (channel_layer(layer) != "core" or not any(left.values()))) or time.monotonic() > deadline:
            break
    if channel_layer(layer) == "core" and any(left.values()):
        log(f"  stale members of the core layer's groups, removed before the cell: {left}")
        redis_client().delete(f"{LAYER_PREFIX}:group:{INSTRUMENT_GROUP}")
    elif not idle:
        log(f"  WARNING: daphne still busy {timeout:.0f} s after the previous cell")
    return left


def run_cell(
    args, layer: str, clients: int, daphne: Daphne, trader: Child, logdir: Path, redis_pid: int | None
) -> dict:
    """End to end for `clients` WebSocket connections on `layer`: connect, then step the trade
    rate up until a step fails or the trader cannot keep the rate."""
    streams = args.streams
    stale = settle(daphne, layer, streams)
    procs = max(1, min(args.load_procs, clients))
    shares = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    gens = [
        Child(
            f"clients-{layer}-{clients}-{i}",
            python_module("clients", "--port", str(daphne.port), "--clients", str(n), "--streams", ",".join(streams)),
            {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            logdir,
        )
        for i, n in enumerate(shares)
    ]
    cell = {"layer": layer, "clients": clients, "steps": [], "connect_s": None, "stopped": "", "stale": stale}
    probe = PublishProbe(INSTRUMENT_GROUP) if channel_layer(layer) == "pubsub" else None
    try:
        readies = gens_recv(gens, timeout=300)
        failures = [f for r in readies for f in r.get("failures", [])]
        if failures:
            text = " ".join(failures)
            if "unknown_stream" in text or "op': 'error'" in text:
                raise SystemExit(
                    f"subscribing to {','.join(streams)} failed: the server answered {failures[0]}\n"
                    "That stream does not exist on this server yet; run with --streams trades.BTCUSDT."
                )
            raise RuntimeError(f"{sum(r['failed'] for r in readies)} of {clients} connections failed: {failures[:3]}")
        cell["connect_s"] = max(r["connect_s"] for r in readies)
        cell["daphne_rss_mib"] = daphne.rss_mib()
        cell["connections_per_process"] = daphne.connections()
        # (on pubsub, less this process's own PublishProbe on the trades channel)
        cell["group_members"] = {INSTRUMENT_GROUP: group_members(layer, INSTRUMENT_GROUP) - (probe is not None)}
        log(
            f"  connected in {cell['connect_s']:.1f} s; connections per daphne process "
            f"{cell['connections_per_process']}; group members {cell['group_members']}"
        )
        failed_at = None
        # After a failure, a round still measures the goal's own rate and the highest rate (the
        # saturation step: the most the setup delivers, for the ratio goal).
        after_failure = {GOAL_RATE.get(clients), max(args.rates)}
        for rate in args.rates:
            if failed_at is not None and rate not in after_failure:
                continue
            seq0 = tape_seq()
            baseline = {TRADES: seq0} if TRADES in streams else {}
            gens_send(gens, {"cmd": "start", "baseline": baseline})
            gens_recv(gens, timeout=30)
            pids = {
                **{f"daphne{i}": pid for i, pid in enumerate(daphne.pids)},
                "trader": trader.pid,
                **{f"gen{i}": g.pid for i, g in enumerate(gens)},
            }
            if redis_pid:
                pids["redis"] = redis_pid
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            if probe is not None:
                probe.reset()
            started = time.time()
            trader.send({"rate": rate, "seconds": args.step_seconds})
            traded = trader.recv(timeout=args.step_seconds * 20 + 60)
            expect = {TRADES: traded["seq_end"]} if TRADES in streams else {}
            gens_send(gens, {"cmd": "drain", "expect": expect, "timeout": args.drain_timeout, "quiet": 1.5})
            parts = gens_recv(gens, timeout=args.drain_timeout + 60)
            cpu1 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            step = summarize_step(rate, clients, traded, parts, started, cpu0, cpu1, seq0)
            step["daphne_rss_mib"] = daphne.rss_mib()
            step["publish_p50_ms"], step["publish_p99_ms"] = probe.percentiles() if probe else (float("nan"),) * 2
            cell["steps"].append(step)
            log(
                f"  {layer:6} {clients:4} clients @ {rate:g}/s: {step['achieved']:.1f} trades/s, "
                f"{step['deliveries_s']:.0f} deliveries/s, p50 {step['p50_ms']:.0f} ms, p99 {step['p99_ms']:.0f} ms, "
                f"gaps {step['gaps']}, late {step['late']}, closed {step['closed']}, "
                f"daphne CPU {step['cpu_pct']['daphne']:.0f} %, "
                f"clients CPU {step['cpu_pct']['clients']:.0f} % -> {step['verdict']}"
            )
            if step["closed_reasons"] or step["errors"]:
                log(f"  closed: {step['closed_reasons']}; error frames: {step['errors']}")
            if failed_at is None and step["verdict"] != "pass":
                cell["stopped"] = step["verdict"]
                failed_at = rate
                if not any(later in after_failure for later in args.rates if later > rate):
                    break
        if not args.no_layer_fed:
            cell["layer_fed"] = run_layer_fed(args, layer, clients, gens, daphne, logdir)
        gens_send(gens, {"cmd": "quit"})
        with contextlib.suppress(RuntimeError):
            gens_recv(gens, timeout=30)
    finally:
        for gen in gens:
            gen.stop()
        if probe is not None:
            probe.stop()
    return cell


def ceiling_messages(args, clients: int) -> int:
    """Messages per layer-alone run (and per layer-fed step) for `clients` receivers."""
    return max(20, min(3000, args.ceiling_deliveries // clients))


def run_layer_fed(args, layer: str, clients: int, gens: list[Child], daphne: Daphne, logdir: Path) -> dict:
    """End to end fed as the layer alone is: `layer-send` group_sends the same number of
    `trades.BTCUSDT` messages as fast as the layer takes them, as hub batches numbered after
    the tape, to the connected clients through daphne. Deliveries/s from the first receive to
    the last, as the layer alone counts them. The last step of a cell: its numbers run ahead of
    the database's tape, and the next cell's connections start from the tape again."""
    seq0 = tape_seq()
    messages = ceiling_messages(args, clients)
    gens_send(gens, {"cmd": "start", "baseline": {TRADES: seq0}})
    gens_recv(gens, timeout=30)
    pids = {f"daphne{i}": pid for i, pid in enumerate(daphne.pids)}
    pids.update({f"gen{i}": g.pid for i, g in enumerate(gens)})
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    send = Child(
        f"layer-fed-{layer}-{clients}",
        python_module("layer-send", "--messages", str(messages), "--group", INSTRUMENT_GROUP)
        + ["--stream", TRADES, "--after", str(seq0)],
        env_for(layer, "wsbench-layer-fed"),
        logdir,
    )
    try:
        sent = send.recv(timeout=120)
    finally:
        send.stop()
    expect = {TRADES: seq0 + messages}
    gens_send(gens, {"cmd": "drain", "expect": expect, "timeout": args.drain_timeout * 3, "quiet": 1.5})
    parts = gens_recv(gens, timeout=args.drain_timeout * 3 + 60)
    cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
    delivered = sum(p["count"].get(TRADES, 0) for p in parts)
    firsts = [p["first_recv"] for p in parts if p["first_recv"] is not None]
    lasts = [p["last_recv"] for p in parts if p["last_recv"] is not None]
    seconds = (max(lasts) - min(firsts)) / 1000 if firsts and lasts else float("nan")
    result = {
        "messages": messages,
        "expected": messages * clients,
        "delivered": delivered,
        "seconds": seconds,
        "send_seconds": sent.get("seconds", float("nan")),
        "rate": delivered / seconds if seconds and seconds == seconds else 0.0,
        "gaps": sum(p["gap_missing"].get(TRADES, 0) for p in parts),
        "late": sum(p["tail_missing"].get(TRADES, 0) for p in parts),
        "closed": sum(p["closed_since_connect"] for p in parts),
        "daphne_cpu_s": sum(v for k, v in cpu.items() if k.startswith("daphne")),
        "clients_cpu_s": sum(v for k, v in cpu.items() if k.startswith("gen")),
    }
    log(
        f"  {layer:6} {clients:4} clients, layer-fed: {result['rate']:.0f} deliveries/s "
        f"({delivered} of {result['expected']} in {seconds:.2f} s), gaps {result['gaps']}, late {result['late']}, "
        f"daphne CPU {result['daphne_cpu_s']:.2f} s, clients CPU {result['clients_cpu_s']:.2f} s"
    )
    return result


def summarize_step(rate, clients, traded, parts, started, cpu0, cpu1, seq0) -> dict:
    hist: dict[int, int] = {}
    per_stream: dict[str, dict] = {}
    for part in parts:
        for stream, stream_hist in part["hist"].items():
            hist_merge(hist, stream_hist)
            entry = per_stream.setdefault(
                stream, {"hist": {}, "count": 0, "gaps": 0, "gap_events": 0, "tail": 0, "ooo": 0}
            )
            hist_merge(entry["hist"], stream_hist)
            entry["count"] += part["count"].get(stream, 0)
            entry["gaps"] += part["gap_missing"].get(stream, 0)
            entry["gap_events"] += part["gap_events"].get(stream, 0)
            entry["tail"] += part["tail_missing"].get(stream, 0)
            entry["ooo"] += part["out_of_order"].get(stream, 0)
    delivered = sum(e["count"] for e in per_stream.values())
    lasts = [p["last_recv"] for p in parts if p["last_recv"] is not None]
    window = (max(lasts) / 1000 - started) if lasts else float("nan")
    finished = time.time()
    cpu = {name: cpu1[name] - cpu0[name] for name in cpu0}
    # daphne: its processes together (daphne0, daphne1, ... stay in for the balance)
    cpu["daphne"] = sum(v for k, v in cpu.items() if k.startswith("daphne"))
    gen_cpu = sum(v for k, v in cpu.items() if k.startswith("gen"))
    gaps = sum(e["gaps"] for e in per_stream.values())
    late = sum(e["tail"] for e in per_stream.values())
    closed = sum(p["closed_since_connect"] for p in parts)  # during the step or before it
    p99 = percentile(hist, 0.99)
    achieved = traded["achieved"]
    if closed:
        verdict = "connections closed"
    elif gaps:
        verdict = "messages lost"
    elif late:
        verdict = "undelivered at drain end"
    elif not p99 < P99_GOAL_MS:
        verdict = "p99 ≥ 150 ms"
    elif achieved < TRADER_SHARE * rate:
        verdict = "trader-limited"
    else:
        verdict = "pass"
    cpu_window = max(window, traded["seconds"]) if window == window else finished - started
    return {
        "rate": rate,
        "achieved": achieved,
        "trades": traded["trades"],
        "seq0": seq0,
        "trader": {k: traded[k] for k in ("tick_p50_ms", "tick_p99_ms", "late_max_ms", "rejected", "seconds")},
        "delivered": delivered,
        "expected_trades_deliveries": traded["trades"] * clients,
        "deliveries_s": delivered / window if window and window == window else 0.0,
        "window_s": window,
        "p50_ms": percentile(hist, 0.50),
        "p99_ms": p99,
        "max_ms": float(max(hist)) if hist else float("nan"),
        "streams": {
            s: {
                "count": e["count"],
                "p50_ms": percentile(e["hist"], 0.5),
                "p99_ms": percentile(e["hist"], 0.99),
                "gaps": e["gaps"],
                "gap_events": e["gap_events"],
                "tail": e["tail"],
                "out_of_order": e["ooo"],
            }
            for s, e in per_stream.items()
        },
        "gaps": gaps,
        "late": late,
        "lost": gaps + late,
        "closed": closed,
        "snapshots": sum(p["snapshots"] for p in parts),
        "errors": [e for p in parts for e in p["errors"]][:3],
        "closed_reasons": [r for p in parts for r in p["closed_reasons"]][:3],
        "cpu_s": {**{k: v for k, v in cpu.items() if not k.startswith("gen")}, "clients": gen_cpu},
        "cpu_pct": {
            **{k: 100 * v / cpu_window for k, v in cpu.items() if not k.startswith("gen")},
            "clients": 100 * gen_cpu / cpu_window,
        },
        "daphne_us_per_delivery": 1e6 * cpu["daphne"] / delivered if delivered else float("nan"),
        "lag_p99_ms": max(p["lag_p99_ms"] for p in parts),
        "lag_max_ms": max(p["lag_max_ms"] for p in parts),
        "bytes": sum(p["bytes"] for p in parts),
        "verdict": verdict,
    }


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--layers",
        default=",".join(LAYERS),
        help="channel layers (core, pubsub), each optionally served by daphne's own command (pubsub:daphne)",
    )
    parser.add_argument(
        "--daphne-procs",
        type=int,
        default=1,
        help="daphne processes per layer, all serving the one listening socket (their CPU is summed)",
    )
    parser.add_argument("--clients", default="100,500,1000", help="WebSocket connections per cell")
    parser.add_argument("--rates", default="1,2,5,10,20,50", help="trades per second, stepped up until a step fails")
    parser.add_argument("--streams", default=f"{TRADES},book.{SYMBOL}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--step-seconds", type=float, default=4.0, help="trading time per rate step")
    parser.add_argument("--drain-timeout", type=float, default=4.0, help="wait for late messages after a step")
    parser.add_argument("--ceiling-deliveries", type=int, default=300_000, help="deliveries per layer-alone run")
    parser.add_argument("--load-procs", type=int, default=1, help="load generator processes per cell")
    parser.add_argument("--max-minutes", type=float, default=10.0, help="start no round that would end later")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, 100 and 1000 clients at 1/s")
    parser.add_argument(
        "--no-layer-fed", action="store_true", help="skip each cell's last step (fed by group_send like the reference)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.clients, args.rates = 1, "100,1000", "1"
        args.step_seconds, args.ceiling_deliveries, args.max_minutes = 2.0, 20_000, 2.0
    args.layers = [x for x in args.layers.split(",") if x]
    unknown = [x for x in args.layers if channel_layer(x) not in LAYERS or x.partition(":")[2] not in SERVERS]
    if unknown:
        parser.error(f"--layers: unknown {', '.join(unknown)} (choose from {', '.join(LAYERS)}, or one with :daphne)")
    if args.daphne_procs < 1:
        parser.error("--daphne-procs must be at least 1")
    args.clients = [int(x) for x in args.clients.split(",") if x]
    args.rates = [float(x) for x in args.rates.split(",") if x]
    args.streams = [x for x in args.streams.split(",") if x]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    started = datetime.now()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    logdir = RESULTS / f"ws_fanout-{stamp}-logs"
    logdir.mkdir(parents=True, exist_ok=True)
    nofile = raise_nofile()  # inherited by daphne and every child
    machine = machine_info()
    machine["nofile"] = f"{nofile[0]} (hard {nofile[1]})"
    machine["load_start"] = load_average()
    prepare()
    redis_pid = int(redis_client().info("server").get("process_id", 0)) or None
    daphnes: dict[str, Daphne] = {}
    traders: dict[str, Child] = {}
    rounds: list[dict] = []
    clock = time.monotonic()
    try:
        for layer in args.layers:
            daphnes[layer] = Daphne(layer, logdir, args.daphne_procs)
            traders[layer] = Child(
                f"trader-{layer}",
                python_module("trader", "--symbol", SYMBOL),
                env_for(layer, f"wsbench-trader-{layer}", DB_CONN_MAX_AGE="60"),
                logdir,
            )
        for layer in args.layers:
            daphnes[layer].wait_ready()
            traders[layer].recv(timeout=120)
        log(
            f"{args.daphne_procs} daphne process(es) and a trader up for {', '.join(args.layers)}; "
            f"streams {','.join(args.streams)}"
        )
        round_seconds = 0.0
        for number in range(1, args.rounds + 1):
            elapsed = time.monotonic() - clock
            if number > 1 and elapsed + round_seconds > args.max_minutes * 60:
                log(f"stopping after {number - 1} round(s): another would pass --max-minutes {args.max_minutes:g}")
                break
            round_started = time.monotonic()
            pairs = [(c, layer) for c in args.clients for layer in args.layers]
            random.shuffle(pairs)
            this_round = {"round": number, "cells": []}
            ceilings: dict[tuple[str, int], dict] = {}
            for clients, layer in pairs:
                key = (channel_layer(layer), clients)
                if key not in ceilings:
                    messages = ceiling_messages(args, clients)
                    log(f"round {number}: {key[0]} layer alone, {clients} channels x {messages} messages")
                    ceilings[key] = run_ceiling(key[0], clients, messages, logdir, redis_pid)
                    log(
                        f"  {key[0]:6} layer alone {clients:4} channels: {ceilings[key]['rate']:.0f} deliveries/s, "
                        f"lost {ceilings[key]['lost']}"
                    )
                ceiling = ceilings[key]
                log(f"round {number}: {layer} end to end, {clients} WebSocket clients")
                cell = run_cell(args, layer, clients, daphnes[layer], traders[layer], logdir, redis_pid)
                cell["ceiling"] = ceiling
                this_round["cells"].append(cell)
            rounds.append(this_round)
            round_seconds = time.monotonic() - round_started
    finally:
        for trader in traders.values():
            with contextlib.suppress(Exception):
                trader.send({"cmd": "quit"})
            trader.stop()
        for daphne in daphnes.values():
            daphne.stop()
        with contextlib.suppress(Exception):
            redis_client().flushdb()
    machine["load_end"] = load_average()
    finished = datetime.now()
    report = build_report(args, machine, rounds, started, finished)
    (RESULTS / f"ws_fanout-{stamp}.md").write_text(report)
    (RESULTS / f"ws_fanout-{stamp}.json").write_text(
        json.dumps({"args": {k: v for k, v in vars(args).items()}, "machine": machine, "rounds": rounds}, indent=1)
    )
    print(report)
    return 0


# --------------------------------------------------------------------------- report


def median(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def fmt(value: float, digits: int = 0) -> str:
    return "—" if value != value else f"{value:,.{digits}f}"


def build_report(args, machine, rounds, started, finished) -> str:
    command = " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    cells: dict[tuple[str, int], list[dict]] = {}
    for r in rounds:
        for cell in r["cells"]:
            cells.setdefault((cell["layer"], cell["clients"]), []).append(cell)
    lines = [
        f"### ws_fanout, {started:%Y-%m-%d %H:%M} ({(finished - started).total_seconds() / 60:.1f} min)",
        "",
        f"`{command}` — {machine['nproc']} cores ({machine['cpu']}), {machine['ram']}, Linux {machine['kernel']}, "
        f"Python {machine['python']}; {machine['versions']}. Open files: {machine['nofile']}. Load average at "
        f"start / end: {machine['load_start']} / {machine['load_end']}.",
        "",
        f"Streams {', '.join(f'`{s}`' for s in args.streams)}; {len(rounds)} round(s); {args.step_seconds:g} s of "
        f"trading per step; **{args.daphne_procs} daphne process(es) per layer** on one listening socket "
        f"(daphne CPU % and µs/delivery: their sum; 100 % = one core); {args.load_procs} load generator "
        "process(es) per cell. Figures are medians over the rounds that ran the step (n); a ratio is the "
        "median of per-round ratios.",
        "",
        "**The layer alone** (`group_send` → `receive` on N channels of one process in one group, no sockets):",
        "",
        "| layer | channels | messages | deliveries/s | lost | receiver CPU s | Redis CPU s | n |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (layer, clients), runs in sorted(cells.items()):
        ceilings = [c["ceiling"] for c in runs]
        lines.append(
            f"| {layer} | {clients} | {ceilings[0]['messages']} | {fmt(median([c['rate'] for c in ceilings]))} | "
            f"{sum(c['lost'] for c in ceilings)} | {fmt(median([c['cpu_s'] for c in ceilings]), 2)} | "
            f"{fmt(median([c['redis_cpu_s'] for c in ceilings]), 2)} | {len(ceilings)} |"
        )
    lines += [
        "",
        "**End to end** (trading process → layer → daphne → WebSocket client; latency = receive time − `ts`):",
        "",
        "| layer | clients | trades/s asked | achieved | deliveries/s | ÷ layer alone | p50 ms | p99 ms | max ms "
        "| commit→Redis p50 / p99 ms "
        "| lost (gaps) | late | closed | daphne CPU % | daphne µs/delivery | clients CPU % | trader CPU % "
        "| Redis CPU % | verdicts | n |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    best: dict[tuple[str, int], dict] = {}
    for (layer, clients), runs in sorted(cells.items()):
        for rate in args.rates:
            steps = [(cell, s) for cell in runs for s in cell["steps"] if s["rate"] == rate]
            if not steps:
                continue
            ratios = [s["deliveries_s"] / cell["ceiling"]["rate"] for cell, s in steps if cell["ceiling"]["rate"]]
            verdicts: dict[str, int] = {}
            for _, s in steps:
                verdicts[s["verdict"]] = verdicts.get(s["verdict"], 0) + 1
            only = [s for _, s in steps]
            row = {
                "deliveries_s": median([s["deliveries_s"] for s in only]),
                "ratio": median(ratios),
                "p99": median([s["p99_ms"] for s in only]),
                "passed": verdicts.get("pass", 0) > len(only) / 2,
                "verdicts": verdicts,
            }
            key = (layer, clients)
            if row["passed"]:
                best.setdefault(key, {})["pass"] = (rate, row)
            elif "fail" not in best.get(key, {}):
                best.setdefault(key, {})["fail"] = (rate, row)
            best.setdefault(key, {}).setdefault("peak", (rate, row))
            if row["deliveries_s"] > best[key]["peak"][1]["deliveries_s"]:
                best[key]["peak"] = (rate, row)
            lines.append(
                f"| {layer} | {clients} | {rate:g} | {fmt(median([s['achieved'] for s in only]), 1)} | "
                f"{fmt(row['deliveries_s'])} | {fmt(100 * row['ratio'], 1)} % | "
                f"{fmt(median([s['p50_ms'] for s in only]))} | {fmt(row['p99'])} | "
                f"{fmt(median([s['max_ms'] for s in only]))} | "
                f"{fmt(median([s['publish_p50_ms'] for s in only]))} / "
                f"{fmt(median([s['publish_p99_ms'] for s in only]))} | "
                f"{sum(s['gaps'] for s in only)} | "
                f"{sum(s['late'] for s in only)} | "
                f"{sum(s['closed'] for s in only)} | {fmt(median([s['cpu_pct']['daphne'] for s in only]))} | "
                f"{fmt(median([s['daphne_us_per_delivery'] for s in only]))} | "
                f"{fmt(median([s['cpu_pct']['clients'] for s in only]))} | "
                f"{fmt(median([s['cpu_pct']['trader'] for s in only]))} | "
                f"{fmt(median([s['cpu_pct'].get('redis', float('nan')) for s in only]))} | "
                f"{', '.join(f'{v} ×{n}' for v, n in sorted(verdicts.items()))} | {len(only)} |"
            )
    fed = {key: [c for c in runs if c.get("layer_fed")] for key, runs in sorted(cells.items())}
    if any(fed.values()):
        lines += [
            "",
            "**End to end, fed as the layer alone is** (the last step of each cell: `layer-send` group_sends the "
            "layer-alone run's number of `trades.BTCUSDT` messages as hub batches, as fast as the layer takes them; "
            "deliveries/s from the first receive to the last; a ratio is the median of per-round ratios):",
            "",
            "| layer | clients | messages | deliveries/s | ÷ layer alone | lost (gaps) | undelivered | closed "
            "| daphne µs/delivery | clients µs/delivery | n |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for (layer, clients), runs in fed.items():
            if not runs:
                continue
            results = [c["layer_fed"] for c in runs]
            ratios = [c["layer_fed"]["rate"] / c["ceiling"]["rate"] for c in runs if c["ceiling"]["rate"]]
            lines.append(
                f"| {layer} | {clients} | {results[0]['messages']} | {fmt(median([r['rate'] for r in results]))} | "
                f"{fmt(100 * median(ratios), 1)} % | {sum(r['gaps'] for r in results)} | "
                f"{sum(r['late'] for r in results)} | {sum(r['closed'] for r in results)} | "
                f"{fmt(median([1e6 * r['daphne_cpu_s'] / r['delivered'] for r in results if r['delivered']]), 1)} | "
                f"{fmt(median([1e6 * r['clients_cpu_s'] / r['delivered'] for r in results if r['delivered']]), 1)} | "
                f"{len(results)} |"
            )
    lines += [
        "",
        "Connecting (handshake + subscribe, 50 in flight), connections accepted by each daphne process "
        "(every round), members of each stream's group while connected, and daphne's memory after the last "
        "step (all processes):",
        "",
        "| layer | clients | connect s | connections per process | group members | daphne RSS MiB |",
        "|---|---:|---:|---|---|---:|",
    ]
    for (layer, clients), runs in sorted(cells.items()):
        rss = [c["steps"][-1]["daphne_rss_mib"] for c in runs if c["steps"]]
        spread = "; ".join("/".join(map(str, c.get("connections_per_process", []))) for c in runs)
        members = sorted({n for c in runs for n in c.get("group_members", {}).values()})
        lines.append(
            f"| {layer} | {clients} | {fmt(median([c['connect_s'] for c in runs]), 1)} | {spread} | "
            f"{', '.join(map(str, members))} | {fmt(median(rss))} |"
        )
    streams_seen = sorted({s for runs in cells.values() for c in runs for st in c["steps"] for s in st["streams"]})
    if len(streams_seen) > 1:
        lines += ["", "Per stream (every step and round): median p50 / p99 ms; gaps + undelivered at drain end", ""]
        lines.append("| layer | clients | " + " | ".join(f"`{s}`" for s in streams_seen) + " |")
        lines.append("|---|---:|" + "---|" * len(streams_seen))
        for (layer, clients), runs in sorted(cells.items()):
            steps = [s for c in runs for s in c["steps"]]
            cells_text = []
            for stream in streams_seen:
                entries = [s["streams"][stream] for s in steps if stream in s["streams"]]
                cells_text.append(
                    f"{fmt(median([e['p50_ms'] for e in entries]))} / {fmt(median([e['p99_ms'] for e in entries]))}, "
                    f"{sum(e['gaps'] for e in entries)} + {sum(e['tail'] for e in entries)}"
                )
            lines.append(f"| {layer} | {clients} | " + " | ".join(cells_text) + " |")
    lines += ["", "**Against the goals**", ""]
    for clients, rate in GOAL_CELLS:
        for layer in args.layers:
            steps = [s for c in cells.get((layer, clients), []) for s in c["steps"] if s["rate"] == rate]
            if not steps:
                lines.append(f"- {layer}, {clients} clients at {rate:g} trades/s: not measured in this run")
                continue
            passed = sum(s["verdict"] == "pass" for s in steps)
            lines.append(
                f"- {layer}, {clients} clients at {rate:g} trades/s (p99 < {P99_GOAL_MS:g} ms, nothing lost): "
                f"**{'met' if passed > len(steps) / 2 else 'not met'}** in {passed} of {len(steps)} round(s); "
                f"p99 {fmt(median([s['p99_ms'] for s in steps]))} ms, gaps {sum(s['gaps'] for s in steps)}, "
                f"undelivered at drain end {sum(s['late'] for s in steps)}, "
                f"closed {sum(s['closed'] for s in steps)}, "
                f"achieved {fmt(median([s['achieved'] for s in steps]), 1)} trades/s"
            )
    for (layer, clients), runs in fed.items():
        if not runs:
            continue
        ratio = median([c["layer_fed"]["rate"] / c["ceiling"]["rate"] for c in runs if c["ceiling"]["rate"]])
        lost = sum(c["layer_fed"]["gaps"] + c["layer_fed"]["late"] for c in runs)
        verdict = "met" if ratio >= RATIO_GOAL and not lost else "not met"
        lines.append(
            f"- {layer}, {clients} clients, fed as the layer alone is: "
            f"{fmt(median([c['layer_fed']['rate'] for c in runs]))} deliveries/s = {fmt(100 * ratio, 1)} % of the "
            f"layer alone, {lost} lost or undelivered (goal ≥ {100 * RATIO_GOAL:g} %: **{verdict}**)"
        )
    for (layer, clients), found in sorted(best.items()):
        peak_rate, peak = found["peak"]
        verdict = "met" if peak["ratio"] >= RATIO_GOAL else "not met"
        passing = found.get("pass")
        failing = found.get("fail")
        text = (
            f"- {layer}, {clients} clients, while trading: peak {fmt(peak['deliveries_s'])} deliveries/s at "
            f"{peak_rate:g} trades/s = "
            f"{fmt(100 * peak['ratio'], 1)} % of the layer alone (goal ≥ {100 * RATIO_GOAL:g} %: **{verdict}**)"
        )
        text += f"; highest rate passing: {passing[0]:g}/s" if passing else "; no rate passed"
        if failing:
            reasons = [v for v in failing[1]["verdicts"] if v != "pass"]
            text += f"; first failing: {failing[0]:g}/s ({', '.join(reasons)})"
        lines.append(text)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
