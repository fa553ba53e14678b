"""Idempotency-Key (DESIGN §7): replay, 422 on a different body, 409 while in flight,
24 h retention, scoped per caller — and real concurrent duplicates on PostgreSQL."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from portal.idempotency import idempotency_purge_expired
from portal.models import ApiKey, IdempotencyRecord
from portal.tests.test_api_errors import assert_problem

pytestmark = pytest.mark.django_db
CREATE = "/api/v1/api-keys"


def _create(client, key: str, name: str = "bot"):
    return client.post(CREATE, data={"name": name, "scopes": ["read"]}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_same_key_and_body_replays_the_first_response_and_writes_once(trader, key_client):
    client = key_client(trader)
    keys_before = ApiKey.objects.count()
    first = _create(client, "k-1")
    second = _create(client, "k-1")
    assert first.status_code == second.status_code == 201
    assert second.json() == {**first.json(), "key": None}, "a replay never carries the secret again"
    assert first.json()["key"].startswith("tpk_")
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert ApiKey.objects.count() == keys_before + 1


def test_same_key_with_another_body_is_422(trader, key_client):
    client = key_client(trader)
    assert _create(client, "k-2", name="one").status_code == 201
    assert_problem(_create(client, "k-2", name="two"), 422, "idempotency_key_reused")


def test_keys_are_scoped_per_caller(make_user, key_client):
    alice, bob = make_user(username="alice"), make_user(username="bob")
    first, second = _create(key_client(alice), "shared"), _create(key_client(bob), "shared")
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert "Idempotent-Replayed" not in second


def test_request_still_in_flight_is_409_and_a_dead_one_is_taken_over(trader, make_api_key):
    raw_key, api_key = make_api_key(trader)
    client = APIClient(HTTP_X_API_KEY=raw_key)
    from portal.idempotency import request_fingerprint

    body = b'{"name":"bot","scopes":["read"]}'
    record = IdempotencyRecord.objects.create(
        scope=f"key:{api_key.pk}",
        key="k-3",
        method="POST",
        path=CREATE,
        fingerprint=request_fingerprint(method="POST", path=CREATE, body=body),
        locked_until=timezone.now() + timedelta(minutes=1),
    )
    in_flight = client.post(CREATE, data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-3")
    assert_problem(in_flight, 409, "idempotency_request_in_progress")
    IdempotencyRecord.objects.filter(pk=record.pk).update(locked_until=timezone.now() - timedelta(seconds=1))
    retried = client.post(CREATE, data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-3")
    assert retried.status_code == 201
    assert IdempotencyRecord.objects.get(pk=record.pk).response_status == 201


def test_validation_errors_are_replayed_but_rate_limits_release_the_key(trader, key_client):
    client = key_client(trader)
    bad = client.post(CREATE, data={"scopes": ["nope"]}, format="json", HTTP_IDEMPOTENCY_KEY="k-4")
    again = client.post(CREATE, data={"scopes": ["nope"]}, format="json", HTTP_IDEMPOTENCY_KEY="k-4")
    assert bad.status_code == again.status_code == 400
    assert again["Idempotent-Replayed"] == "true"
    assert again["Content-Type"].startswith("application/problem+json")


def test_delete_is_idempotent(trader, key_client, make_api_key):
    client = key_client(trader)
    _, victim = make_api_key(trader, name="victim")
    first = client.delete(f"{CREATE}/{victim.pk}", HTTP_IDEMPOTENCY_KEY="k-5")
    second = client.delete(f"{CREATE}/{victim.pk}", HTTP_IDEMPOTENCY_KEY="k-5")
    assert first.status_code == second.status_code == 204
    assert second["Idempotent-Replayed"] == "true"


def test_keys_live_24_hours_then_run_anew_and_are_purged(trader, key_client):
    client = key_client(trader)
    assert _create(client, "k-6").status_code == 201
    aged = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS + 1)
    IdempotencyRecord.objects.filter(key="k-6").update(created_at=aged)
    fresh = _create(client, "k-6")
    assert fresh.status_code == 201 and "Idempotent-Replayed" not in fresh
    IdempotencyRecord.objects.filter(key="k-6").update(created_at=aged)
    assert idempotency_purge_expired() == 1
    assert not IdempotencyRecord.objects.filter(key="k-6").exists()


def test_invalid_idempotency_key_is_400(trader, key_client):
    assert_problem(_create(key_client(trader), "x" * 300), 400, "idempotency_key_invalid")


def test_refused_requests_do_not_burn_the_key(trader, key_client):
    read_only = key_client(trader, scopes=["read"])
    assert_problem(_create(read_only, "k-7"), 403, "api_key_scope")
    assert not IdempotencyRecord.objects.filter(key="k-7").exists()


@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="real concurrent transactions need PostgreSQL (CI runs on it)",
)
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_create_once_and_the_rest_get_409_or_the_replay(trader, make_api_key):
    raw_key, _ = make_api_key(trader)
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    results: list[tuple[int, dict, bool]] = []
    lock = threading.Lock()

    def send() -> None:
        try:
            client = APIClient(HTTP_X_API_KEY=raw_key)
            barrier.wait(timeout=10)
            response = _create(client, "race", name="racer")
            with lock:
                results.append((response.status_code, response.json(), response.has_header("Idempotent-Replayed")))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(results) == threads_count
    assert ApiKey.objects.filter(name="racer").count() == 1
    winners = [r for r in results if r[0] == 201 and not r[2]]
    assert len(winners) == 1
    created_id = winners[0][1]["id"]
    for status, body, replayed in results:
        assert status in (201, 409)
        if status == 201:
            assert body["id"] == created_id
        if replayed:
            assert status == 201


def test_the_stored_replay_never_holds_an_api_key_secret(trader, key_client):
    created = _create(key_client(trader), "k-secret")
    record = IdempotencyRecord.objects.get(key="k-secret")
    assert created.json()["key"] not in str(record.response_body)
    assert record.response_body["key"] is None
