"""Health of every subsystem: database, cache, channel layer, broker, and process heartbeats.

One function (`health_report`) feeds /readyz, /healthz, /health, the System page and
/api/v1/system/info, so all of them tell the same story.
"""

from __future__ import annotations

import platform
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import django
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

PROCESS_STARTED_AT = datetime.now(UTC)
_PROCESS_STARTED_MONOTONIC = time.monotonic()
#: A heartbeat older than this many seconds counts as a process that is down.
HEARTBEAT_STALE_SECONDS = 90
HEARTBEAT_KEY = "heartbeat:{component}"
#: Components that report by heartbeat; later issues add theirs (simulator).
HEARTBEAT_COMPONENTS = ("worker", "beat")
#: Longest wait for one network round trip of a readiness probe.
PROBE_TIMEOUT_SECONDS = 2


@dataclass
class ComponentHealth:
    name: str
    status: str  # "ok" | "down" | "unknown" | "embedded"
    latency_ms: float | None = None
    version: str = ""
    detail: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "embedded")


def _timed(name: str, probe) -> ComponentHealth:
    started = time.perf_counter()
    try:
        version, detail, extra = probe()
        status = "ok"
    except Exception as exc:  # a probe reports any failure as "down", never raises
        version, detail, extra, status = "", f"{type(exc).__name__}: {exc}"[:300], {}, "down"
    return ComponentHealth(
        name=name,
        status=status,
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
        version=version,
        detail=detail,
        extra=extra,
    )


def _probe_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            version = f"PostgreSQL {cursor.fetchone()[0]}"
    else:
        import sqlite3

        version = f"SQLite {sqlite3.sqlite_version}"
    return version, connection.settings_dict.get("HOST") or connection.vendor, {}


def _redis_client():
    import redis

    return redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=PROBE_TIMEOUT_SECONDS, socket_timeout=PROBE_TIMEOUT_SECONDS
    )


def _probe_cache():
    token = uuid.uuid4().hex
    cache.set("health:probe", token, timeout=10)
    if cache.get("health:probe") != token:
        raise RuntimeError("cache did not return what was written")
    backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    version = ""
    if not settings.EMBEDDED:
        version = "Redis " + _redis_client().info("server")["redis_version"]
    return version, backend, {}


def _probe_channel_layer():
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")

    async def round_trip():
        channel = await layer.new_channel("health.")
        await layer.send(channel, {"type": "health.probe"})
        return await layer.receive(channel)

    async def bounded_round_trip():
        import asyncio

        # The whole trip, not only the receive: a Redis that accepts but never answers
        # must not hang the probe in send().
        return await asyncio.wait_for(round_trip(), timeout=PROBE_TIMEOUT_SECONDS)

    message = async_to_sync(bounded_round_trip)()
    if message.get("type") != "health.probe":
        raise RuntimeError("channel layer returned an unexpected message")
    return "", type(layer).__name__, {}


def _probe_broker():
    from portal.celery import app

    # Without socket timeouts the Redis transport waits forever for a server that accepts
    # the connection but never replies.
    timeouts = {"socket_timeout": PROBE_TIMEOUT_SECONDS, "socket_connect_timeout": PROBE_TIMEOUT_SECONDS}
    with app.connection_for_write(transport_options=timeouts) as conn:
        conn.ensure_connection(max_retries=1, timeout=PROBE_TIMEOUT_SECONDS)
        transport = conn.transport_cls
    import kombu

    return f"kombu {kombu.__version__}", str(transport), {}


def heartbeat_beat(component: str, *, detail: str = "") -> None:
    """Record that `component` (worker, beat, simulator, …) is alive right now."""
    cache.set(
        HEARTBEAT_KEY.format(component=component),
        {"at": timezone.now().isoformat(), "detail": detail},
        timeout=HEARTBEAT_STALE_SECONDS * 10,
    )


def _heartbeat(component: str) -> ComponentHealth:
    if settings.EMBEDDED:
        return ComponentHealth(name=component, status="embedded", detail="runs inside the web process")
    try:
        beat = cache.get(HEARTBEAT_KEY.format(component=component))
    except Exception as exc:  # the cache being down is the cache probe's finding; report, never raise
        return ComponentHealth(name=component, status="unknown", detail=f"heartbeat unreadable: {type(exc).__name__}")
    if not beat:
        return ComponentHealth(name=component, status="unknown", detail="no heartbeat received yet")
    age = (timezone.now() - datetime.fromisoformat(beat["at"])).total_seconds()
    status = "ok" if age <= HEARTBEAT_STALE_SECONDS else "down"
    return ComponentHealth(
        name=component,
        status=status,
        detail=f"last heartbeat {age:.0f}s ago {beat.get('detail', '')}".strip(),
        extra={"last_heartbeat": beat["at"]},
    )


def readiness_checks() -> list[ComponentHealth]:
    """The parts the web process cannot serve without (the broker only where configured)."""
    checks = [
        _timed("database", _probe_database),
        _timed("cache", _probe_cache),
        _timed("channel_layer", _probe_channel_layer),
    ]
    if not settings.CELERY_EMBEDDED:
        checks.append(_timed("broker", _probe_broker))
    return checks


def uptime_seconds() -> float:
    return round(time.monotonic() - _PROCESS_STARTED_MONOTONIC, 1)


def system_versions() -> dict[str, str]:
    return {
        "tradeport": settings.TRADEPORT_VERSION,
        "python": platform.python_version(),
        "django": django.get_version(),
    }


def health_report() -> dict:
    """Everything /health shows: readiness parts, heartbeats, versions, uptime, mode.

    `status` is "down" when a readiness part fails, "degraded" when only a background
    process stopped beating, "ok" otherwise.
    """
    readiness = readiness_checks()
    heartbeats = [_heartbeat(name) for name in HEARTBEAT_COMPONENTS]
    if not all(part.ok for part in readiness):
        status = "down"
    elif any(beat.status == "down" for beat in heartbeats):
        status = "degraded"
    else:
        status = "ok"
    return {
        "status": status,
        "mode": "embedded" if settings.EMBEDDED else "full",
        "started_at": PROCESS_STARTED_AT.isoformat(),
        "uptime_seconds": uptime_seconds(),
        "versions": system_versions(),
        "components": [asdict(part) for part in readiness + heartbeats],
    }
