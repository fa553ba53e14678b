"""portal/rawsql.py: the hot path's raw statements read and write what the ORM would."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal import rawsql
from portal.api.shared_serializers import shared_serializer
from portal.models import IdempotencyRecord
from trading.api.v1.serializers import OrderSerializer
from trading.models import Position

pytestmark = pytest.mark.django_db


def _record(key: str, **extra) -> IdempotencyRecord:
    return IdempotencyRecord(
        scope="key:1",
        key=key,
        method="POST",
        path="/x",
        fingerprint="f" * 64,
        locked_until=timezone.now() + timedelta(seconds=30),
        **extra,
    )


def test_insert_gives_each_object_the_key_of_its_own_row():
    records = [_record(f"k{n}", response_status=200 + n, response_body={"n": n}) for n in range(5)]
    rawsql.insert(records)
    for n, record in enumerate(records):
        stored = IdempotencyRecord.objects.get(pk=record.pk)
        assert (stored.key, stored.response_status, stored.response_body) == (f"k{n}", 200 + n, {"n": n})
        assert not record._state.adding


def test_instances_read_back_what_the_orm_reads_decimals_included(market, funded_account):
    account = funded_account("alice", USDT="10")
    position = Position.objects.create(
        account=account, instrument=market.btcusdt, quantity=Decimal("0.12345678"), average_price=Decimal("64000.5")
    )
    rows = rawsql.issue(
        f"SELECT {rawsql.columns(Position)} FROM trading_position WHERE id = %s",  # noqa: S608 - names only
        [position.pk],
    ).fetchall()
    (loaded,) = rawsql.instances(Position, rows)
    expected = Position.objects.get(pk=position.pk)
    for field in Position._meta.concrete_fields:
        assert getattr(loaded, field.attname) == getattr(expected, field.attname), field.name
    assert isinstance(loaded.quantity, Decimal) and loaded.quantity == Decimal("0.12345678")


def test_insert_unless_conflict_reports_the_collision_and_leaves_the_transaction_usable():
    first = _record("same")
    with transaction.atomic():
        assert rawsql.insert_unless_conflict(first, ("scope", "key")) is True
        assert rawsql.insert_unless_conflict(_record("same"), ("scope", "key")) is False
        assert IdempotencyRecord.objects.filter(key="same").count() == 1  # still usable: no error was raised
    assert first.pk is not None


def test_update_writes_only_the_named_fields():
    record = _record("upd")
    rawsql.insert([record])
    record.response_status, record.path = 201, "/not-written"
    assert rawsql.update(record, ("response_status",)) == 1
    stored = IdempotencyRecord.objects.get(pk=record.pk)
    assert (stored.response_status, stored.path) == (201, "/x")


def test_database_errors_come_out_as_djangos():
    rawsql.insert([_record("dup")])
    with pytest.raises(IntegrityError), transaction.atomic():
        rawsql.insert([_record("dup")])


def test_statements_issued_in_a_pipeline_are_read_after_it():
    with transaction.atomic():
        with rawsql.pipeline():
            keys_set = rawsql.insert_issue([_record("p1"), _record("p2")])
            count = rawsql.issue("SELECT COUNT(*) FROM portal_idempotencyrecord WHERE key IN ('p1', 'p2')")
        keys_set()
        assert count.fetchone()[0] == 2  # the SELECT ran after the INSERT, in order


def test_an_error_in_a_pipeline_is_raised_at_its_end_and_nothing_of_it_stays():
    rawsql.insert([_record("taken")])
    with pytest.raises(IntegrityError), transaction.atomic(), rawsql.pipeline():
        rawsql.insert_issue([_record("fresh")])
        rawsql.insert_issue([_record("taken")])
    assert not IdempotencyRecord.objects.filter(key="fresh").exists()


def test_shared_serializers_are_one_per_thread():
    mine = shared_serializer(OrderSerializer)
    assert shared_serializer(OrderSerializer) is mine
    theirs: list[OrderSerializer] = []
    thread = threading.Thread(target=lambda: theirs.append(shared_serializer(OrderSerializer)))
    thread.start()
    thread.join()
    assert theirs[0] is not mine and isinstance(theirs[0], OrderSerializer)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_connection_whose_prepared_plans_a_migration_made_stale_is_closed_after_the_request():
    from django.db import DatabaseError, connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL); CI runs on it")
    import psycopg

    db = connections["default"]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE rawsql_probe (id integer, amount numeric(20, 8))")
    settings = connection.settings_dict
    migrator = psycopg.connect(
        host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"], dbname=settings["NAME"]
    )
    migrator.autocommit = True
    query = "SELECT id, amount FROM rawsql_probe WHERE id = %s"
    try:
        rawsql.issue(query, [1]).fetchall()  # prepared on this connection now
        migrator.execute("ALTER TABLE rawsql_probe ALTER COLUMN amount TYPE numeric(30, 8)")  # a migration elsewhere
        close_at_before = db.close_at  # from CONN_MAX_AGE: the connection's own end of life
        with pytest.raises(DatabaseError, match="cached plan"):
            rawsql.issue(query, [1])
        assert db.close_at is not None and db.close_at != close_at_before and db.close_at <= time.monotonic()
        db.close_if_unusable_or_obsolete()  # what Django does when the request ends
        assert rawsql.issue(query, [1]).fetchall() == []  # a new connection, prepared afresh
    finally:
        db.close_at = None
        migrator.execute("DROP TABLE rawsql_probe")
        migrator.close()


def _server_prepared_count() -> int:
    return rawsql.database().connection.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0]


def test_prepared_statements_outlive_a_rolled_back_transaction_and_savepoint():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL); CI runs on it")
    query = "SELECT id FROM portal_idempotencyrecord WHERE key = %s"
    rawsql.issue(query, ["a"]).fetchall()
    prepared = _server_prepared_count()
    assert prepared >= 1
    with pytest.raises(IntegrityError), transaction.atomic():  # a savepoint inside the test's transaction
        rawsql.insert([_record("same")])
        rawsql.insert([_record("same")])
    assert _server_prepared_count() == prepared  # psycopg alone would have sent DEALLOCATE ALL here
    raw = rawsql.database().connection
    assert isinstance(raw._prepared, rawsql.PlansOutliveRollback)
    assert any(key[0].startswith(b"SELECT id FROM portal_idempotencyrecord") for key in raw._prepared._names)
    assert rawsql.issue(query, ["same"]).fetchall() == []  # the savepoint's rows are gone; the plan is still good


def test_a_schema_change_still_clears_the_prepared_statements():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL); CI runs on it")
    rawsql.issue("SELECT id FROM portal_idempotencyrecord WHERE key = %s", ["a"]).fetchall()
    assert _server_prepared_count() >= 1
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS rawsql_absent")  # as a migration would
    rawsql.issue("SELECT 1", []).fetchall()  # psycopg deallocates before its next statement
    assert _server_prepared_count() == 1
