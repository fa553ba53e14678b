"""Rate limits per API key / user / IP and per endpoint class, answered 429 with Retry-After."""

import pytest
from rest_framework.test import APIClient

from portal.tests.test_api_errors import assert_problem

pytestmark = pytest.mark.django_db


@pytest.fixture
def tight_limits(settings):
    # Hourly windows: django-ratelimit's windows are fixed, and a test whose requests straddle
    # a window's end would see its budget renewed (with per-minute windows, about one run in 200).
    settings.API_RATE_LIMITS = {**settings.API_RATE_LIMITS, "read": "3/h", "write": "2/h"}


def test_read_limit_answers_429_with_retry_after_and_limit_headers(tight_limits, trader, key_client):
    client = key_client(trader)
    for remaining in (2, 1, 0):
        ok = client.get("/api/v1/me")
        assert ok.status_code == 200
        assert ok["RateLimit-Limit"] == "3"
        assert ok["RateLimit-Remaining"] == str(remaining)
    refused = client.get("/api/v1/me")
    assert_problem(refused, 429, "throttled")
    assert 1 <= int(refused["Retry-After"]) <= 3600


def test_each_api_key_has_its_own_budget(tight_limits, trader, key_client):
    first, second = key_client(trader), key_client(trader)
    for _ in range(3):
        first.get("/api/v1/me")
    assert first.get("/api/v1/me").status_code == 429
    assert second.get("/api/v1/me").status_code == 200


def test_session_users_are_limited_per_user(tight_limits, make_user):
    alice, bob = APIClient(), APIClient()
    alice.force_login(make_user(username="alice"))
    bob.force_login(make_user(username="bob"))
    for _ in range(3):
        alice.get("/api/v1/me")
    assert alice.get("/api/v1/me").status_code == 429
    assert bob.get("/api/v1/me").status_code == 200


def test_writes_have_their_own_tighter_class(tight_limits, trader, key_client):
    client = key_client(trader)
    for index in range(2):
        created = client.post("/api/v1/api-keys", data={"name": f"k{index}", "scopes": ["read"]}, format="json")
        assert created.status_code == 201
    assert_problem(
        client.post("/api/v1/api-keys", data={"name": "k3", "scopes": ["read"]}, format="json"), 429, "throttled"
    )
    assert client.get("/api/v1/me").status_code == 200  # reads still have budget


def test_anonymous_callers_are_limited_per_ip(settings):
    settings.API_RATE_LIMITS = {**settings.API_RATE_LIMITS, "anonymous": "2/h"}
    client = APIClient()
    for _ in range(2):
        assert client.get("/api/v1/schema/", REMOTE_ADDR="198.51.100.1").status_code == 200
    assert client.get("/api/v1/schema/", REMOTE_ADDR="198.51.100.1").status_code == 429
    assert client.get("/api/v1/schema/", REMOTE_ADDR="198.51.100.2").status_code == 200
