"""Fixtures shared by every test: users per role, API keys, API clients, a clean cache.

Without env the tests run on SQLite + local memory; CI sets DATABASE_URL and REDIS_URL
(and TRADEPORT_REQUIRE_ALL_TESTS=1, which turns any skip into a failure).
"""

from __future__ import annotations

import os

import pytest
import redis
from django.core.cache import cache
from rest_framework.test import APIClient

from portal.api_keys import api_key_create
from portal.choices import ROLE_ORDER, Role
from portal.models import User
from portal.settings.base import PASSWORD_HASHERS as PRODUCTION_PASSWORD_HASHERS
from portal.users import user_set_role

TEST_PASSWORD = "correct-horse-battery-9"

pytest_plugins = ["trading.tests.fixtures"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("TRADEPORT_REQUIRE_ALL_TESTS") == "1" and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"Skipped tests fail this run (TRADEPORT_REQUIRE_ALL_TESTS=1): {report.longrepr}"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Argon2 is deliberately slow; tests that are not about hashing use a fast hasher.
    (portal/tests/test_login.py proves production hashes with Argon2.)"""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PRODUCTION_PASSWORD_HASHERS]


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    """Job files of a test go to its own directory, never the checkout's media/."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def jobs_inline(settings, django_capture_on_commit_callbacks):
    """Jobs run in this thread when their transaction's commit callbacks run (Celery's eager
    mode, the same task code a worker runs): `with jobs_inline(): client.post(...)`. Tests that
    prove the real worker, the queues and the embedded pools run them there instead."""
    from portal.celery import app

    settings.CELERY_EMBEDDED = False
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield lambda: django_capture_on_commit_callbacks(execute=True)
    finally:
        app.conf.task_always_eager = eager


class ReceivedMail(list):
    """The messages an SMTP server received (`email.message.EmailMessage`), with their envelopes."""

    def wait_for(self, count: int, timeout: float = 10) -> ReceivedMail:
        import time

        deadline = time.monotonic() + timeout
        while len(self) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server (aiosmtpd) on 127.0.0.1; Django's SMTP backend sends to it. Yields the
    received messages."""
    import email
    import email.policy
    import socket

    from aiosmtpd.controller import Controller

    received = ReceivedMail()

    class Collect:
        async def handle_DATA(self, server, session, envelope):
            message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
            message.envelope_recipients = list(envelope.rcpt_tos)
            received.append(message)
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    try:
        yield received
    finally:
        controller.stop()


@pytest.fixture(autouse=True)
def _clean_cache():
    """Rate-limit counters, lock-outs and heartbeats must not leak between tests."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_user(db):
    def make(username: str = "alice", role: str | None = Role.TRADER, password: str = TEST_PASSWORD) -> User:
        user = User.objects.create_user(username=username, password=password, email=f"{username}@example.test")
        if role is not None:
            user_set_role(user=user, role=role, actor="test-setup")
        return User.objects.get(pk=user.pk)

    return make


@pytest.fixture
def users(make_user) -> dict[str, User]:
    """One user per role, named after it."""
    return {role: make_user(username=role, role=role) for role in ROLE_ORDER}


@pytest.fixture
def trader(make_user) -> User:
    return make_user(username="trader1", role=Role.TRADER)


@pytest.fixture
def make_api_key(db):
    def make(user: User, scopes=("read", "trade"), **kwargs) -> tuple[str, object]:
        issued = api_key_create(user=user, name=kwargs.pop("name", "test key"), scopes=list(scopes), **kwargs)
        return issued.raw_key, issued.api_key

    return make


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def key_client(make_api_key):
    """An APIClient authenticating with a fresh API key of `user`."""

    def make(user: User, scopes=("read", "trade"), **kwargs) -> APIClient:
        raw_key, _ = make_api_key(user, scopes=scopes, **kwargs)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
        return client

    return make


@pytest.fixture
def redis_commands(monkeypatch) -> list[str]:
    """The names of the Redis commands sent while the test runs (through redis-py)."""
    sent: list[str] = []
    original = redis.Redis.execute_command

    def counting(self, *args, **options):
        sent.append(str(args[0]))
        return original(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counting)
    return sent
