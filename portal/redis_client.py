"""The process's Redis client for work the cache API does not cover (blocking list reads)."""

from __future__ import annotations

import functools

import redis
from django.conf import settings
from django.db import connection

#: Longer than any blocking read issued through this client.
SOCKET_TIMEOUT_SECONDS = 30


@functools.cache
def redis_client() -> redis.Redis:
    """One client (and connection pool, safe across threads) per process."""
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=SOCKET_TIMEOUT_SECONDS, health_check_interval=30
    )


def redis_key(*parts: str) -> str:
    """A key private to this deployment's database: two databases sharing one Redis (tests,
    benchmarks) never see each other's queues and claims."""
    return ":".join(("tradeport", str(connection.settings_dict["NAME"]), *parts))
