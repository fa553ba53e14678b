"""Exports of audit events, orders and trades as CSV, JSON or NDJSON files (DESIGN §9–10, ADR 0007
point 7): `export_submit` checks a request and queues its job, `export_execute` is the job's body,
`export_write` the part of it that reads the rows and writes the file (bench/export times it).
The HTTP side lives in reports/api/v1, the job machinery in portal.jobs.

Memory stays flat whatever the row count: rows are written to the file as they arrive. On
PostgreSQL a CSV export is one `COPY (SELECT …) TO STDOUT WITH (FORMAT csv)`, run by a reader
process that holds psycopg and nothing else (`reports.copy_stream`, about 35 MB against a Django
worker's 80) and appends its output to the file; the job's own connection meanwhile reports its
progress and learns of a cancel. The file holds the rows of one snapshot of the database. The
other formats, and CSV on SQLite (embedded mode), read pages of `PAGE_ROWS` rows through the ORM,
in key order, up to the largest key there was when the export started (rows added later are left
out, none is repeated or skipped; an order that changed meanwhile appears as it was when its page
was read; audit events and trades never change).

File formats (the same columns in each, in the order of `*_COLUMNS`, rows in key order):

- CSV: a header line, then PostgreSQL's own CSV text of each value, on either database:
  decimals with their 8 places, times in UTC as `2026-12-01 09:30:00.123456+00` (ISO 8601 with a
  space), JSON columns as JSON text, an empty field for NULL; lines end with `\\n`.
- JSON: one array of objects; NDJSON: one object per line. Decimals are strings (no float
  rounding), times ISO 8601 (`2026-12-01T09:30:00.123456+00:00`), JSON columns nested.
"""

from __future__ import annotations

import contextlib
import csv
import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import IO, Any

import psycopg
import structlog
from django.conf import settings
from django.db import OperationalError, connection
from django.db.models import Case, Count, Expression, F, JSONField, Max, QuerySet, Value, When
from django.utils import timezone

from audit.models import AuditEvent
from marketdata.selectors import instrument_get
from portal.choices import JobKind, Role
from portal.errors import DomainError
from portal.jobs import JobRun, job_submit, job_succeed
from portal.models import Job, User
from trading.choices import Side
from trading.models import TradingAccount
from trading.selectors import (
    account_get_visible,
    accounts_visible_to,
    orders_visible_to,
    trades_of_accounts,
    trades_visible_to,
)

logger = structlog.get_logger("reports")

EXPORT_DATASETS = ("audit", "orders", "trades")
EXPORT_FORMATS = ("csv", "json", "ndjson")
#: Filters each dataset takes (besides `start` and `end`, which every dataset takes).
DATASET_FILTERS: dict[str, tuple[str, ...]] = {
    "audit": ("action", "actor"),
    "orders": ("account", "symbol"),
    "trades": ("account", "symbol"),
}
#: Rows one ORM page holds in memory (a few MB of audit events with their before / after).
PAGE_ROWS = 2_000
#: Bytes buffered before a write to the file.
WRITE_BUFFER = 1 << 20

#: (header name, ORM field or expression); the first column is the dataset's key.
Column = tuple[str, str | Expression]

AUDIT_COLUMNS: tuple[Column, ...] = (
    ("seq", "seq"),
    ("occurred_at", "occurred_at"),
    ("actor_type", "actor_type"),
    ("actor_label", "actor_label"),
    ("action", "action"),
    ("target_type", "target_type"),
    ("target_id", "target_id"),
    ("target_label", "target_label"),
    ("ip", "ip"),
    ("request_id", "request_id"),
    ("before", "before"),
    ("after", "after"),
    ("prev_hash", "prev_hash"),
    ("hash", "hash"),
)
ORDER_COLUMNS: tuple[Column, ...] = (
    ("id", "id"),
    ("account", "account_id"),
    ("symbol", "instrument__symbol"),
    ("side", "side"),
    ("type", "type"),
    ("time_in_force", "time_in_force"),
    ("status", "status"),
    ("price", "price"),
    ("stop_price", "stop_price"),
    ("quantity", "quantity"),
    ("quote_quantity", "quote_quantity"),
    ("executed_qty", "executed_qty"),
    ("executed_quote", "executed_quote"),
    ("fees_paid", "fees_paid"),
    ("client_order_id", "client_order_id"),
    ("reject_reason", "reject_reason"),
    ("expire_reason", "expire_reason"),
    ("created_at", "created_at"),
    ("updated_at", "updated_at"),
    ("done_at", "done_at"),
)
#: Trades as the venue sees them (operators): both sides of each trade.
VENUE_TRADE_COLUMNS: tuple[Column, ...] = (
    ("id", "id"),
    ("executed_at", "executed_at"),
    ("symbol", "instrument__symbol"),
    ("price", "price"),
    ("quantity", "quantity"),
    ("quote_quantity", "quote_quantity"),
    ("aggressor_side", "aggressor_side"),
    ("maker_account", "maker_account_id"),
    ("taker_account", "taker_account_id"),
    ("maker_order", "maker_order_id"),
    ("taker_order", "taker_order_id"),
    ("maker_fee", "maker_fee"),
    ("taker_fee", "taker_fee"),
)
_TIME_FIELD = {"audit": "occurred_at", "orders": "created_at", "trades": "executed_at"}
_KEY = {"audit": "seq", "orders": "id", "trades": "id"}


class ExportFailed(Exception):
    """The database or the reader process failed while the rows were read: the job fails with
    this message."""


#: Called with the percent done and a message; may raise to stop the export (a canceled job).
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class ExportRequest:
    """What an export was asked for, checked (`export_request_check`); stored as the job's params."""

    dataset: str
    format: str
    start: datetime | None = None
    end: datetime | None = None
    account: int | None = None
    symbol: str | None = None
    action: str | None = None
    actor: str | None = None

    def params(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "format": self.format,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "account": self.account,
            "symbol": self.symbol,
            "action": self.action,
            "actor": self.actor,
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ExportRequest:
        times = {name: datetime.fromisoformat(params[name]) if params.get(name) else None for name in ("start", "end")}
        return cls(
            dataset=params["dataset"],
            format=params["format"],
            account=params.get("account"),
            symbol=params.get("symbol"),
            action=params.get("action"),
            actor=params.get("actor"),
            **times,
        )


@dataclass(frozen=True)
class ExportSource:
    """The rows of one export: `columns` of the rows of `rows` (already narrowed to what the user
    may see and asked for), read in the order of `key`, the first column."""

    dataset: str
    columns: tuple[Column, ...]
    rows: QuerySet
    key: str

    def __post_init__(self) -> None:
        if self.columns[0][1] != self.key:
            raise ValueError(f"The first column of an export must be its key ({self.key}).")

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def select(self, **bounds: Any) -> QuerySet:
        """The columns of the rows within `bounds` (lookups on the key), in key order."""
        return self.rows.filter(**bounds).order_by(self.key).values_list(*(value for _, value in self.columns))

    @cached_property
    def json_columns(self) -> frozenset[int]:
        """Positions of the columns holding JSON (written as JSON text in CSV, nested in JSON)."""
        model = self.rows.model
        return frozenset(
            index
            for index, (_, value) in enumerate(self.columns)
            if isinstance(value, str) and "__" not in value and isinstance(model._meta.get_field(value), JSONField)
        )


# -- requests ---------------------------------------------------------------------------------


def export_request_check(
    *, user: User, dataset: str, format: str, filters: Mapping[str, Any]
) -> tuple[ExportRequest, TradingAccount | None]:
    """The request and its account, checked against the rules and what `user` may see: 400 for an
    unknown dataset, format or filter, a filter the dataset does not take, or an end before the
    start; 403 for an audit export by anyone below operator; 404 for an account the user may not
    see or an unknown symbol."""
    if dataset not in EXPORT_DATASETS:
        raise DomainError(
            "unknown_dataset", f"No dataset {dataset!r}; choose one of {', '.join(EXPORT_DATASETS)}.", status=400
        )
    if format not in EXPORT_FORMATS:
        raise DomainError(
            "unknown_format", f"No format {format!r}; choose one of {', '.join(EXPORT_FORMATS)}.", status=400
        )
    given = {name: value for name, value in filters.items() if value not in (None, "")}
    allowed = {"start", "end", *DATASET_FILTERS[dataset]}
    refused = sorted(set(given) - allowed)
    if refused:
        raise DomainError(
            "bad_filter",
            f"The {dataset} export takes no {', '.join(refused)} filter.",
            status=400,
            errors={name: [f"Not a filter of {dataset}."] for name in refused},
        )
    start, end = _aware(given.get("start")), _aware(given.get("end"))
    if start is not None and end is not None and end < start:
        raise DomainError("bad_range", "The end of the range is before its start.", status=400)
    if dataset == "audit":
        _operator_required(user)
    account = account_get_visible(user=user, account_id=given["account"]) if "account" in given else None
    symbol = instrument_get(symbol=given["symbol"]).symbol if "symbol" in given else None
    request = ExportRequest(
        dataset=dataset,
        format=format,
        start=start,
        end=end,
        account=account.pk if account else None,
        symbol=symbol,
        action=given.get("action"),
        actor=given.get("actor"),
    )
    return request, account


def export_submit(*, user: User, dataset: str, format: str, filters: Mapping[str, Any]) -> Job:
    """Check the request (`export_request_check`: a bad one is refused before anything is queued)
    and queue its job; the file appears on the job when it succeeds."""
    request, account = export_request_check(user=user, dataset=dataset, format=format, filters=filters)
    return job_submit(kind=JobKind.EXPORT, owner=user, params=request.params(), account=account)


def export_jobs_of(*, user: User) -> QuerySet[Job]:
    """`user`'s own exports, newest first."""
    return Job.objects.filter(owner=user, kind=JobKind.EXPORT).select_related("owner").order_by("-created_at", "-id")


# -- rows -------------------------------------------------------------------------------------


def export_source(*, user: User, request: ExportRequest) -> ExportSource:
    """The rows `request` asks for among those `user` may see now (checked again when the job
    runs: an operator who lost the role since gets no audit events).

    Trades: an operator's export of every trade is the venue's view (both sides of each trade);
    any other is an account's view, its own side only, as `GET trades` shows it: a trader may not
    see the other side's account, order or fee."""
    dataset = request.dataset
    if dataset == "audit":
        _operator_required(user)
        rows: QuerySet = AuditEvent.objects.all()
        if request.action:
            rows = rows.filter(action=request.action)
        if request.actor:
            rows = rows.filter(actor_label=request.actor)
        columns = AUDIT_COLUMNS
    elif dataset == "orders":
        rows = orders_visible_to(user)
        if request.account:
            rows = rows.filter(account_id=account_get_visible(user=user, account_id=request.account).pk)
        columns = ORDER_COLUMNS
    elif user.has_role_at_least(Role.OPERATOR) and not request.account:
        rows, columns = trades_visible_to(user), VENUE_TRADE_COLUMNS
    else:
        if request.account:
            accounts = [account_get_visible(user=user, account_id=request.account).pk]
        else:
            accounts = list(accounts_visible_to(user).values_list("pk", flat=True))
        rows, columns = trades_of_accounts(account_ids=accounts), _account_trade_columns(accounts)
    if request.symbol:
        rows = rows.filter(instrument__symbol=request.symbol)
    time_field = _TIME_FIELD[dataset]
    if request.start:
        rows = rows.filter(**{f"{time_field}__gte": request.start})
    if request.end:
        rows = rows.filter(**{f"{time_field}__lt": request.end})
    return ExportSource(dataset=dataset, columns=columns, rows=rows, key=_KEY[dataset])


def _account_trade_columns(accounts: list[int]) -> tuple[Column, ...]:
    """Trades seen from `accounts`: the account's own side (the maker's when both are theirs, as
    the API shows it)."""
    ours_made = {"maker_account_id__in": accounts}

    maker_side = Case(When(aggressor_side=Side.BUY, then=Value(Side.SELL)), default=Value(Side.BUY))

    def side(maker: str, taker: str) -> Case:
        return Case(When(**ours_made, then=F(maker)), default=F(taker))

    return (
        ("id", "id"),
        ("executed_at", "executed_at"),
        ("symbol", "instrument__symbol"),
        ("account", side("maker_account_id", "taker_account_id")),
        ("order", side("maker_order_id", "taker_order_id")),
        ("side", Case(When(**ours_made, then=maker_side), default=F("aggressor_side"))),
        ("role", Case(When(**ours_made, then=Value("maker")), default=Value("taker"))),
        ("price", "price"),
        ("quantity", "quantity"),
        ("quote_quantity", "quote_quantity"),
        ("fee", side("maker_fee", "taker_fee")),
        ("realized_pnl", side("maker_realized_pnl", "taker_realized_pnl")),
        ("aggressor_side", "aggressor_side"),
    )


# -- the job ----------------------------------------------------------------------------------


def export_execute(run: JobRun) -> None:
    """The job's body: read the rows the owner may see now, write the file in the job's scratch
    directory, and put it in place with the row count."""
    job = run.job
    request = ExportRequest.from_params(job.params)
    source = export_source(user=job.owner, request=request)
    path = run.scratch / f"export.{request.format}"
    rows = export_write(source, format=request.format, path=path, progress=run.progress)
    job_succeed(
        job,
        result={"rows": rows, "format": request.format, "dataset": request.dataset},
        file=path,
        name=f"{request.dataset}-{str(job.pk)[:8]}.{request.format}",
    )


def export_write(source: ExportSource, *, format: str, path: Path, progress: Progress | None = None) -> int:
    """Write the rows of `source` to `path` in `format`; returns how many there were.

    One COUNT first (with the largest key, in the same statement) gives the percentages; progress
    is reported by rows written."""
    bounds = source.rows.aggregate(total=Count("pk"), last=Max(source.key))
    total, last = bounds["total"], bounds["last"]

    def done(rows: int) -> None:
        if progress is not None and total:
            progress(100 * rows / total, f"{rows:,} of {total:,} rows")

    if format == "csv" and connection.vendor == "postgresql":
        with path.open("wb", buffering=WRITE_BUFFER) as binary:
            binary.write(_csv_header(source.names).encode())
        return _copy_by_reader(source, path, done)
    with path.open("w", encoding="utf-8", newline="", buffering=WRITE_BUFFER) as text:
        writer = _WRITERS[format](text, source)
        written = _pages(source, writer, last, done)
        writer.close()
        return written


def _copy_by_reader(source: ExportSource, path: Path, done: Callable[[int], None]) -> int:
    """PostgreSQL writes the CSV, and a reader process of its own (`reports.copy_stream`) appends
    it to `path` over its own connection: one COPY of the whole selection. Its reports of the rows
    written so far become the job's progress; a cancel (raised by `done`) or any other way out of
    here kills it. A lost connection is raised as Django's OperationalError (the task retries),
    any other failure as ExportFailed."""
    sql, params = source.select().query.sql_with_params()
    connection.ensure_connection()
    raw = connection.connection  # psycopg's own connection: it binds the ORM's values (never formatted in here)
    order = {
        "conninfo": raw.info.dsn,
        "password": raw.info.password,
        "statement": psycopg.ClientCursor(raw).mogrify(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", params),
        "path": str(path),
    }
    last: dict[str, Any] = {}
    with subprocess.Popen(  # noqa: S603 - our own module, run by our own interpreter
        [sys.executable, "-m", "reports.copy_stream"],
        cwd=settings.BASE_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,  # unbuffered: a write to a reader already gone fails at once and leaves nothing behind
    ) as reader:
        stdin, stdout, stderr = reader.stdin, reader.stdout, reader.stderr
        assert stdin and stdout and stderr  # noqa: S101 - all three are pipes; for the type checker
        try:
            with contextlib.suppress(BrokenPipeError):  # it died at once: its exit status says how
                stdin.write((json.dumps(order) + "\n").encode())
            for line in stdout:
                last = json.loads(line)
                if "rows" in last:
                    done(last["rows"])
        finally:
            if reader.poll() is None and "done" not in last:
                reader.kill()
        complaint = stderr.read().decode(errors="replace").strip()
    returncode = reader.returncode
    if "done" in last:
        logger.info("export_read", rows=last["done"], reader_peak_rss_kb=last["peak_rss_kb"])
        return last["done"]
    if last.get("connection_lost"):
        raise OperationalError(f"The export's database connection was lost: {last['error']}")
    if "error" in last:
        raise ExportFailed(f"{last['class']}: {last['error']}")
    if returncode < 0:
        raise ExportFailed(f"The export's reader was killed by {signal.Signals(-returncode).name}.")
    cause = complaint.splitlines()[-1] if complaint else "no message"
    raise ExportFailed(f"The export's reader exited with status {returncode}: {cause}")


def _pages(source: ExportSource, writer: _Writer, last: int | None, done: Callable[[int], None]) -> int:
    """Pages of PAGE_ROWS rows through the ORM (its converters make Decimals, aware datetimes and
    JSON the same on either database), each after the last key of the one before."""
    written, after = 0, None
    while last is not None:
        bounds: dict[str, Any] = {f"{source.key}__lte": last}
        if after is not None:
            bounds[f"{source.key}__gt"] = after
        page = list(source.select(**bounds)[:PAGE_ROWS])
        writer.write(page)
        written += len(page)
        done(written)
        if len(page) < PAGE_ROWS:
            break
        after = page[-1][0]
    return written


# -- formats ----------------------------------------------------------------------------------


class _Writer:
    def __init__(self, out: IO[str], source: ExportSource):
        self.out = out
        self.names = source.names
        self.json_columns = source.json_columns

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Write what ends the file."""


class _CsvWriter(_Writer):
    """CSV as PostgreSQL's COPY writes it, for SQLite (and for the bench's ORM comparison)."""

    def __init__(self, out: IO[str], source: ExportSource):
        super().__init__(out, source)
        out.write(_csv_header(self.names))
        self.csv = csv.writer(out, lineterminator="\n")

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        json_columns = self.json_columns
        self.csv.writerows(
            [_jsonb_text(value) if index in json_columns else _csv_text(value) for index, value in enumerate(row)]
            for row in rows
        )


class _NdjsonWriter(_Writer):
    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        names, out = self.names, self.out
        for row in rows:
            out.write(_json_object(names, row))
            out.write("\n")


class _JsonWriter(_Writer):
    """One JSON array, written as the rows come: `[`, the objects separated by `,\\n`, `]`."""

    def __init__(self, out: IO[str], source: ExportSource):
        super().__init__(out, source)
        out.write("[")
        self.separator = "\n"

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        names, out = self.names, self.out
        for row in rows:
            out.write(self.separator)
            out.write(_json_object(names, row))
            self.separator = ",\n"

    def close(self) -> None:
        self.out.write("]\n" if self.separator == "\n" else "\n]\n")


_WRITERS: dict[str, type[_Writer]] = {"csv": _CsvWriter, "json": _JsonWriter, "ndjson": _NdjsonWriter}


def _csv_header(names: Iterable[str]) -> str:
    return ",".join(names) + "\n"


def _csv_text(value: Any) -> Any:
    """`value` as PostgreSQL's CSV writes it (the csv module quotes it where needed)."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")  # 0E-8 is 0.00000000, as PostgreSQL writes it
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(sep=" ").removesuffix(":00")  # +00:00 → +00
    if isinstance(value, bool):
        return "t" if value else "f"
    return value


def _jsonb_text(value: Any) -> str:
    """JSON text as PostgreSQL writes jsonb (`, ` and `: ` between items, characters unescaped);
    NULL is an empty field."""
    return "" if value is None else json.dumps(value, ensure_ascii=False)


def _json_object(names: list[str], row: Sequence[Any]) -> str:
    return json.dumps(dict(zip(names, row, strict=True)), default=_json_default, ensure_ascii=False)


def _json_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not exported")


# -- rules ------------------------------------------------------------------------------------


def _operator_required(user: User) -> None:
    if not user.has_role_at_least(Role.OPERATOR):
        raise DomainError("role_forbidden", "The audit log is exported by operators only.", status=403)


def _aware(value: datetime | None) -> datetime | None:
    """A time without a zone is UTC (the venue's time)."""
    if value is None or timezone.is_aware(value):
        return value
    return timezone.make_aware(value, UTC)
