#!/usr/bin/env python
"""bench/order_placement: orders per second through HTTP and through the engine alone.

Run from the repository root with the project's virtualenv (PostgreSQL and Redis on localhost,
`wrk` and `pgbench` installed):

    .venv/bin/python bench/order_placement.py                       # full run, about 10 minutes
    .venv/bin/python bench/order_placement.py --orders 400 --rounds 1   # smoke run

What it does (figures and reading in bench/README.md):

1. Recreates the database `tradeport_bench`, migrates it, flushes Redis db 12, and seeds the
   demo market (`seed_demo`: four instruments, the market maker's ladder). Adds two funded
   accounts of one bench trader, an API key (read + trade), and lifts the venue's open-order
   limit so resting orders never run into it.
2. Starts the full stack's HTTP server as docker-compose runs it: gunicorn, sync workers
   (`--workers`, default 5 like WEB_CONCURRENCY), PostgreSQL, Redis; rate limits lifted.
3. For each client count (1, 4, 16) and round: an asyncio client (about 0.1 ms of CPU per
   request) places a fixed number of orders (`--orders`) with an API key and a fresh
   Idempotency-Key each: 70 % resting limit orders, 20 % crossing limit orders, 10 % market
   orders, on BTCUSDT and ETHUSDT, from two accounts. Side by side in the same round:
   `GET /bench/bare` (a plain Django view on the same server) and `pgbench -N` (simple-update
   TPC-B) at the same client count, so the
   ratios orders/s ÷ bare req/s and orders/s ÷ pgbench TPS come from one moment of the machine.
4. The engine alone: `order_place` called in-process (no HTTP) from 1 and 4 threads, all on
   one hot instrument and spread over the four instruments.
5. `manage.py reconcile` must be clean afterwards.

Writes the markdown report to stdout and to bench/results/order_placement-<timestamp>.md
(+ .json). Servers are stopped by PID (their own process group); all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_overhead import (  # noqa: E402 - the repository root must be importable first
    BIN,
    DB_NAME,
    PG_ADMIN,
    PG_HOST,
    PG_PORT,
    REDIS_URL,
    ROOT,
    base_env,
    cpu_seconds,
    http_get,
    log,
    machine_info,
    median,
    pg_admin,
    run_wrk,
    stop_processes,
)

RESULTS = ROOT / "bench" / "results"
PGBENCH_DB = "tradeport_pgbench"


def env_for(appname: str) -> dict[str, str]:
    """The bench servers' environment (bench/api_overhead.py's), connecting as the admin role:
    this bench creates no per-server roles."""
    return base_env(PG_ADMIN, appname)


def manage(args: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "python"), "manage.py", *args],
        cwd=ROOT,
        env=env_for("bench-setup"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def shell(code: str, marker: str, timeout: int = 900) -> dict:
    result = manage(["shell", "-c", code], timeout=timeout)
    match = re.search(rf"^{marker}=(.*)$", result.stdout, re.M)
    if result.returncode != 0 or not match:
        raise SystemExit(f"{marker} failed:\n{result.stdout}\n{result.stderr}")
    return json.loads(match.group(1))


def prepare() -> dict:
    import redis

    with pg_admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
        conn.execute(f"DROP DATABASE IF EXISTS {PGBENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PGBENCH_DB}")
    subprocess.run(
        ["pgbench", "-i", "-q", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_ADMIN, PGBENCH_DB],
        check=True,
        capture_output=True,
    )
    redis.Redis.from_url(REDIS_URL).flushdb()
    log("migrating and seeding the demo market")
    result = manage(["migrate", "--no-input", "-v", "0"])
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return shell("from bench.order_engine import bench_setup; bench_setup()", "SETUP")


def start_gunicorn(workers: int, logdir: Path) -> tuple[socket.socket, subprocess.Popen]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    fd = sock.fileno()
    out = open(logdir / "order_placement-gunicorn.log", "ab")  # noqa: SIM115 - the server's lifetime
    proc = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "portal.wsgi:application",
            "--bind",
            f"fd://{fd}",
            "--workers",
            str(workers),
            "--graceful-timeout",
            "5",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env_for("bench-web"),
        stdout=out,
        stderr=subprocess.STDOUT,
        pass_fds=(fd,),
        start_new_session=True,
    )
    out.close()
    port = sock.getsockname()[1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited early; see bench/results/order_placement-gunicorn.log")
        with contextlib.suppress(OSError):
            if http_get(port, "/livez", timeout=2)[0] == 200:
                return sock, proc
        time.sleep(0.3)
    raise SystemExit("gunicorn did not answer /livez within 60 s")


def stop(proc: subprocess.Popen) -> None:
    stop_processes([proc])


INSTRUMENTS = [
    ("BTCUSDT", Decimal("64000"), ["0.0001", "0.0002", "0.0003", "0.0005"]),
    ("ETHUSDT", Decimal("3200"), ["0.002", "0.004", "0.006", "0.01"]),
]


#: The API floor's symbol: no instrument has it, so the request runs the whole API layer
#: (authentication, rate limit, idempotency claim and answer, validation, the account read)
#: and the engine's opening statement, then ends 404 UNKNOWN_SYMBOL without matching.
FLOOR_SYMBOL = "NOSUCHPAIR"


def order_body(rng: random.Random, accounts: list[int], *, floor: bool = False) -> bytes:
    """One order of the mix: 70 % resting limit, 20 % crossing limit, 10 % market."""
    symbol, reference, quantities = rng.choice(INSTRUMENTS)
    side = rng.choice(["BUY", "SELL"])
    symbol = FLOOR_SYMBOL if floor else symbol
    body = {"account": rng.choice(accounts), "symbol": symbol, "side": side, "quantity": rng.choice(quantities)}
    roll = rng.random()
    if roll < 0.10:
        body["type"] = "MARKET"
    else:
        if roll < 0.30:
            factor = Decimal("1.01") if side == "BUY" else Decimal("0.99")
        else:
            away = Decimal(rng.randint(20, 300)) / 10000
            factor = 1 - away if side == "BUY" else 1 + away
        body.update({"type": "LIMIT", "price": str((reference * factor).quantize(Decimal("0.01")))})
    return json.dumps(body).encode()


async def _client(
    port: int, count: int, seed: str, key: str, accounts: list[int], latencies, statuses, floor: bool
) -> None:
    rng = random.Random(seed)
    for n in range(count):
        body = order_body(rng, accounts, floor=floor)
        head = (
            f"POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Api-Key {key}\r\n"
            f"Content-Type: application/json\r\nIdempotency-Key: bench-{seed}-{n}-{rng.getrandbits(48)}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head + body)
        status_line = await reader.readline()
        rest = await reader.read()  # gunicorn's sync worker closes the connection after the response
        latencies.append(time.perf_counter() - started)
        writer.close()
        status = status_line.split(b" ", 2)[1].decode() if status_line else "closed"
        if b"\r\nidempotent-replayed:" in b"\r\n" + rest.split(b"\r\n\r\n", 1)[0].lower():
            status += " replayed"  # must never happen: every key is new
        statuses[status] = statuses.get(status, 0) + 1


def run_orders(port: int, clients: int, orders: int, key: str, accounts: list[int], *, floor: bool = False) -> dict:
    """`clients` concurrent callers place `orders` orders in all (a fixed count), one
    connection per request like any HTTP/1.1 client of a sync gunicorn. Every measurement
    seeds its callers afresh, so no Idempotency-Key repeats one of an earlier measurement
    (a repeat would be a cheap replay, not an order). `floor`: the same requests for an
    unknown symbol (see FLOOR_SYMBOL)."""
    salt = os.urandom(8).hex()
    latencies: list[float] = []
    statuses: dict[str, int] = {}

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(
            *(
                _client(port, orders // clients, f"{salt}-{n}", key, accounts[:2], latencies, statuses, floor)
                for n in range(clients)
            )
        )
        return time.perf_counter() - started

    seconds = asyncio.run(run())
    latencies.sort()
    return {
        "orders": len(latencies),
        "seconds": seconds,
        "rate": len(latencies) / seconds,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "statuses": statuses,
    }


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU of each of `pids` so far, from /proc (a process gone is left out)."""
    readings = {pid: cpu_seconds(pid) for pid in pids}
    return {pid: seconds for pid, seconds in readings.items() if seconds is not None}


def _cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two readings; a process started in between counts whole."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def _processes(*, parent: int | None = None, command: str | None = None) -> list[int]:
    """PIDs of the children of `parent`, or of the processes whose command name starts with `command`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            name, rest = stat.split("(", 1)[1].rsplit(")", 1)
            if (parent is not None and int(rest.split()[1]) == parent) or (
                command is not None and name.startswith(command)
            ):
                found.append(int(entry.name))
    return found


def run_orders_measured(server_pid: int, *args, **kwargs) -> dict:
    """`run_orders`, plus the CPU the server's workers and PostgreSQL spent per request
    (every PostgreSQL process of the machine, including the connections opened during the run:
    nothing else uses the database meanwhile)."""

    def reading() -> tuple[dict[int, float], dict[int, float]]:
        return _cpu_seconds(_processes(parent=server_pid)), _cpu_seconds(_processes(command="postgres"))

    before = reading()
    result = run_orders(*args, **kwargs)
    after = reading()
    result["worker_cpu_ms"] = _cpu_spent(before[0], after[0]) * 1000 / result["orders"]
    result["postgres_cpu_ms"] = _cpu_spent(before[1], after[1]) * 1000 / result["orders"]
    return result


def run_pgbench(clients: int, duration: int) -> float:
    out = subprocess.run(
        ["pgbench", "-N", "-n", "-c", str(clients), "-j", str(clients), "-T", str(duration)]
        + ["-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_ADMIN, PGBENCH_DB],
        capture_output=True,
        text=True,
        timeout=duration + 60,
    ).stdout
    match = re.search(r"tps = ([\d.]+)", out)
    if not match:
        raise RuntimeError(f"cannot parse pgbench output:\n{out}")
    return float(match.group(1))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--orders", type=int, default=600, help="orders per HTTP measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=5, help="gunicorn sync workers (compose: WEB_CONCURRENCY)")
    parser.add_argument("--ceiling-seconds", type=int, default=5, help="duration of each bare-view / pgbench run")
    parser.add_argument("--engine-orders", type=int, default=600)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    client_counts = [int(c) for c in args.clients.split(",")]
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = datetime.now()
    machine = machine_info()
    setup = prepare()
    sock, server = start_gunicorn(args.workers, RESULTS)
    port = sock.getsockname()[1]
    http: dict[int, list[dict]] = {c: [] for c in client_counts}
    try:
        for round_number in range(1, args.rounds + 1):
            for clients in client_counts:
                log(f"round {round_number}, {clients} client(s): orders, API floor, bare view, pgbench")
                orders = run_orders_measured(server.pid, port, clients, args.orders, setup["key"], setup["accounts"])
                floor = run_orders_measured(
                    server.pid, port, clients, args.orders, setup["key"], setup["accounts"], floor=True
                )
                bare = run_wrk(port, "/bench/bare", clients, args.ceiling_seconds, setup["key"])
                tps = run_pgbench(clients, args.ceiling_seconds)
                http[clients].append(
                    {
                        **orders,
                        "floor_rps": floor["rate"],
                        "floor_worker_cpu_ms": floor["worker_cpu_ms"],
                        "floor_postgres_cpu_ms": floor["postgres_cpu_ms"],
                        "floor_statuses": floor["statuses"],
                        "bare_rps": bare["rps"],
                        "pgbench_tps": tps,
                    }
                )
    finally:
        stop(server)
        sock.close()
    engine = {}
    for spread in (False, True):
        for threads in (1, 4):
            log(f"engine alone: {threads} thread(s), {'spread over 4 instruments' if spread else 'one hot instrument'}")
            code = (
                "from bench.order_engine import engine_run; "
                f"engine_run(threads={threads}, orders={args.engine_orders}, spread={spread})"
            )
            engine[(threads, spread)] = shell(code, "ENGINE")
    reconcile = manage(["reconcile"])
    report = build_report(args, machine, http, engine, reconcile, started)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"order_placement-{stamp}.md").write_text(report)
    (RESULTS / f"order_placement-{stamp}.json").write_text(
        json.dumps({"http": http, "engine": {f"{t}-{s}": v for (t, s), v in engine.items()}}, indent=2)
    )
    print(report)
    return 0 if reconcile.returncode == 0 else 1


def build_report(args, machine, http, engine, reconcile, started) -> str:
    command = " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    lines = [
        f"### order_placement, {started:%Y-%m-%d %H:%M}",
        "",
        f"`{command}` — {machine['nproc']} cores ({machine['cpu']}), {machine['ram']}, "
        f"Python {machine['python']}; {machine['versions']}. gunicorn sync × {args.workers}, "
        f"{args.orders} orders per measurement, {args.rounds} round(s), medians over rounds.",
        "",
        "| clients | orders/s | p50 ms | p99 ms | API floor req/s | bare view req/s | orders ÷ bare "
        "| floor ÷ bare | pgbench -N TPS | orders ÷ pgbench | statuses |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for clients, rounds in http.items():
        statuses: dict[str, int] = {}
        for r in rounds:
            for status, count in r["statuses"].items():
                statuses[status] = statuses.get(status, 0) + count
            for status, count in r["floor_statuses"].items():
                statuses[f"floor {status}"] = statuses.get(f"floor {status}", 0) + count
        cells = [
            str(clients),
            f"{median([r['rate'] for r in rounds]):.0f}",
            f"{median([r['p50_ms'] for r in rounds]):.1f}",
            f"{median([r['p99_ms'] for r in rounds]):.1f}",
            f"{median([r['floor_rps'] for r in rounds]):.0f}",
            f"{median([r['bare_rps'] for r in rounds]):.0f}",
            f"{median([r['rate'] / r['bare_rps'] for r in rounds]):.1%}",
            f"{median([r['floor_rps'] / r['bare_rps'] for r in rounds]):.1%}",
            f"{median([r['pgbench_tps'] for r in rounds]):.0f}",
            f"{median([r['rate'] / r['pgbench_tps'] for r in rounds]):.1%}",
            ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "CPU per request (medians over rounds; gunicorn's workers, and every PostgreSQL process):",
        "",
        "| clients | order: workers ms | order: PostgreSQL ms | floor: workers ms | floor: PostgreSQL ms |",
        "|---|---|---|---|---|",
    ]
    for clients, rounds in http.items():
        cells = [
            str(clients),
            *(
                f"{median([r[name] for r in rounds]):.1f}"
                for name in ("worker_cpu_ms", "postgres_cpu_ms", "floor_worker_cpu_ms", "floor_postgres_cpu_ms")
            ),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Engine alone (`order_place` in-process, no HTTP):",
        "",
        "| threads | instruments | orders/s | p50 ms | p99 ms | refused |",
        "|---|---|---|---|---|---|",
    ]
    for (threads, spread), result in engine.items():
        lines.append(
            f"| {threads} | {'4 (spread)' if spread else '1 (hot)'} | {result['rate']:.0f} | "
            f"{result['p50_ms']:.1f} | {result['p99_ms']:.1f} | {result['rejected']} |"
        )
    verdict = "clean" if reconcile.returncode == 0 else "BROKEN"
    output = (reconcile.stdout.strip() or reconcile.stderr.strip()).splitlines()
    lines += ["", f"`manage.py reconcile` afterwards: **{verdict}** — {output[-1] if output else ''}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
