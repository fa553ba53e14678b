"""API key endpoints: the secret is shown once, lists are own-only and cursor-paginated."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from portal.tests.test_api_errors import assert_problem

pytestmark = pytest.mark.django_db


def test_created_key_secret_is_shown_once_and_works(trader, key_client):
    client = key_client(trader)
    created = client.post(
        "/api/v1/api-keys",
        data={"name": "bot", "scopes": ["read"], "allowed_ips": ["127.0.0.0/8"], "expires_at": None},
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("tpk_") and body["scopes"] == ["read"] and body["allowed_ips"] == ["127.0.0.0/8"]
    fetched = client.get(f"/api/v1/api-keys/{body['id']}").json()
    assert "key" not in fetched and fetched["prefix"] == body["prefix"]
    assert APIClient().get("/api/v1/me", HTTP_X_API_KEY=body["key"]).json()["username"] == "trader1"
    event = AuditEvent.objects.get(action="api_key.create", target_id=str(body["id"]))
    assert event.actor_type == "api_key" and event.actor_user_id == trader.pk


def test_bad_allowlist_and_past_expiry_are_field_errors(trader, key_client):
    client = key_client(trader)
    bad_ip = client.post("/api/v1/api-keys", data={"name": "x", "allowed_ips": ["300.1.1.1"]}, format="json")
    assert "allowed_ips" in assert_problem(bad_ip, 400, "invalid_ip_allowlist")["errors"]
    past = (timezone.now() - timedelta(days=1)).isoformat()
    expired = client.post("/api/v1/api-keys", data={"name": "x", "expires_at": past}, format="json")
    assert "expires_at" in assert_problem(expired, 400, "invalid_expiry")["errors"]


def test_viewer_cannot_hold_a_trade_scoped_key(users, make_api_key):
    from portal.api_keys import api_key_create
    from portal.errors import DomainError

    with pytest.raises(DomainError) as refused:
        api_key_create(user=users["viewer"], name="x", scopes=["trade"])
    assert refused.value.code == "scope_not_allowed"


def test_list_is_own_only_and_cursor_paginated(make_user, key_client, make_api_key):
    alice, bob = make_user(username="alice"), make_user(username="bob")
    for index in range(5):
        make_api_key(alice, name=f"a{index}")
    make_api_key(bob, name="bobs")
    client = key_client(alice, scopes=["read"], name="caller")
    first = client.get("/api/v1/api-keys?limit=4").json()
    assert len(first["results"]) == 4 and first["next"]
    second = client.get(first["next"]).json()
    names = [key["name"] for key in first["results"] + second["results"]]
    assert sorted(names) == ["a0", "a1", "a2", "a3", "a4", "caller"]
    assert second["next"] is None


def test_revoked_key_stays_listed_as_inactive(trader, key_client, make_api_key):
    client = key_client(trader)
    _, victim = make_api_key(trader, name="victim")
    assert client.delete(f"/api/v1/api-keys/{victim.pk}").status_code == 204
    listed = {key["name"]: key for key in client.get("/api/v1/api-keys").json()["results"]}
    assert listed["victim"]["is_active"] is False and listed["victim"]["revoked_at"]


def test_system_info_reports_versions_and_mode(trader, key_client):
    body = key_client(trader, scopes=["read"]).get("/api/v1/system/info").json()
    assert body["api_version"] == "v1"
    assert {"tradeport", "python", "django"} <= set(body["versions"])
    assert body["mode"] in ("embedded", "full")


def test_me_representation_matches_its_documented_serializer(trader, key_client):
    from portal.api.v1.serializers import MeSerializer

    body = key_client(trader, scopes=["read"]).get("/api/v1/me").json()
    assert set(body) == set(MeSerializer().fields)
    assert set(body["api_key"]) == set(MeSerializer().fields["api_key"].fields)
    assert body["date_joined"].endswith("Z")


def test_a_user_holds_a_bounded_number_of_active_keys(trader, key_client, settings):
    settings.API_KEY_MAX_ACTIVE_PER_USER = 2
    client = key_client(trader)  # the first active key
    second = client.post("/api/v1/api-keys", data={"name": "second", "scopes": ["read"]}, format="json")
    assert second.status_code == 201
    third = client.post("/api/v1/api-keys", data={"name": "third", "scopes": ["read"]}, format="json")
    assert_problem(third, 409, "api_key_limit")
    assert client.delete(f"/api/v1/api-keys/{second.json()['id']}").status_code == 204
    again = client.post("/api/v1/api-keys", data={"name": "third", "scopes": ["read"]}, format="json")
    assert again.status_code == 201
