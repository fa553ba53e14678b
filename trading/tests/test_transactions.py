"""A deadlock or serialization failure reported by the database is retried; the caller never sees it."""

import pytest
from django.db import DatabaseError, connection

from trading.transactions import atomic_with_retry


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_deadlock_and_serialization_failures_are_retried(sqlstate):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL); CI runs on it")
    attempts = []

    def work():
        attempts.append(1)
        with connection.cursor() as cursor:
            if len(attempts) < 3:
                cursor.execute(f"DO $$ BEGIN RAISE EXCEPTION 'simulated' USING ERRCODE = '{sqlstate}'; END $$")
            cursor.execute("SELECT 42")
            return cursor.fetchone()[0]

    assert atomic_with_retry(work) == 42
    assert len(attempts) == 3


@pytest.mark.django_db(transaction=True)
def test_other_database_errors_are_not_retried():
    attempts = []

    def work():
        attempts.append(1)
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")

    with pytest.raises(DatabaseError):
        atomic_with_retry(work)
    assert len(attempts) == 1
