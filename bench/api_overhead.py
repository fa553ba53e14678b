#!/usr/bin/env python
"""bench/api_overhead: what the API layer costs per request, under daphne and under gunicorn.

Run from the repository root with the project's virtualenv (PostgreSQL and Redis on localhost):

    .venv/bin/python bench/api_overhead.py                 # full run, about 6-7 minutes
    .venv/bin/python bench/api_overhead.py --rounds 2 --duration 2 --no-profile   # smoke run

What it does (see bench/README.md for the figures and the decision):

1. Recreates the PostgreSQL database `tradeport_bench` (owner role `tradeport_bench`) and one
   login role per server configuration, each with a CONNECTION LIMIT so that a server that
   leaks connections can never exhaust the shared PostgreSQL; migrates it; flushes Redis db 12;
   creates a trader and a read-scope API key through the portal's own services.
2. Starts every server configuration at once, each on its own listening socket created here
   and handed to the server (gunicorn `--bind fd://N`, daphne `--fd N`), so N processes of
   either server share one socket the way a pre-fork server does. `--procs` (default 1) is
   the number of processes of *every* configuration: gunicorn `--workers N`, N daphne processes.
3. Drives them with `wrk` (keep-alive HTTP/1.1): for every server x endpoint (`GET /api/v1/me`
   with `Authorization: Api-Key ...`, `GET /bench/bare`) x clients (1, 8) it runs `--rounds`
   rounds of `--duration` seconds. Rounds are interleaved: each round visits every
   (server, clients) pair in a new random order and runs both endpoints back to back in
   random order, so machine noise hits every configuration alike and the API / bare pair
   of a ratio is measured side by side.
4. Samples `pg_stat_activity` of `tradeport_bench` every 0.25 s throughout, per role, and
   records the maximum number of PostgreSQL connections each configuration held.
5. Reports medians over rounds (req/s, p50, p99), the per-round ratio API time / bare time on
   each server (median over rounds), and the per-round throughput of each server relative to
   the first gunicorn configuration; writes the markdown to stdout and to
   `bench/results/api_overhead-<timestamp>.md` (+ `.json` with every round).
6. Unless `--no-profile`: profiles `GET /api/v1/me` in-process (Django test client, same
   settings as the gunicorn server) with cProfile, and lists its SQL queries and Redis
   commands, to show where the API layer's time goes.

Servers are stopped by PID (and their own process group) when the run ends, fails or is
interrupted. All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"

DB_NAME = "tradeport_bench"
OWNER_ROLE = "tradeport_bench"
PG_HOST, PG_PORT, PG_ADMIN = "127.0.0.1", 5432, "postgres"
REDIS_URL = "redis://127.0.0.1:6379/12"
ENDPOINTS = {"me": "/api/v1/me", "bare": "/bench/bare"}
ENDPOINT_LABEL = {"me": "`GET /api/v1/me`", "bare": "`GET /bench/bare`"}
HIGH_RATE = "100000000/m"


@dataclass
class ServerConfig:
    name: str
    kind: str  # "gunicorn" or "daphne"
    note: str
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    #: PostgreSQL CONNECTION LIMIT of this configuration's role, per process, and its cap.
    conns_per_proc: int = 10
    conn_cap: int = 40

    @property
    def role(self) -> str:
        return "tpb_" + self.name.replace("-", "_")


SERVERS = {
    cfg.name: cfg
    for cfg in [
        ServerConfig(
            "gunicorn-sync",
            "gunicorn",
            "gunicorn sync workers, persistent DB connections (CONN_MAX_AGE=60)",
            env={"DB_CONN_MAX_AGE": "60"},
            args=["--worker-class", "sync"],
            conns_per_proc=4,
        ),
        ServerConfig(
            "gunicorn-gthread",
            "gunicorn",
            "gunicorn gthread workers, 8 threads, persistent DB connections (CONN_MAX_AGE=60)",
            env={"DB_CONN_MAX_AGE": "60"},
            args=["--worker-class", "gthread", "--threads", "8"],
            conns_per_proc=10,
        ),
        ServerConfig(
            "daphne",
            "daphne",
            "daphne, no persistent DB connections (CONN_MAX_AGE=0)",
            env={"DB_CONN_MAX_AGE": "0"},
            conns_per_proc=12,
        ),
        ServerConfig(
            "daphne-persistent",
            "daphne",
            "daphne, persistent DB connections (CONN_MAX_AGE=60)",
            env={"DB_CONN_MAX_AGE": "60"},
            conns_per_proc=25,
            conn_cap=25,
        ),
        ServerConfig(
            "daphne-pool",
            "daphne",
            "daphne, psycopg pool (DB_POOL=1, max 10 per process)",
            env={"DB_POOL": "1", "DB_POOL_MIN": "2", "DB_POOL_MAX": "10"},
            conns_per_proc=12,
        ),
    ]
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- environment


def database_url(role: str) -> str:
    return f"postgres://{role}@{PG_HOST}:{PG_PORT}/{DB_NAME}"


def base_env(role: str, appname: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DB_POOL", "DB_POOL_MIN", "DB_POOL_MAX", "DB_CONN_MAX_AGE", "SECURE_SSL_REDIRECT"):
        env.pop(name, None)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATABASE_URL": database_url(role),
            "REDIS_URL": REDIS_URL,
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
            "DEMO_USERS": "0",
            "RATELIMIT_READ": HIGH_RATE,
            "RATELIMIT_WRITE": HIGH_RATE,
            "RATELIMIT_TRADE": HIGH_RATE,
            "RATELIMIT_ANONYMOUS": HIGH_RATE,
            "PGAPPNAME": appname,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def pg_admin():
    import psycopg

    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_ADMIN, dbname="postgres", autocommit=True)


def setup_database(configs: list[ServerConfig], procs: int) -> None:
    with pg_admin() as conn:
        max_conns = int(conn.execute("show max_connections").fetchone()[0])
        in_use = conn.execute("select count(*) from pg_stat_activity where datname <> %s", [DB_NAME]).fetchone()[0]
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        for cfg in SERVERS.values():
            conn.execute(f"DROP ROLE IF EXISTS {cfg.role}")
        conn.execute(f"DROP ROLE IF EXISTS {OWNER_ROLE}")
        conn.execute(f"CREATE ROLE {OWNER_ROLE} LOGIN CONNECTION LIMIT 10")
        conn.execute(f"CREATE DATABASE {DB_NAME} OWNER {OWNER_ROLE}")
        total = 0
        for cfg in configs:
            limit = min(cfg.conns_per_proc * procs, cfg.conn_cap) + 2
            total += limit
            conn.execute(f"CREATE ROLE {cfg.role} LOGIN CONNECTION LIMIT {limit} IN ROLE {OWNER_ROLE}")
        log(
            f"PostgreSQL: max_connections={max_conns}, {in_use} in use by others; "
            f"bench roles may hold at most {total} together"
        )
        if in_use + total > max_conns - 10:
            log("WARNING: the bench's connection limits come close to max_connections of the shared server")


def manage(args: list[str], env: dict[str, str], timeout: int = 300) -> str:
    result = subprocess.run(
        [str(BIN / "python"), "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


CREATE_KEY = """
from portal.api_keys import api_key_create
from portal.choices import ApiKeyScope, Role
from portal.models import User
from portal.users import user_set_role
user, _ = User.objects.get_or_create(
    username="bench-trader",
    defaults={"email": "bench-trader@tradeport.local", "first_name": "Bench", "last_name": "Trader"},
)
user_set_role(user=user, role=Role.TRADER, actor="bench")
issued = api_key_create(user=user, name="bench", scopes=[ApiKeyScope.READ])
print("RAWKEY=" + issued.raw_key)
"""


def prepare(configs: list[ServerConfig], procs: int) -> str:
    import redis

    log(f"recreating database {DB_NAME} and roles")
    setup_database(configs, procs)
    env = base_env(OWNER_ROLE, "bench-setup")
    log("migrating (manage.py migrate)")
    manage(["migrate", "--no-input", "-v", "0"], env)
    redis.Redis.from_url(REDIS_URL).flushdb()
    out = manage(["shell", "-c", CREATE_KEY], env)
    match = re.search(r"^RAWKEY=(\S+)$", out, re.M)
    if not match:
        raise SystemExit(f"could not create the API key:\n{out}")
    log("trader 'bench-trader' and a read-scope API key created")
    return match.group(1)


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    cfg: ServerConfig
    sock: socket.socket
    procs: list[subprocess.Popen]
    logfile: Path

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]


def start_server(cfg: ServerConfig, procs: int, logdir: Path) -> Server:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    fd = sock.fileno()
    env = base_env(cfg.role, f"bench-{cfg.name}")
    env.update(cfg.env)
    logfile = logdir / f"{cfg.name}.log"
    out = open(logfile, "ab")  # noqa: SIM115 - kept open for the server's lifetime
    if cfg.kind == "gunicorn":
        commands = [
            [
                str(BIN / "gunicorn"),
                "portal.wsgi:application",
                "--bind",
                f"fd://{fd}",
                "--workers",
                str(procs),
                *cfg.args,
                "--graceful-timeout",
                "5",
                "--log-level",
                "warning",
            ]
        ]
    else:
        # daphne has no workers option: N processes accept on the one shared socket.
        commands = [[str(BIN / "daphne"), "--fd", str(fd), "-v", "0", "portal.asgi:application"] for _ in range(procs)]
    popens = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, pass_fds=(fd,), start_new_session=True
        )
        for command in commands
    ]
    out.close()
    return Server(cfg, sock, popens, logfile)


def http_get(port: int, path: str, key: str | None = None, timeout: float = 5) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": f"Api-Key {key}"} if key else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(server: Server, key: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in server.procs:
            if proc.poll() is not None:
                raise SystemExit(f"{server.cfg.name} exited early; see {server.logfile}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if http_get(server.port, "/livez", timeout=2)[0] == 200:
                break
        time.sleep(0.3)
    else:
        raise SystemExit(f"{server.cfg.name} did not answer /livez within {timeout}s; see {server.logfile}")
    # With N processes each must have answered once: poll a few more times.
    for name, path in ENDPOINTS.items():
        status, body = http_get(server.port, path, key)
        if status != 200:
            raise SystemExit(f"{server.cfg.name} {path} answered {status}: {body[:300]!r}")
        if name == "me" and json.loads(body).get("auth_method") != "api_key":
            raise SystemExit(f"{server.cfg.name} {path} did not authenticate by API key: {body[:300]!r}")


def stop_server(server: Server) -> None:
    stop_processes(server.procs)
    server.sock.close()


def stop_processes(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to each of `procs` (by PID), then SIGKILL to the process group of any still up
    after 10 s (each was started in a session of its own: its pid is the group id)."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of `pid` so far, from /proc; None for a process gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- load


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNIT[unit]


def run_wrk(port: int, path: str, clients: int, duration: int, key: str) -> dict:
    command = [
        "wrk",
        "-t",
        str(min(clients, 2)),
        "-c",
        str(clients),
        "-d",
        f"{duration}s",
        "--timeout",
        "5s",
        "--latency",
        "-H",
        f"Authorization: Api-Key {key}",
        f"http://127.0.0.1:{port}{path}",
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 20).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    if not (rps and p50 and p99 and total):
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(rps.group(1)),
        "p50_ms": _ms(*p50.groups()),
        "p99_ms": _ms(*p99.groups()),
        "requests": int(total.group(1)),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        # gunicorn's sync worker closes every connection; wrk counts some of those as read errors.
        "socket_errors": {
            k: int(v) for k, v in zip(("connect", "read", "write", "timeout"), sock.groups(), strict=True)
        }
        if sock
        else {},
    }


class PgSampler(threading.Thread):
    """Counts connections to the bench database per role, every `interval` seconds."""

    def __init__(self, interval: float = 0.25):
        super().__init__(daemon=True)
        self.interval = interval
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.max_by_role: dict[str, int] = {}
        self.last_by_role: dict[str, int] = {}
        self.cell: tuple | None = None
        self.max_by_cell: dict[tuple, dict[str, int]] = {}

    def run(self) -> None:
        with pg_admin() as conn:
            while not self.stop.wait(self.interval):
                rows = conn.execute(
                    "select usename, count(*) from pg_stat_activity where datname = %s group by usename", [DB_NAME]
                ).fetchall()
                counts = {str(role): int(n) for role, n in rows}
                with self.lock:
                    self.last_by_role = counts
                    for role, n in counts.items():
                        self.max_by_role[role] = max(self.max_by_role.get(role, 0), n)
                    if self.cell is not None:
                        cell_max = self.max_by_cell.setdefault(self.cell, {})
                        for role, n in counts.items():
                            cell_max[role] = max(cell_max.get(role, 0), n)


# --------------------------------------------------------------------------- report


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def ram_total() -> str:
    with contextlib.suppress(OSError, AttributeError):
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        return f"{kb / 1024 / 1024:.1f} GiB"
    return "unknown"


def dist_versions(dists: tuple[str, ...]) -> str:
    """`name version` of each installed distribution, "-" for one that is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    def one(dist: str) -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "-"

    return ", ".join(f"{dist} {one(dist)}" for dist in dists)


def machine_info() -> dict[str, str]:
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip()
    with pg_admin() as conn:
        pg = conn.execute("show server_version").fetchone()[0]
    dists = ("Django", "djangorestframework", "daphne", "Twisted", "gunicorn", "psycopg", "django-redis")
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "ram": ram_total(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": f"{dist_versions(dists)}, PostgreSQL {pg}, {wrk}",
    }


def fmt(value: float, digits: int = 2) -> str:
    return "—" if value != value else f"{value:.{digits}f}"  # NaN -> dash


def build_report(args, machine, configs, results, sampler, idle_conns, started, finished, rounds_done) -> str:
    lines: list[str] = []
    add = lines.append
    add(f"# api_overhead — {started:%Y-%m-%d %H:%M:%S}")
    add("")
    add(
        f"Machine: {machine['nproc']} cores ({machine['cpu']}), {machine['ram']} RAM, Linux {machine['kernel']}, "
        f"Python {machine['python']}. Load average at start / end: {args.load_start} / {args.load_end}."
    )
    add(f"Versions: {machine['versions']}.")
    add("")
    add(
        f"Each server configuration runs **{args.procs} process(es)** (gunicorn `--workers {args.procs}`; "
        f"{args.procs} daphne process(es) on one shared socket). {rounds_done} interleaved rounds × "
        f"{args.duration:g} s per cell, wrk keep-alive clients, all configurations up at once. "
        f"Figures are medians over rounds; ratios are medians of per-round ratios. Run took "
        f"{(finished - started).total_seconds() / 60:.1f} min."
    )
    add("")
    add("| server | endpoint | clients | req/s | p50 ms | p99 ms | non-2xx | max PG conns |")
    add("|---|---|---:|---:|---:|---:|---:|---:|")
    for cfg in configs:
        for ep in ENDPOINTS:
            for clients in args.clients:
                runs = results[(cfg.name, ep, clients)]
                cell_max = max(
                    (
                        sampler.max_by_cell.get((cfg.name, ep, clients, r), {}).get(cfg.role, 0)
                        for r in range(rounds_done)
                    ),
                    default=0,
                )
                add(
                    f"| {cfg.name} | {ENDPOINT_LABEL[ep]} | {clients} | {fmt(median([r['rps'] for r in runs]), 0)} | "
                    f"{fmt(median([r['p50_ms'] for r in runs]))} | {fmt(median([r['p99_ms'] for r in runs]))} | "
                    f"{sum(r['non2xx'] for r in runs)} | {cell_max} |"
                )
    add("")
    add("## API overhead: time per request of `/api/v1/me` ÷ `/bench/bare`, same server, same round")
    add("")
    add("| server | clients | by p50 latency | by 1/throughput | goal ≤ 2× |")
    add("|---|---:|---:|---:|---|")
    ratios = {}
    for cfg in configs:
        for clients in args.clients:
            me, bare = results[(cfg.name, "me", clients)], results[(cfg.name, "bare", clients)]
            by_p50 = median([m["p50_ms"] / b["p50_ms"] for m, b in zip(me, bare, strict=True)])
            by_thr = median([b["rps"] / m["rps"] for m, b in zip(me, bare, strict=True)])
            ratios[(cfg.name, clients)] = (by_p50, by_thr)
            verdict = "met" if max(by_p50, by_thr) <= 2.0 else "**not met**"
            failed = sum(r["non2xx"] for r in me + bare)
            if failed:
                verdict += f" ({failed} non-2xx answers: figures not comparable)"
            add(f"| {cfg.name} | {clients} | {fmt(by_p50)}× | {fmt(by_thr)}× | {verdict} |")
    baseline = next((c for c in configs if c.kind == "gunicorn"), None)
    if baseline is not None:
        add("")
        add(f"## Throughput relative to {baseline.name} (per-round ratio, median; < 1 = slower)")
        add("")
        header = " | ".join(f"`{path}` c={c}" for path in ENDPOINTS.values() for c in args.clients)
        add(f"| server | {header} |")
        add("|---|" + "---:|" * (len(ENDPOINTS) * len(args.clients)))
        for cfg in configs:
            cells = []
            for ep in ENDPOINTS:
                for clients in args.clients:
                    mine, base = results[(cfg.name, ep, clients)], results[(baseline.name, ep, clients)]
                    cells.append(f"{fmt(median([m['rps'] / b['rps'] for m, b in zip(mine, base, strict=True)]))}×")
            add(f"| {cfg.name} | " + " | ".join(cells) + " |")
    add("")
    add("## PostgreSQL connections to `tradeport_bench` (sampled every 0.25 s)")
    add("")
    add("| server | max during run | held when idle at the end | role's CONNECTION LIMIT | configuration |")
    add("|---|---:|---:|---:|---|")
    for cfg in configs:
        limit = min(cfg.conns_per_proc * args.procs, cfg.conn_cap) + 2
        add(
            f"| {cfg.name} | {sampler.max_by_role.get(cfg.role, 0)} | {idle_conns.get(cfg.role, 0)} | {limit} | "
            f"{cfg.note} |"
        )
    add("")
    return "\n".join(lines), ratios


# --------------------------------------------------------------------------- profile


PROFILE_TARGETS = [
    # label, file suffix, function name
    ("whole request: middleware + view (BaseHandler.get_response)", "django/core/handlers/base.py", "get_response"),
    ("DRF APIView.dispatch (the API layer)", "rest_framework/views.py", "dispatch"),
    ("  authentication: api_key_authenticate", "portal/api_keys.py", "api_key_authenticate"),
    ("    SHA-256 of the presented key", "portal/api_keys.py", "_hash"),
    ("    _note_use (cache.add; audit + UPDATE once a minute)", "portal/api_keys.py", "_note_use"),
    ("  permissions: IsAuthenticatedWithScope", "portal/api/permissions.py", "has_permission"),
    ("    User.role (groups query)", "portal/models.py", "role"),
    ("  throttle: EndpointClassRateThrottle.allow_request", "portal/api/ratelimit.py", "allow_request"),
    ("  view + serializer: MeView.get", "portal/api/v1/views.py", "get"),
    ("    MeSerializer.get_two_factor_enabled (TOTP query)", "portal/api/v1/serializers.py", "get_two_factor_enabled"),
    ("  TradeportApiMixin.finalize_response (RateLimit-* headers)", "portal/api/views.py", "finalize_response"),
    ("  JSON rendering", "rest_framework/response.py", "rendered_content"),
    ("SQL: every query (CursorWrapper._execute)", "django/db/backends/utils.py", "_execute"),
    ("DB connection health check (CONN_HEALTH_CHECKS)", "django/db/backends/postgresql/base.py", "is_usable"),
    ("Redis: every command (Redis.execute_command)", "redis/client.py", "execute_command"),
    ("structlog bind_contextvars", "structlog/contextvars.py", "bind_contextvars"),
    ("Prometheus middleware (before + after)", "django_prometheus/middleware.py", "process_response"),
]


def _ablations(key: str):
    """What-if variants of `GET /api/v1/me`, each removing one remaining cost (the last one
    adding back a saved one) by monkeypatching in this process only (the portal's code is
    untouched): name -> list of (object, attribute, value)."""
    import pickle

    from django.conf import settings

    import portal.api_keys
    from portal.api.ratelimit import EndpointClassRateThrottle
    from portal.models import ApiKey

    prefix = key[len(portal.api_keys.KEY_PREFIX_MARK) :].split(".", 1)[0]
    record = ApiKey.objects.select_related("user").get(prefix=prefix)
    _ = record.user.role, record.user.two_factor_enabled
    blob = pickle.dumps(record)

    variants = {
        "no rate-limit throttle (a Redis round trip per leased block of counts)": [
            (EndpointClassRateThrottle, "allow_request", lambda self, request, view: True)
        ],
        "key record from a constant, without the local-copy check": [
            (portal.api_keys, "_key_with_user", lambda prefix: pickle.loads(blob))
        ],
        "no `api-key-used` bookkeeping": [(portal.api_keys, "_note_use", lambda *a, **k: None)],
    }
    variants["all of the above"] = [patch for patches in list(variants.values()) for patch in patches]
    # The other direction: what the process-local record copies save.
    variants["key record from the shared cache every time (API_KEY_LOCAL_COPIES=0)"] = [
        (settings, "API_KEY_LOCAL_COPIES", False)
    ]
    return variants


def profile_child(key: str, requests: int) -> None:
    """Runs inside a child process with the gunicorn-sync environment; prints JSON."""
    import cProfile
    import pstats
    from unittest import mock

    import django

    django.setup()
    import redis
    from django.db import close_old_connections, connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(headers={"Authorization": f"Api-Key {key}"})

    def get(path: str):
        # The test client skips request_started's close_old_connections; a real server runs it,
        # and with CONN_HEALTH_CHECKS it makes the next query check the connection first.
        close_old_connections()
        response = client.get(path)
        assert response.status_code == 200, response.content[:300]
        return response

    for _ in range(100):
        for path in ENDPOINTS.values():
            get(path)

    # Wall time per request without profiler: bare, /me as is, and /me minus one cost at a
    # time, interleaved request by request so noise hits every variant alike.
    variants = {"`/bench/bare`": None, "`/api/v1/me` as is": []}
    variants.update({f"`/api/v1/me`, {name}": patches for name, patches in _ablations(key).items()})
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(requests):
        for name, patches in variants.items():
            path = ENDPOINTS["bare"] if patches is None else ENDPOINTS["me"]
            with contextlib.ExitStack() as stack:
                for target, attribute, value in patches or []:
                    stack.enter_context(mock.patch.object(target, attribute, value))
                t0 = time.perf_counter()
                get(path)
                times[name].append((time.perf_counter() - t0) * 1000)

    # SQL queries and Redis commands of one request each.
    commands: list[str] = []
    original = redis.Redis.execute_command

    def counting(self, *args, **options):
        commands.append(str(args[0]))
        return original(self, *args, **options)

    queries, redis_cmds = {}, {}
    for ep, path in ENDPOINTS.items():
        commands.clear()
        redis.Redis.execute_command = counting
        try:
            with CaptureQueriesContext(connection) as ctx:
                get(path)
        finally:
            redis.Redis.execute_command = original
        queries[ep] = [q["sql"] for q in ctx.captured_queries]
        redis_cmds[ep] = list(commands)

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        get(ENDPOINTS["me"])
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    rows = []
    total = None
    for label, suffix, func in PROFILE_TARGETS:
        matches = [
            (ct, nc)
            for (filename, _line, name), (_cc, nc, _tt, ct, _callers) in stats.items()
            if name == func and filename.replace("\\", "/").endswith(suffix)
        ]
        ct, nc = max(matches, default=(0.0, 0))
        if total is None:
            total = ct or 1.0
        rows.append({"label": label, "ms_per_request": ct * 1000 / requests, "share": ct / total, "calls": nc})
    top = sorted(
        (
            (tt, f"{Path(filename).name}:{line} {name}")
            for (filename, line, name), (_cc, _nc, tt, _ct, _callers) in stats.items()
        ),
        reverse=True,
    )[:12]
    print(
        "PROFILE_JSON="
        + json.dumps(
            {
                "requests": requests,
                "wall_ms": {
                    name: {"median": median(v), "p90": sorted(v)[int(0.9 * len(v))]} for name, v in times.items()
                },
                "queries": queries,
                "redis": redis_cmds,
                "breakdown": rows,
                "top_self": [{"ms_per_request": tt * 1000 / requests, "where": where} for tt, where in top],
            }
        )
    )


def run_profile(key: str, requests: int) -> dict:
    cfg = SERVERS["gunicorn-sync"]
    env = base_env(cfg.role, "bench-profile")
    env.update(cfg.env)
    result = subprocess.run(
        [str(BIN / "python"), str(Path(__file__).resolve())]
        + ["--profile-child", key, "--profile-requests", str(requests)],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    match = re.search(r"^PROFILE_JSON=(.*)$", result.stdout, re.M)
    if not match:
        raise RuntimeError(f"profile failed:\n{result.stdout}\n{result.stderr}")
    return json.loads(match.group(1))


def profile_report(profile: dict) -> str:
    lines = ["## Where `/api/v1/me` spends its time (in-process, Django test client, gunicorn-sync settings)", ""]
    wall = profile["wall_ms"]
    bare = wall["`/bench/bare`"]["median"]
    as_is = wall["`/api/v1/me` as is"]["median"]
    lines.append(
        f"Wall time per request without profiler, median of {profile['requests']} requests per row, rows "
        "interleaved request by request. No HTTP server in these figures, so the ratio is larger than "
        "through a server (which adds the same parsing / socket cost to both). Each `/api/v1/me, ...` row "
        "removes one cost (the last row adds one back) by monkeypatching inside the bench process only "
        "(portal code unchanged):"
    )
    lines.append("")
    lines.append("| request | median ms | saved vs as is | ÷ bare |")
    lines.append("|---|---:|---:|---:|")
    for name, row in wall.items():
        saved = "" if name == "`/bench/bare`" else f"{as_is - row['median']:.2f}"
        lines.append(f"| {name} | {row['median']:.2f} | {saved} | {row['median'] / bare:.1f}× |")
    lines.append("")
    for ep in ENDPOINTS:
        lines.append(
            f"{ENDPOINT_LABEL[ep]}: {len(profile['queries'][ep])} SQL queries, "
            f"{len(profile['redis'][ep])} Redis commands ({', '.join(profile['redis'][ep]) or 'none'})."
        )
    lines.append("")
    for i, sql in enumerate(profile["queries"]["me"], 1):
        lines.append(f"{i}. `{sql[:160]}{' …' if len(sql) > 160 else ''}`")
    lines.append("")
    lines.append("cProfile, cumulative time per request (profiler overhead inflates Python-heavy parts):")
    lines.append("")
    lines.append("| part | ms / request | share of request | calls |")
    lines.append("|---|---:|---:|---:|")
    for row in profile["breakdown"]:
        lines.append(
            f"| {row['label'].replace('  ', '&nbsp;&nbsp;')} | {row['ms_per_request']:.3f} | "
            f"{row['share'] * 100:.0f}% | {row['calls']} |"
        )
    lines.append("")
    lines.append("Top self time:")
    lines.append("")
    for row in profile["top_self"]:
        lines.append(f"- {row['ms_per_request']:.3f} ms — `{row['where']}`")
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated, from: " + ", ".join(SERVERS))
    parser.add_argument("--procs", type=int, default=1, help="processes per server configuration (default 1)")
    parser.add_argument("--clients", default="1,8", help="concurrent clients (default 1,8)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=3, help="whole seconds per cell and round")
    parser.add_argument("--max-minutes", type=float, default=10.0, help="stop starting new rounds after this")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--profile-requests", type=int, default=500)
    parser.add_argument("--profile-child", metavar="KEY", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.clients = [int(c) for c in args.clients.split(",")]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.profile_child:
        profile_child(args.profile_child, args.profile_requests)
        return 0
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    unknown = [s for s in args.servers.split(",") if s not in SERVERS]
    if unknown:
        raise SystemExit(f"unknown server(s) {unknown}; choose from {list(SERVERS)}")
    configs = [SERVERS[s] for s in args.servers.split(",")]
    started = datetime.now()
    t_start = time.monotonic()
    args.load_start = loadavg()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    logdir = RESULTS / f"logs-{stamp}"
    logdir.mkdir()
    machine = machine_info()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)

    key = prepare(configs, args.procs)
    servers: list[Server] = []
    sampler = PgSampler()
    results: dict[tuple, list[dict]] = {(c.name, ep, n): [] for c in configs for ep in ENDPOINTS for n in args.clients}
    idle_conns: dict[str, int] = {}
    rounds_done = 0
    try:
        for cfg in configs:
            servers.append(start_server(cfg, args.procs, logdir))
        for server in servers:
            wait_ready(server, key)
            log(f"{server.cfg.name} ready on 127.0.0.1:{server.port} (pids {[p.pid for p in server.procs]})")
        sampler.start()
        log("warm-up: 1 s per server, endpoint at the highest client count")
        for server in servers:
            for path in ENDPOINTS.values():
                run_wrk(server.port, path, max(args.clients), 1, key)
        by_name = {s.cfg.name: s for s in servers}
        rng = random.Random(args.seed)
        groups = [(c.name, n) for c in configs for n in args.clients]
        round_seconds = len(groups) * len(ENDPOINTS) * (args.duration + 0.4)
        for rnd in range(args.rounds):
            elapsed = time.monotonic() - t_start
            if rnd and elapsed + round_seconds > args.max_minutes * 60:
                log(f"time budget reached: stopping after {rnd} rounds")
                break
            rng.shuffle(groups)
            for name, clients in groups:
                endpoints = list(ENDPOINTS)
                rng.shuffle(endpoints)
                for ep in endpoints:
                    with sampler.lock:
                        sampler.cell = (name, ep, clients, rnd)
                    run = run_wrk(by_name[name].port, ENDPOINTS[ep], clients, args.duration, key)
                    with sampler.lock:
                        sampler.cell = None
                    results[(name, ep, clients)].append(run)
                    time.sleep(0.2)
            rounds_done = rnd + 1
            log(f"round {rounds_done}/{args.rounds} done ({(time.monotonic() - t_start) / 60:.1f} min)")
        time.sleep(1.0)  # let the sampler see what stays open when idle
        with sampler.lock:
            idle_conns = dict(sampler.last_by_role)
    finally:
        sampler.stop.set()
        for server in servers:
            stop_server(server)
        log("servers stopped")
    args.load_end = loadavg()
    finished = datetime.now()
    report, ratios = build_report(args, machine, configs, results, sampler, idle_conns, started, finished, rounds_done)
    profile = None
    if not args.no_profile:
        log(f"profiling /api/v1/me in-process ({args.profile_requests} requests)")
        profile = run_profile(key, args.profile_requests)
        report += "\n" + profile_report(profile)
    report += f"\nServer logs: `{logdir.relative_to(ROOT)}/`.\n"
    out = RESULTS / f"api_overhead-{stamp}.md"
    out.write_text(report)
    (RESULTS / f"api_overhead-{stamp}.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "args": {k: v for k, v in vars(args).items() if k != "profile_child"},
                "rounds_done": rounds_done,
                "results": [
                    {"server": s, "endpoint": e, "clients": c, "rounds": r} for (s, e, c), r in results.items()
                ],
                "ratios": [
                    {"server": s, "clients": c, "by_p50": a, "by_throughput": b} for (s, c), (a, b) in ratios.items()
                ],
                "pg_max_by_role": sampler.max_by_role,
                "pg_idle_by_role": idle_conns,
                "profile": profile,
            },
            indent=1,
        )
    )
    print(report)
    log(f"written {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
