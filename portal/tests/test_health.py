"""Health probes: /livez, /readyz (503 naming the failing part), /healthz, /health and the System page."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection as db_connection
from django.test import override_settings
from django.utils import timezone

from portal.celery import app as celery_app
from portal.choices import Role
from portal.health import (
    HEARTBEAT_KEY,
    HEARTBEAT_STALE_SECONDS,
    PROBE_TIMEOUT_SECONDS,
    health_report,
    heartbeat_beat,
)

pytestmark = pytest.mark.django_db

#: Nothing listens on port 1: connections are refused at once, as with Redis stopped.
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"
READINESS_PARTS = {"database", "cache", "channel_layer"} | ({"broker"} if settings.REDIS_URL else set())
EXTERNAL_ADDRESS = "203.0.113.9"


def _redis_stack_at(url: str, monkeypatch):
    """Settings of the full stack with cache, channel layer and Celery broker all at `url`
    (the cache options are those of portal/settings/base.py). Django drops its cache
    handlers and Channels its layers when CACHES / CHANNEL_LAYERS change (setting_changed);
    the Celery app read its broker URL once, so its conf is patched as well
    (in `changes`, so that undoing it leaves nothing behind)."""
    monkeypatch.setitem(celery_app.conf.changes, "broker_url", url)  # broker_write_url follows it
    return override_settings(
        REDIS_URL=url,
        EMBEDDED=False,
        CELERY_EMBEDDED=False,
        CELERY_BROKER_URL=url,
        CACHES={
            "default": {
                "BACKEND": "django_redis.cache.RedisCache",
                "LOCATION": url,
                "OPTIONS": {
                    "CLIENT_CLASS": "django_redis.client.DefaultClient",
                    "SOCKET_CONNECT_TIMEOUT": 2,
                    "SOCKET_TIMEOUT": 2,
                },
            }
        },
        CHANNEL_LAYERS={"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [url]}}},
    )


@pytest.fixture
def redis_unreachable(monkeypatch):
    """Redis stopped: nothing listens on port 1, connections are refused at once."""
    overrides = _redis_stack_at(DEAD_REDIS_URL, monkeypatch)
    overrides.enable()
    try:
        yield
    finally:
        # Undone here, before the autouse cache fixture clears the (real) cache on teardown.
        overrides.disable()


@pytest.fixture
def redis_hung(monkeypatch):
    """Redis wedged: a server that accepts connections and never answers a command."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_forever() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    acceptor = threading.Thread(target=accept_forever, daemon=True)
    acceptor.start()
    overrides = _redis_stack_at(f"redis://127.0.0.1:{server.getsockname()[1]}/0", monkeypatch)
    overrides.enable()
    try:
        yield
    finally:
        overrides.disable()
        stop.set()
        acceptor.join(timeout=5)
        for connection in accepted:
            connection.close()
        server.close()


def test_livez_answers_ok_without_checking_dependencies(client):
    response = client.get("/livez")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["uptime_seconds"] >= 0
    assert "no-cache" in response["Cache-Control"]


def test_readyz_is_200_when_every_part_answers_and_checks_each_one(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok" and body["failing"] == []
    assert set(body["checks"]) == READINESS_PARTS
    for name, check in body["checks"].items():
        assert check["status"] in ("ok", "embedded"), name
        assert check["latency_ms"] >= 0


def test_healthz_mirrors_readyz(client):
    readyz, healthz = client.get("/readyz").json(), client.get("/healthz").json()
    assert set(healthz["checks"]) == set(readyz["checks"]) == READINESS_PARTS
    assert (healthz["status"], healthz["failing"]) == (readyz["status"], readyz["failing"])


@pytest.mark.parametrize("path", ["/readyz", "/healthz"])
def test_readiness_is_503_naming_cache_channel_layer_and_broker_when_redis_is_unreachable(
    client, redis_unreachable, path
):
    started = time.monotonic()
    response = client.get(path)
    elapsed = time.monotonic() - started

    assert response.status_code == 503, response.content
    body = response.json()
    assert body["status"] == "down"
    assert "cache" in body["failing"]
    assert "channel_layer" in body["failing"]
    assert "broker" in body["failing"]
    assert "database" not in body["failing"]
    assert body["checks"]["database"]["status"] == "ok"
    for name in ("cache", "channel_layer", "broker"):
        assert body["checks"][name]["status"] == "down"
        assert body["checks"][name]["detail"], f"{name} should say why it is down"
    # An orchestrator's probe has a timeout of a few seconds: a dead Redis must not hang readiness.
    assert elapsed < 5


def test_readiness_answers_503_within_seconds_when_redis_accepts_connections_but_never_replies(client, redis_hung):
    responses = []

    def probe() -> None:
        try:
            responses.append(client.get("/readyz"))
        finally:
            db_connection.close()

    # In a thread, so that a probe that hangs fails this test instead of hanging the run.
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    # Each probe waits at most PROBE_TIMEOUT_SECONDS per round trip; none may hang.
    prober.join(timeout=6 * PROBE_TIMEOUT_SECONDS)

    assert not prober.is_alive(), "/readyz hung on a Redis that never replies"
    response = responses[0]
    assert response.status_code == 503, response.content
    body = response.json()
    assert {"cache", "channel_layer", "broker"} <= set(body["failing"])
    assert body["checks"]["database"]["status"] == "ok"


def test_health_reports_versions_uptime_and_every_component_with_latency(client):
    response = client.get("/health")  # the test client comes from 127.0.0.1, an internal network
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] in ("ok", "degraded")
    assert body["mode"] == ("embedded" if settings.EMBEDDED else "full")
    assert body["versions"]["tradeport"] == settings.TRADEPORT_VERSION
    assert body["versions"]["python"] and body["versions"]["django"]
    assert body["uptime_seconds"] >= 0 and body["started_at"]
    components = {component["name"]: component for component in body["components"]}
    assert set(components) == READINESS_PARTS | {"worker", "beat"}
    for name in READINESS_PARTS:
        assert components[name]["status"] in ("ok", "embedded")
        assert isinstance(components[name]["latency_ms"], float | int)
    assert components["database"]["version"].startswith(("SQLite", "PostgreSQL"))


def test_readyz_names_hosts_and_errors_only_to_the_inside(client, users):
    outside = client.get("/readyz", REMOTE_ADDR=EXTERNAL_ADDRESS).json()
    assert all("detail" not in check for check in outside["checks"].values())
    inside = client.get("/readyz").json()
    assert all("detail" in check for check in inside["checks"].values())
    client.force_login(users[Role.OPERATOR])
    operator_outside = client.get("/readyz", REMOTE_ADDR=EXTERNAL_ADDRESS).json()
    assert all("detail" in check for check in operator_outside["checks"].values())


def test_health_details_are_refused_outside_internal_networks_unless_signed_in_as_operator(client, users):
    refused = client.get("/health", REMOTE_ADDR=EXTERNAL_ADDRESS)
    assert refused.status_code == 403
    assert "versions" not in refused.json()

    client.force_login(users[Role.TRADER])
    assert client.get("/health", REMOTE_ADDR=EXTERNAL_ADDRESS).status_code == 403

    client.force_login(users[Role.OPERATOR])
    assert client.get("/health", REMOTE_ADDR=EXTERNAL_ADDRESS).status_code == 200


def test_health_and_system_page_report_redis_down_instead_of_crashing(client, users, redis_unreachable):
    response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    components = {component["name"]: component for component in body["components"]}
    assert body["status"] == "down"
    assert components["cache"]["status"] == "down"
    assert components["database"]["status"] == "ok"
    # Heartbeats live in the cache: unreadable, not a crash of the whole report.
    assert components["worker"]["status"] == components["beat"]["status"] == "unknown"

    client.force_login(users[Role.OPERATOR])
    page = client.get("/system/")
    assert page.status_code == 200
    assert 'data-testid="system-status">down<' in page.content.decode()


@override_settings(EMBEDDED=False)
def test_heartbeats_show_workers_up_when_fresh_down_when_stale_unknown_when_missing():
    heartbeat_beat("worker", detail="celery@host-1")
    stale_at = timezone.now() - timedelta(seconds=HEARTBEAT_STALE_SECONDS + 30)
    cache.set(HEARTBEAT_KEY.format(component="beat"), {"at": stale_at.isoformat(), "detail": ""}, timeout=600)

    components = {component["name"]: component for component in health_report()["components"]}

    assert components["worker"]["status"] == "ok"
    assert "celery@host-1" in components["worker"]["detail"]
    assert components["beat"]["status"] == "down"

    cache.delete(HEARTBEAT_KEY.format(component="beat"))
    components = {component["name"]: component for component in health_report()["components"]}
    assert components["beat"]["status"] == "unknown"


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.ADMIN])
def test_system_page_shows_each_component_to_operators_and_admins(client, users, role):
    client.force_login(users[role])
    response = client.get("/system/")
    assert response.status_code == 200
    page = response.content.decode()
    for name in sorted(READINESS_PARTS | {"worker", "beat"}):
        assert f"<td>{name}</td>" in page, name
    assert settings.TRADEPORT_VERSION in page
    assert 'data-testid="system-status"' in page


@pytest.mark.parametrize("role", [Role.TRADER, Role.VIEWER])
def test_system_page_is_forbidden_to_traders_and_viewers(client, users, role):
    client.force_login(users[role])
    response = client.get("/system/")
    assert response.status_code == 403
    assert b"database" not in response.content


def test_system_page_sends_anonymous_visitors_to_sign_in(client):
    response = client.get("/system/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
