"""Run a unit of work in one transaction, retrying when the database says it lost a race.

PostgreSQL answers a deadlock (40P01) or a serialization failure (40001) by aborting one
transaction; SQLite answers a busy write lock with "database is locked". Neither is the
client's fault, so the service retries the whole unit with jittered backoff and the client
never sees it. Only the outermost transaction can be retried: inside a caller's
transaction the error propagates to that caller.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

import structlog
from django.conf import settings
from django.db import DatabaseError, connection, transaction

T = TypeVar("T")
RETRYABLE_SQLSTATES = {"40001", "40P01"}
logger = structlog.get_logger("trading.transactions")


def is_retryable(error: BaseException) -> bool:
    cause = error.__cause__
    sqlstate = getattr(cause, "sqlstate", None) or getattr(error, "sqlstate", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    return "database is locked" in str(error)


def atomic_with_retry(work: Callable[[], T], *, attempts: int | None = None) -> T:
    """`work()` inside `transaction.atomic()`, retried on deadlock / serialization failure."""
    attempts = attempts or settings.TRADING_TRANSACTION_ATTEMPTS
    if connection.in_atomic_block:
        with transaction.atomic():
            return work()
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                return work()
        except DatabaseError as error:
            if attempt == attempts or not is_retryable(error):
                raise
            logger.info("transaction_retry", attempt=attempt, error=str(error).splitlines()[0])
            time.sleep(random.uniform(0, 0.002 * 2**attempt))  # noqa: S311 - jitter, not crypto
    raise AssertionError("unreachable")
