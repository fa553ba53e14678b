"""Exports through the API and their job: every format reads back to the rows in the database,
filters narrow them, a trader gets only their own rows (and only their side of a trade), bad
requests are refused before anything is queued, and a failure mid-export leaves no file.

On PostgreSQL a CSV export is read by a process of its own over its own connection, which sees
only what is committed: there these tests commit (`transaction=True`)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.db.backends.sqlite3.base import SQLiteCursorWrapper

from audit.models import AuditEvent
from marketdata.models import Instrument
from portal.choices import JobKind, JobStatus, Role
from portal.errors import DomainError
from portal.jobs import JobCanceled, job_execute
from portal.models import Job
from portal.users import user_set_role
from reports.exports import ExportRequest, export_execute, export_source, export_submit, export_write
from trading.models import Order, Trade

#: Only PostgreSQL's CSV reader needs committed rows; on SQLite a committed job would also start
#: in the embedded pool, beside the tests that run it themselves.
pytestmark = pytest.mark.django_db(transaction=connection.vendor == "postgresql")

FORMATS = ("csv", "json", "ndjson")
#: How PostgreSQL's COPY writes a timestamptz in UTC; the SQLite fallback must write the same.
PG_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?\+00$")


# -- the venue --------------------------------------------------------------------------------


@pytest.fixture
def desk(market, funded_account, place):
    """alice (two accounts) traded with bob on BTCUSDT, as taker, as maker and at market; carol
    has an order of her own. Orders of every kind of price: limit, market (no price), open."""
    alice = funded_account("alice", USDT="10000")
    alice_second = funded_account("alice", name="Second", USDT="500")
    bob = funded_account("bob", USDT="10000", BTC="10", ETH="10")
    carol = funded_account("carol", USDT="1000")
    place(bob, "SELL", qty="1", price="100")
    place(alice, "BUY", qty="1", price="100")  # bob makes, alice takes
    place(alice, "SELL", qty="0.5", price="101")
    place(bob, "BUY", qty="0.5", price="101")  # alice makes, bob takes
    place(bob, "SELL", qty="0.2", price="102")
    place(alice, "BUY", "MARKET", qty="0.2")  # a market order: no price
    place(alice, "BUY", qty="2", price="48", instrument=market.ethusdt)  # stays open
    place(alice_second, "BUY", qty="1", price="47", instrument=market.ethusdt)
    place(carol, "BUY", qty="1", price="95")
    return {"alice": alice, "alice_second": alice_second, "bob": bob, "carol": carol}


@pytest.fixture
def run_export(jobs_inline):
    """run_export(client, dataset=..., format=...) → (the finished job as the API shows it, the
    downloaded file's bytes)."""

    def run(client, **body):
        with jobs_inline():
            response = client.post("/api/v1/exports", body, format="json")
        assert response.status_code == 202, response.content
        assert response["Location"] == f"/api/v1/jobs/{response.json()['id']}"
        job = client.get(response["Location"]).json()
        assert job["status"] == JobStatus.SUCCEEDED, job
        assert job["progress"] == 100
        download = client.get(job["download_url"])
        assert download.status_code == 200
        return job, b"".join(download.streaming_content)

    return run


# -- reading files back -----------------------------------------------------------------------


def read_back(content: bytes, format: str) -> tuple[list[str] | None, list[dict]]:
    """(the CSV header, or None) and the rows of an exported file."""
    text = content.decode("utf-8")
    if format == "csv":
        assert text.endswith("\n") and "\r" not in text
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader)
        return header, [dict(zip(header, row, strict=True)) for row in reader]
    if format == "json":
        return None, json.loads(text)
    return None, [json.loads(line) for line in text.splitlines()]


def same(exported, expected, format: str) -> bool:
    """`exported` (as read from the file) holds the database's `expected` value: decimals as
    exact strings, times as ISO 8601, JSON nested in JSON files and as JSON text in CSV."""
    if expected is None:
        return exported == ("" if format == "csv" else None)
    if isinstance(expected, Decimal):
        return isinstance(exported, str) and Decimal(exported) == expected
    if isinstance(expected, datetime):
        if format == "csv":
            return bool(PG_TIMESTAMP.match(exported)) and datetime.fromisoformat(exported) == expected
        return "T" in exported and datetime.fromisoformat(exported) == expected
    if isinstance(expected, dict | list):
        return (json.loads(exported) if format == "csv" else exported) == expected
    if isinstance(expected, int):
        return (int(exported) if format == "csv" else exported) == expected
    return exported == expected


def assert_rows(rows: list[dict], expected: list[dict], format: str) -> None:
    assert len(rows) == len(expected)
    for row, wanted in zip(rows, expected, strict=True):
        assert list(row) == list(wanted)
        mismatched = {name: (row[name], value) for name, value in wanted.items() if not same(row[name], value, format)}
        assert not mismatched, f"row {wanted[next(iter(wanted))]}: {mismatched}"


def order_row(order: Order) -> dict:
    return {
        "id": order.pk,
        "account": order.account_id,
        "symbol": order.instrument.symbol,
        "side": order.side,
        "type": order.type,
        "time_in_force": order.time_in_force,
        "status": order.status,
        "price": order.price,
        "stop_price": order.stop_price,
        "quantity": order.quantity,
        "quote_quantity": order.quote_quantity,
        "executed_qty": order.executed_qty,
        "executed_quote": order.executed_quote,
        "fees_paid": order.fees_paid,
        "client_order_id": order.client_order_id,
        "reject_reason": order.reject_reason,
        "expire_reason": order.expire_reason,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "done_at": order.done_at,
    }


def trade_row_of(trade: Trade, accounts: set[int]) -> dict:
    """The trade as one of `accounts` sees it (the maker's side when both are theirs)."""
    maker = trade.maker_account_id in accounts
    opposite = {"BUY": "SELL", "SELL": "BUY"}[trade.aggressor_side]
    return {
        "id": trade.pk,
        "executed_at": trade.executed_at,
        "symbol": trade.instrument.symbol,
        "account": trade.maker_account_id if maker else trade.taker_account_id,
        "order": trade.maker_order_id if maker else trade.taker_order_id,
        "side": opposite if maker else trade.aggressor_side,
        "role": "maker" if maker else "taker",
        "price": trade.price,
        "quantity": trade.quantity,
        "quote_quantity": trade.quote_quantity,
        "fee": trade.maker_fee if maker else trade.taker_fee,
        "realized_pnl": trade.maker_realized_pnl if maker else trade.taker_realized_pnl,
        "aggressor_side": trade.aggressor_side,
    }


def venue_trade_row(trade: Trade) -> dict:
    return {
        "id": trade.pk,
        "executed_at": trade.executed_at,
        "symbol": trade.instrument.symbol,
        "price": trade.price,
        "quantity": trade.quantity,
        "quote_quantity": trade.quote_quantity,
        "aggressor_side": trade.aggressor_side,
        "maker_account": trade.maker_account_id,
        "taker_account": trade.taker_account_id,
        "maker_order": trade.maker_order_id,
        "taker_order": trade.taker_order_id,
        "maker_fee": trade.maker_fee,
        "taker_fee": trade.taker_fee,
    }


def audit_row(event: AuditEvent) -> dict:
    return {
        "seq": event.seq,
        "occurred_at": event.occurred_at,
        "actor_type": event.actor_type,
        "actor_label": event.actor_label,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target_label": event.target_label,
        "ip": event.ip,
        "request_id": event.request_id,
        "before": event.before,
        "after": event.after,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def orders_of(*accounts) -> list[Order]:
    return list(Order.objects.filter(account__in=accounts).select_related("instrument").order_by("id"))


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("format", FORMATS)
def test_an_orders_export_reads_back_as_exactly_the_traders_orders(desk, key_client, run_export, format):
    alice = desk["alice"].owner
    job, content = run_export(key_client(alice), dataset="orders", format=format)

    header, rows = read_back(content, format)
    expected = [order_row(order) for order in orders_of(desk["alice"], desk["alice_second"])]
    assert any(row["price"] is None for row in expected) and any(row["done_at"] is None for row in expected)
    if header is not None:
        assert header == list(expected[0])
    assert_rows(rows, expected, format)
    assert job["result"] == {"rows": len(expected), "format": format, "dataset": "orders"}
    assert job["kind"] == JobKind.EXPORT and job["result_size"] == len(content)
    assert re.fullmatch(rf"orders-{job['id'][:8]}\.{format}", Path(Job.objects.get(pk=job["id"]).result_file).name)


@pytest.mark.parametrize("format", FORMATS)
def test_an_audit_export_reads_back_as_every_event_with_its_hash_chain(desk, make_user, key_client, run_export, format):
    client = key_client(make_user("olga", role=Role.OPERATOR))

    job, content = run_export(client, dataset="audit", format=format)

    _, rows = read_back(content, format)
    # Every event up to the submission of this very export (its job ran after it); after it, only
    # the job's own end.
    submitted = AuditEvent.objects.get(action="job.submit", target_id=job["id"])
    events = AuditEvent.objects.order_by("seq")
    assert_rows(rows, [audit_row(event) for event in events.filter(seq__lte=submitted.seq)], format)
    assert list(events.filter(seq__gt=submitted.seq).values_list("action", flat=True)) == ["job.succeeded"]
    assert [row["prev_hash"] for row in rows[1:]] == [row["hash"] for row in rows[:-1]]
    assert len(rows) > 20


@pytest.mark.parametrize("format", FORMATS)
def test_a_trader_gets_their_own_side_of_each_trade_and_nothing_of_the_other_side(desk, key_client, run_export, format):
    alice, bob = desk["alice"], desk["bob"]
    job, content = run_export(key_client(alice.owner), dataset="trades", format=format)

    _, rows = read_back(content, format)
    trades = list(Trade.objects.select_related("instrument").order_by("id"))
    assert len(trades) == 3
    assert_rows(rows, [trade_row_of(trade, {alice.pk, desk["alice_second"].pk}) for trade in trades], format)
    assert {row["role"] for row in rows} == {"maker", "taker"}
    assert str(bob.pk) not in {str(row["account"]) for row in rows}
    assert not {"maker_account", "taker_account", "maker_fee", "taker_fee"} & set(rows[0])


@pytest.mark.parametrize("format", FORMATS)
def test_an_operator_gets_both_sides_of_every_trade(desk, make_user, key_client, run_export, format):
    operator = make_user("olga", role=Role.OPERATOR)
    _, content = run_export(key_client(operator), dataset="trades", format=format)

    _, rows = read_back(content, format)
    trades = Trade.objects.select_related("instrument").order_by("id")
    assert_rows(rows, [venue_trade_row(trade) for trade in trades], format)


# -- filters and visibility -------------------------------------------------------------------


def test_start_and_end_select_the_orders_created_in_between(desk, key_client, run_export):
    orders = orders_of(desk["alice"])
    day = datetime(2026, 11, 1, tzinfo=UTC)
    for index, order in enumerate(orders):
        Order.objects.filter(pk=order.pk).update(created_at=day + timedelta(days=index))

    _, content = run_export(
        key_client(desk["alice"].owner),
        dataset="orders",
        start=(day + timedelta(days=1)).isoformat(),
        end=(day + timedelta(days=3)).isoformat(),
    )

    _, rows = read_back(content, "csv")
    assert [int(row["id"]) for row in rows] == [orders[1].pk, orders[2].pk]  # the end is excluded


def test_account_and_symbol_narrow_orders_and_trades(desk, market, key_client, run_export):
    client = key_client(desk["alice"].owner)

    _, content = run_export(client, dataset="orders", format="json", account=desk["alice_second"].pk)
    assert [row["id"] for row in json.loads(content)] == [order.pk for order in orders_of(desk["alice_second"])]

    _, content = run_export(client, dataset="orders", format="json", symbol="ethusdt")
    ethusdt = Order.objects.filter(account__owner=desk["alice"].owner, instrument=market.ethusdt).order_by("id")
    assert [row["id"] for row in json.loads(content)] == [order.pk for order in ethusdt]
    assert len(ethusdt) == 2

    _, content = run_export(client, dataset="trades", format="json", symbol="ETHUSDT")
    assert json.loads(content) == []


def test_action_and_actor_narrow_the_audit_export(desk, make_user, key_client, run_export):
    client = key_client(make_user("olga", role=Role.OPERATOR))

    _, content = run_export(client, dataset="audit", format="ndjson", action="order.place", actor="test")
    rows = [json.loads(line) for line in content.decode().splitlines()]
    expected = AuditEvent.objects.filter(action="order.place", actor_label="test").order_by("seq")
    assert [row["seq"] for row in rows] == [event.seq for event in expected]
    assert len(rows) == Order.objects.count()


def test_a_trader_never_gets_another_users_orders_or_accounts(desk, key_client, run_export):
    client = key_client(desk["carol"].owner)
    _, content = run_export(client, dataset="orders", format="json")
    assert [row["account"] for row in json.loads(content)] == [desk["carol"].pk]

    refused = client.post("/api/v1/exports", {"dataset": "orders", "account": desk["alice"].pk}, format="json")
    assert refused.status_code == 404 and refused.json()["code"] == "not_found"
    assert Job.objects.filter(owner=desk["carol"].owner).count() == 1


def test_an_audit_export_is_refused_to_traders(desk, key_client):
    response = key_client(desk["alice"].owner).post("/api/v1/exports", {"dataset": "audit"}, format="json")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "role_forbidden"
    assert not Job.objects.exists()


def test_an_operator_who_lost_the_role_before_the_job_ran_gets_no_audit_events(make_user):
    operator = make_user("olga", role=Role.OPERATOR)
    job = export_submit(user=operator, dataset="audit", format="csv", filters={})
    user_set_role(user=operator, role=Role.TRADER, actor="test")

    job_execute(str(job.pk), export_execute)

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "operators" in job.error
    assert job.result_file == "" and not list((Path(settings.MEDIA_ROOT) / "jobs" / str(job.pk)).rglob("*"))


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"dataset": "orders", "start": "2026-12-02T00:00:00Z", "end": "2026-12-01T00:00:00Z"}, "bad_range", None),
        ({"dataset": "orders", "format": "xlsx"}, "validation_error", "format"),
        ({"dataset": "positions"}, "validation_error", "dataset"),
        ({"dataset": "orders", "action": "order.place"}, "bad_filter", "action"),
        ({"dataset": "orders", "start": "yesterday"}, "validation_error", "start"),
    ],
)
def test_a_bad_request_is_a_400_problem_and_queues_nothing(desk, key_client, body, code, field):
    response = key_client(desk["alice"].owner).post("/api/v1/exports", body, format="json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code and problem["status"] == 400
    if field is not None:
        assert field in problem["errors"]
    assert not Job.objects.exists()


def test_the_service_names_an_unknown_dataset_or_format(trader):
    with pytest.raises(DomainError) as unknown_dataset:
        export_submit(user=trader, dataset="positions", format="csv", filters={})
    with pytest.raises(DomainError) as unknown_format:
        export_submit(user=trader, dataset="orders", format="xlsx", filters={})
    with pytest.raises(DomainError) as audit_filter_on_orders:
        export_submit(user=trader, dataset="orders", format="csv", filters={"actor": "bob"})

    assert (unknown_dataset.value.code, unknown_dataset.value.status) == ("unknown_dataset", 400)
    assert (unknown_format.value.code, unknown_format.value.status) == ("unknown_format", 400)
    assert (audit_filter_on_orders.value.code, audit_filter_on_orders.value.status) == ("bad_filter", 400)
    assert not Job.objects.exists()


@pytest.mark.parametrize(("format", "empty"), [("csv", None), ("json", "[]\n"), ("ndjson", "")])
def test_an_export_of_no_rows_is_a_valid_file(desk, key_client, run_export, format, empty):
    job, content = run_export(
        key_client(desk["alice"].owner),
        dataset="orders",
        format=format,
        start="2001-01-01T00:00:00Z",
        end="2001-01-02T00:00:00Z",
    )

    header, rows = read_back(content, format)
    assert rows == [] and job["result"]["rows"] == 0
    if format == "csv":
        assert content.decode() == ",".join(header) + "\n" and header[:3] == ["id", "account", "symbol"]
    else:
        assert content.decode() == empty


# -- failures ---------------------------------------------------------------------------------


def _reader_processes() -> list[int]:
    """This test process's children that are an export's reader (`reports.copy_stream`)."""
    readers = []
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                if b"reports.copy_stream" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    readers.append(int(pid))
            except OSError:  # it ended meanwhile
                continue
    return readers


@pytest.fixture
def export_fails_midway(monkeypatch):
    """The orders export fails after its file was begun (it has its header), and the fixture
    gives the words the job's error must hold. On PostgreSQL the reader process dies the moment
    it starts, killed as the kernel's out-of-memory killer would; on SQLite the database reports a
    corrupt page when the orders are read."""
    if connection.vendor == "postgresql":
        stop = threading.Event()

        def kill_the_reader() -> None:
            while not stop.is_set():
                for pid in _reader_processes():
                    os.kill(pid, signal.SIGKILL)
                    return
                time.sleep(0.001)

        watcher = threading.Thread(target=kill_the_reader, daemon=True)
        watcher.start()
        yield "The export's reader was killed by SIGKILL"
        stop.set()
        watcher.join()
        return
    execute = SQLiteCursorWrapper.execute

    def failing_execute(self, query, params=None):
        if 'FROM "trading_order"' in query and " LIMIT " in query:
            raise sqlite3.DatabaseError("database disk image is malformed")
        return execute(self, query, params)

    monkeypatch.setattr(SQLiteCursorWrapper, "execute", failing_execute)
    yield "database disk image is malformed"


def test_an_export_that_fails_midway_fails_the_job_and_leaves_no_file(
    desk, key_client, jobs_inline, export_fails_midway
):
    client = key_client(desk["alice"].owner)
    with jobs_inline():
        response = client.post("/api/v1/exports", {"dataset": "orders", "format": "csv"}, format="json")

    job = client.get(response["Location"]).json()
    assert job["status"] == JobStatus.FAILED
    assert export_fails_midway in job["error"]
    assert job["download_url"] is None and job["result"] is None
    assert Job.objects.get(pk=job["id"]).result_file == ""
    assert not list((Path(settings.MEDIA_ROOT) / "jobs" / job["id"]).rglob("*"))


@pytest.mark.postgres
def test_a_canceled_csv_export_stops_its_reader_at_once(desk, tmp_path):
    """The reader waits on a lock the orders' COUNT does not need (the instruments, for the
    symbol column), reports no rows yet, and the job is canceled at that report: the reader
    is killed and the cancel reaches the job's body."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL); CI runs on it")
    source = export_source(user=desk["alice"].owner, request=ExportRequest(dataset="orders", format="csv"))
    reports: list[int] = []

    def canceled(percent: float, message: str) -> None:
        reports.append(len(_reader_processes()))
        raise JobCanceled

    with psycopg.connect(connection.connection.info.dsn) as locker:
        locker.execute(f"LOCK TABLE {Instrument._meta.db_table} IN ACCESS EXCLUSIVE MODE")  # until it ends
        with pytest.raises(JobCanceled):
            export_write(source, format="csv", path=tmp_path / "orders.csv", progress=canceled)
        assert _reader_processes() == []

    assert reports == [1]


# -- the list ---------------------------------------------------------------------------------


def test_the_list_shows_the_users_own_exports_newest_first(desk, key_client, run_export, django_assert_max_num_queries):
    alice_client = key_client(desk["alice"].owner)
    first, _ = run_export(alice_client, dataset="orders")
    second, _ = run_export(alice_client, dataset="trades", format="json")
    run_export(key_client(desk["bob"].owner), dataset="orders")

    with django_assert_max_num_queries(6):
        response = alice_client.get("/api/v1/exports")

    assert response.status_code == 200
    listed = response.json()["results"]
    assert [job["id"] for job in listed] == [second["id"], first["id"]]
    assert all(job["download_url"] for job in listed)
