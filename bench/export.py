#!/usr/bin/env python
"""bench/export: our CSV export against psql's \\copy of the same rows, on PostgreSQL (issue #5's
`bench/export`, ADR 0007 point 7).

Run from the repository root with the project's virtualenv (PostgreSQL on 127.0.0.1:5432, user
`postgres`, trust; `psql` on the PATH):

    .venv/bin/python bench/export.py --quick     # 100k rows, 1 round: about a minute
    .venv/bin/python bench/export.py             # 100k and 1M rows, 3 rounds: about 9 minutes
    .venv/bin/python bench/export.py --big       # and 5M rows: about 28 minutes, most of it inserting

What it does (bench/README.md has the figures):

1. Recreates the database `tradeport_bench_export` and migrates it (`manage.py migrate` in a
   subprocess with DATABASE_URL set). A Django child creates an operator, a venue with one
   instrument, two accounts and one order each (every trade points at those two orders).
2. For each size N, grows `audit_auditevent` and `trading_trade` to N rows with set-based SQL
   (`INSERT … SELECT … FROM generate_series`), then VACUUM ANALYZE. Audit rows get fake but
   well-formed values: 64-hex hashes in a chain-looking sequence (the bench does not verify the
   chain), small before / after JSON. Nothing is ever updated or deleted: PostgreSQL refuses
   UPDATE and DELETE on audit events (audit migration 0003); the database is dropped at the end.
3. Times, per dataset (audit, trades) and N, in rounds whose order alternates:
   - ours: `reports.exports.export_write` (the export job's body minus the job's bookkeeping)
     of every row as the operator exports them, CSV, in a fresh Django child process (as a
     worker runs it), which reports its time, its own peak RSS (`getrusage(RUSAGE_SELF)`), the
     RSS it had before the export (Django loaded, connection open), and the peak RSS of the
     reader process the export runs (`reports.copy_stream`, the process the rows go through, as
     the export logs it: the reader's own VmHWM);
   - the ceiling: `psql -c "\\copy (SELECT …) TO '/tmp/…' WITH (FORMAT csv, HEADER)"` of the
     same SELECT (our child prints it with its values bound), timed around the psql process.
   The first round checks that both files hold the same bytes after their header lines (psql
   names the columns as the SQL does). Medians over rounds; rows/s; ours as a share of \\copy's
   rows/s (goal ≥ 40 %); the reader's peak RSS (goal < 64 MB, flat between 1M and 5M rows) and
   how much the Django process grew while it waited for it. The bench
   waits while a pytest run is going on (2 cores).
4. For information, once at the largest N of the run: JSON and NDJSON through the same function,
   and a plain ORM `.values_list(…).iterator(chunk_size=2000)` + csv module CSV.

The report goes to stdout and to `bench/results/export-<timestamp>.md`. Exported files go to
/tmp and are deleted after each measurement.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_overhead import cpu_model, dist_versions, ram_total  # noqa: E402
from bench.common import tests_wait  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DB_NAME = "tradeport_bench_export"
PG_HOST, PG_PORT, PG_ADMIN = "127.0.0.1", 5432, "postgres"
DATABASE_URL = f"postgres://{PG_ADMIN}@{PG_HOST}:{PG_PORT}/{DB_NAME}"
DATASETS = ("audit", "trades")
GOAL_SHARE = 0.40
GOAL_RSS_MB = 64


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k rows only, 1 round")
    parser.add_argument("--big", action="store_true", help="also 5M rows")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument("--child", choices=["setup", "export", "orm-csv", "sql"], help=argparse.SUPPRESS)
    parser.add_argument("--dataset", default="audit", help=argparse.SUPPRESS)
    parser.add_argument("--format", default="csv", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- children (Django)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("REDIS_URL", "DB_POOL", "DEBUG"):
        env.pop(name, None)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "DATABASE_URL": DATABASE_URL,
            "LOG_LEVEL": "WARNING",
            "DEMO_USERS": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def run_child(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_main(args) -> None:
    import django

    django.setup()
    if args.child == "setup":
        print(json.dumps(child_setup()))
        return
    from portal.models import User
    from reports.exports import ExportRequest, export_source

    operator = User.objects.get(username="bench-operator")
    source = export_source(user=operator, request=ExportRequest(dataset=args.dataset, format=args.format))
    if args.child == "sql":
        print(json.dumps({"sql": child_sql(source)}))
        return
    before_kb = _vm_hwm_kb()
    reader = _ReaderPeak()
    reports_logger = logging.getLogger("reports")  # at INFO, to this handler only
    reports_logger.setLevel(logging.INFO)
    reports_logger.propagate = False
    reports_logger.addHandler(reader)
    started = time.perf_counter()
    if args.child == "export":
        from reports.exports import export_write

        rows = export_write(source, format=args.format, path=Path(args.out))
    else:
        rows = child_orm_csv(source, Path(args.out))
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size = Path(args.out).stat().st_size
    sample = {"seconds": seconds, "rows": rows, "before_kb": before_kb, "peak_kb": peak_kb, "reader_kb": reader.kb}
    print(json.dumps({**sample, "bytes": size}))


class _ReaderPeak(logging.Handler):
    """The reader's peak RSS, as `export_write` logs it (the reader reads its own VmHWM at its end:
    `getrusage(RUSAGE_CHILDREN)` would count the pages of this process it was forked with)."""

    def __init__(self) -> None:
        super().__init__()
        self.kb = 0

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict) and record.msg.get("event") == "export_read":
            self.kb = record.msg["reader_peak_rss_kb"]


def _vm_hwm_kb() -> int:
    """The process's peak RSS so far (Django loaded, the database connected)."""
    from django.db import connection

    connection.ensure_connection()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_setup() -> dict:
    """An operator, a venue with one instrument, two accounts with one order each."""
    from decimal import Decimal

    from marketdata.models import Asset, Instrument, Venue
    from portal.choices import Role
    from portal.models import User
    from portal.users import user_set_role
    from trading.models import Order
    from trading.services import account_create

    operator, _ = User.objects.get_or_create(username="bench-operator", defaults={"email": "op@bench.test"})
    user_set_role(user=operator, role=Role.OPERATOR, actor="bench")
    trader, _ = User.objects.get_or_create(username="bench-trader", defaults={"email": "tr@bench.test"})
    user_set_role(user=trader, role=Role.TRADER, actor="bench")
    venue = Venue.objects.create(code="bench", name="Bench venue")
    usdt = Asset.objects.create(code="USDT", name="Tether")
    btc = Asset.objects.create(code="BTC", name="Bitcoin")
    instrument = Instrument.objects.create(
        venue=venue,
        base=btc,
        quote=usdt,
        symbol="BTCUSDT",
        tick_size=Decimal("0.01"),
        price_precision=2,
        lot_size=Decimal("0.001"),
        min_qty=Decimal("0.001"),
        max_qty=Decimal("1000"),
        min_notional=Decimal("1"),
        maker_fee_rate=Decimal("0.001"),
        taker_fee_rate=Decimal("0.002"),
        reference_price=Decimal("100"),
    )
    accounts, orders = [], []
    for name in ("maker", "taker"):
        account = account_create(owner=trader, venue=venue, name=name, actor="bench")
        order = Order.objects.create(
            account=account,
            instrument=instrument,
            side="SELL" if name == "maker" else "BUY",
            type="LIMIT",
            time_in_force="GTC",
            quantity=Decimal("1000000"),
            price=Decimal("100"),
            stp_mode="EXPIRE_TAKER",
            max_fee_rate=Decimal("0.002"),
            status="PARTIALLY_FILLED",
        )
        accounts.append(account.pk)
        orders.append(order.pk)
    return {"instrument": instrument.pk, "accounts": accounts, "orders": orders}


def child_sql(source) -> str:
    """The SELECT of every row of `source`, in key order, its values bound (for psql)."""
    import psycopg
    from django.db import connection

    sql, params = source.select().query.sql_with_params()
    connection.ensure_connection()
    return psycopg.ClientCursor(connection.connection).mogrify(sql, params)


def child_orm_csv(source, path: Path) -> int:
    """The plain ORM way: one server-side cursor (`.iterator()`, in a transaction so PostgreSQL
    need not materialize it), rows through the csv module."""
    import csv
    from decimal import Decimal

    from django.db import transaction

    def text(value):
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, datetime):
            return value.isoformat(sep=" ")
        if isinstance(value, dict | list):
            return json.dumps(value)
        return value

    rows = 0
    with transaction.atomic(), path.open("w", newline="", buffering=1 << 20) as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(source.names)
        for row in source.select().iterator(chunk_size=2000):
            writer.writerow([text(value) for value in row])
            rows += 1
    return rows


# --------------------------------------------------------------------------- database


def pg_admin(dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_ADMIN, dbname=dbname, autocommit=True)


def database_create() -> None:
    with pg_admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    log(f"database {DB_NAME} created; migrating")
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"migrate failed:\n{done.stdout}\n{done.stderr}")


def database_drop() -> None:
    with pg_admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    log(f"database {DB_NAME} dropped")


AUDIT_INSERT = """
INSERT INTO audit_auditevent (
    seq, occurred_at, actor_type, actor_user_id, actor_api_key_id, actor_label, action,
    target_type, target_id, target_label, before, after, ip, user_agent, request_id, prev_hash, hash
)
SELECT
    g,
    timestamptz '2026-01-01 00:00:00+00' + g * interval '7 milliseconds',
    'api_key', NULL, 1, 'bench-trader',
    (ARRAY['order.place', 'order.fill', 'order.cancel', 'account.update'])[1 + g %% 4],
    'order', g::text, 'BUY LIMIT BTCUSDT #' || g,
    CASE WHEN g %% 4 = 0 THEN NULL ELSE jsonb_build_object('status', 'NEW', 'executed_qty', '0.00000000') END,
    jsonb_build_object('status', 'FILLED', 'executed_qty', ((1 + g %% 50) * 0.001)::numeric(28, 8)::text,
                       'price', (100 + (g %% 1000) * 0.01)::numeric(28, 8)::text),
    '10.0.0.1'::inet + (g %% 250), 'bench', md5(g::text),
    md5((g - 1)::text) || md5(g::text), md5(g::text) || md5((g + 1)::text)
FROM generate_series(%(first)s, %(last)s) AS g
"""

TRADE_INSERT = """
INSERT INTO trading_trade (
    instrument_id, price, quantity, quote_quantity, aggressor_side, maker_order_id, taker_order_id,
    maker_account_id, taker_account_id, maker_fee, taker_fee, maker_realized_pnl, taker_realized_pnl, executed_at
)
SELECT
    %(instrument)s, p, q, p * q, CASE WHEN g %% 2 = 0 THEN 'BUY' ELSE 'SELL' END,
    %(maker_order)s, %(taker_order)s, %(maker)s, %(taker)s,
    round(p * q * 0.001, 8), round(p * q * 0.002, 8), 0, 0,
    timestamptz '2026-01-01 00:00:00+00' + g * interval '7 milliseconds'
FROM generate_series(%(first)s, %(last)s) AS g,
     LATERAL (SELECT (100 + (g %% 1000) * 0.01)::numeric(28, 8) AS p, ((1 + g %% 50) * 0.001)::numeric(28, 8) AS q) AS v
"""


def grow(rows: int, venue: dict) -> None:
    """Both tables to `rows` rows (the bench's own, on top of what setup recorded)."""
    with pg_admin(DB_NAME) as conn:
        have_audit = conn.execute("SELECT coalesce(max(seq), 0) FROM audit_auditevent").fetchone()[0]
        have_trades = conn.execute("SELECT count(*) FROM trading_trade").fetchone()[0]
        started = time.perf_counter()
        # Bulk load: no per-row foreign key triggers (every reference points at setup's rows).
        conn.execute("SET session_replication_role = replica")
        if rows > have_audit:
            conn.execute(AUDIT_INSERT, {"first": have_audit + 1, "last": rows})
        if rows > have_trades:
            conn.execute(
                TRADE_INSERT,
                {
                    "first": have_trades + 1,
                    "last": rows,
                    "instrument": venue["instrument"],
                    "maker_order": venue["orders"][0],
                    "taker_order": venue["orders"][1],
                    "maker": venue["accounts"][0],
                    "taker": venue["accounts"][1],
                },
            )
        conn.execute("VACUUM ANALYZE audit_auditevent")
        conn.execute("VACUUM ANALYZE trading_trade")
        counts = [
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("audit_auditevent", "trading_trade")
        ]
    log(f"tables at {counts[0]:,} audit events and {counts[1]:,} trades ({time.perf_counter() - started:.1f} s)")


# --------------------------------------------------------------------------- measurements


def measure_ours(dataset: str, format: str = "csv", mode: str = "export", digest: bool = False) -> dict:
    out = Path(f"/tmp/bench-export-{dataset}.{format}")
    try:
        tests_wait()
        sample = run_child(mode, "--dataset", dataset, "--format", format, "--out", str(out))
        if digest:
            sample["digest"] = _body_digest(out)
        return sample
    finally:
        out.unlink(missing_ok=True)


def measure_psql(sql: str, dataset: str, digest: bool = False) -> dict:
    out = Path(f"/tmp/bench-export-{dataset}-psql.csv")
    command = [
        "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_ADMIN, "-d", DB_NAME,
        "-c", f"\\copy ({sql}) TO '{out}' WITH (FORMAT csv, HEADER)",
    ]  # fmt: skip
    try:
        tests_wait()
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=3600)
        seconds = time.perf_counter() - started
        sample = {"seconds": seconds, "rows": _count_lines(out) - 1, "bytes": out.stat().st_size}
        if digest:
            sample["digest"] = _body_digest(out)
        return sample
    finally:
        out.unlink(missing_ok=True)


def _count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as file:
        while block := file.read(1 << 22):
            count += block.count(b"\n")
    return count


def _body_digest(path: Path) -> str:
    """SHA-256 of the file after its header line (psql names the columns as the SQL does)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        file.readline()
        while block := file.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def compare(dataset: str, rows: int, rounds: int) -> dict:
    sql = run_child("sql", "--dataset", dataset)["sql"]
    ours: list[dict] = []
    ceiling: list[dict] = []
    for round_ in range(rounds):
        first = round_ == 0
        pair = [
            ("ours", ours, lambda first=first: measure_ours(dataset, digest=first)),
            ("psql", ceiling, lambda first=first: measure_psql(sql, dataset, digest=first)),
        ]
        for name, samples, run in pair if round_ % 2 == 0 else pair[::-1]:
            sample = run()
            if sample["rows"] != rows:
                raise SystemExit(f"{name} exported {sample['rows']:,} {dataset} rows, expected {rows:,}")
            samples.append(sample)
            log(f"{dataset} {rows:,}: {name} {sample['seconds']:.2f} s")
    if ours[0]["digest"] != ceiling[0]["digest"]:
        raise SystemExit(f"{dataset} {rows:,}: our rows differ from \\copy's")
    return {
        "dataset": dataset,
        "rows": rows,
        "ours_s": statistics.median(s["seconds"] for s in ours),
        "psql_s": statistics.median(s["seconds"] for s in ceiling),
        "peak_mb": max(s["peak_kb"] for s in ours) / 1024,
        "before_mb": max(s["before_kb"] for s in ours) / 1024,
        "grown_mb": max(s["peak_kb"] - s["before_kb"] for s in ours) / 1024,
        "reader_mb": max(s["reader_kb"] for s in ours) / 1024,
        "bytes": ours[0]["bytes"],
    }


def extras(rows: int) -> list[dict]:
    found = []
    for dataset in DATASETS:
        for label, mode, format in (
            ("JSON", "export", "json"),
            ("NDJSON", "export", "ndjson"),
            ("CSV, ORM .iterator() + csv module", "orm-csv", "csv"),
        ):
            sample = measure_ours(dataset, format, mode)
            log(f"{dataset} {rows:,}: {label} {sample['seconds']:.2f} s")
            found.append({"dataset": dataset, "label": label, **sample})
    return found


# --------------------------------------------------------------------------- report


def machine_info() -> dict[str, str]:
    with pg_admin() as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    psql = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "nproc": f"{os.cpu_count()} ({len(os.sched_getaffinity(0))} usable)",
        "cpu": cpu_model(),
        "ram": ram_total(),
        "python": platform.python_version(),
        "versions": f"{dist_versions(('Django', 'psycopg', 'psycopg-binary'))}, PostgreSQL {pg}, {psql}",
    }


def build_report(args, machine, rows, extra, extra_rows, started, finished) -> str:
    command = "bench/export.py" + (" --quick" if args.quick else "") + (" --big" if args.big else "")
    rounds = 1 if args.quick else args.rounds
    lines = [
        f"### export, {started:%Y-%m-%d %H:%M} ({(finished - started).total_seconds() / 60:.1f} min)",
        "",
        f"`{command}`" + ("" if args.quick or args.rounds == 3 else f" `--rounds {args.rounds}`"),
        "",
        f"Machine: {machine['nproc']} cores ({machine['cpu']}), {machine['ram']}, Python {machine['python']}, "
        f"{machine['versions']}.",
        "",
        f"Every row of the table, as the operator exports them, CSV. Time: median of {rounds} round(s), the order "
        "alternating; ours is `export_write` inside a Django child process (its COUNT and its reader's start "
        "included), \\copy the psql process around it (connection included). Peak RSS: `ru_maxrss` of the reader "
        "process the rows go through (`reports.copy_stream`), and of the Django process that runs it; "
        "'Django grew' is the latter minus its peak before the export (Django loaded, connection open). In every "
        "cell both files hold the same bytes after their header lines.",
        "",
        "| dataset | rows | file MB | ours s | \\copy s | ours rows/s | \\copy rows/s | ours / \\copy "
        f"(goal ≥ {GOAL_SHARE:.0%}) | reader peak RSS MB (goal < {GOAL_RSS_MB}) | Django process peak MB "
        "| Django grew MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        share = row["psql_s"] / row["ours_s"]
        lines.append(
            f"| {row['dataset']} | {row['rows']:,} | {row['bytes'] / 1e6:,.0f} | "
            f"{row['ours_s']:.2f} | {row['psql_s']:.2f} | {row['rows'] / row['ours_s']:,.0f} | "
            f"{row['rows'] / row['psql_s']:,.0f} | **{share:.0%}**{'' if share >= GOAL_SHARE else ' ✗'} | "
            f"{row['reader_mb']:.0f}{'' if row['reader_mb'] < GOAL_RSS_MB else ' ✗'} | {row['peak_mb']:.0f} | "
            f"{row['grown_mb']:.1f} |"
        )
    if extra:
        lines += [
            "",
            f"For information, {extra_rows:,} rows, one run each:",
            "",
            "| dataset | format | s | rows/s | file MB | Django process peak MB | Django grew MB |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in extra:
            lines.append(
                f"| {row['dataset']} | {row['label']} | {row['seconds']:.2f} | {row['rows'] / row['seconds']:,.0f} | "
                f"{row['bytes'] / 1e6:,.0f} | {row['peak_kb'] / 1024:.0f} | "
                f"{(row['peak_kb'] - row['before_kb']) / 1024:.1f} |"
            )
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    if shutil.which("psql") is None:
        raise SystemExit("psql is missing")
    sizes = [100_000] if args.quick else [100_000, 1_000_000] + ([5_000_000] if args.big else [])
    rounds = 1 if args.quick else args.rounds
    started = datetime.now()
    machine = machine_info()
    database_create()
    try:
        venue = run_child("setup")  # its audit events are the first of the N (the bench's continue their seq)
        extra_rows = 1_000_000 if 1_000_000 in sizes else sizes[-1]
        rows, extra = [], []
        for size in sizes:
            grow(size, venue)
            for dataset in DATASETS:
                rows.append(compare(dataset, size, rounds))
            if size == extra_rows:
                extra = extras(size)
    finally:
        if not args.keep:
            database_drop()
    report = build_report(args, machine, rows, extra, extra_rows, started, datetime.now())
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"export-{started:%Y%m%d-%H%M%S}.md").write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
