"""audit_record: who (user, API key, system), from where (ip, user agent) and which request."""

from __future__ import annotations

from decimal import Decimal

import pytest

from audit.context import AuditContext, audit_context_reset, audit_context_set
from audit.models import AuditEvent
from audit.services import Target, audit_chain_verify, audit_event_hash, audit_record
from conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) TradeportTest/1.0"


def _login(client, username: str, password: str, request_id: str):
    return client.post(
        "/login/",
        {"username": username, "password": password, "otp_token": ""},
        REMOTE_ADDR="198.51.100.7",
        HTTP_USER_AGENT=BROWSER,
        HTTP_X_REQUEST_ID=request_id,
    )


def test_failed_login_is_recorded_with_ip_user_agent_and_request_id_of_the_request(client, trader):
    response = _login(client, "trader1", "not-the-password", request_id="req-failed-login")
    assert response.status_code == 200  # the form again, with an error

    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.actor_type == AuditEvent.ActorType.SYSTEM
    assert event.actor_label == "anonymous"
    assert event.actor_user_id is None
    assert (event.target_type, event.target_label) == ("portal.user", "trader1")
    assert event.ip == "198.51.100.7"
    assert event.user_agent == BROWSER
    assert event.request_id == "req-failed-login" == response["X-Request-ID"]


def test_successful_login_is_recorded_as_the_user_with_the_request_context(client, trader):
    response = _login(client, "trader1", TEST_PASSWORD, request_id="req-login")
    assert response.status_code == 302

    event = AuditEvent.objects.get(action="auth.login")
    assert event.actor_type == AuditEvent.ActorType.USER
    assert event.actor_user_id == trader.pk and event.actor_label == "trader1"
    assert (event.target_type, event.target_id) == ("portal.user", str(trader.pk))
    assert (event.ip, event.user_agent, event.request_id) == ("198.51.100.7", BROWSER, "req-login")


def test_an_api_key_action_is_recorded_as_the_key_acting_for_its_user(trader, make_api_key, api_client):
    raw_key, acting_key = make_api_key(trader, scopes=["read", "trade"], name="bot")
    _, old_key = make_api_key(trader, scopes=["read"], name="old")
    api_client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")

    response = api_client.delete(
        f"/api/v1/api-keys/{old_key.pk}",
        HTTP_USER_AGENT="trading-bot/2.0",
        HTTP_X_REQUEST_ID="req-key-revoke",
        REMOTE_ADDR="192.0.2.10",
    )
    assert response.status_code in (200, 204), response.content

    event = AuditEvent.objects.get(action="api_key.revoke")
    assert event.actor_type == AuditEvent.ActorType.API_KEY
    assert event.actor_api_key_id == acting_key.pk
    assert event.actor_user_id == trader.pk
    assert event.actor_label == f"trader1 via key {acting_key.prefix}"
    assert (event.target_type, event.target_id) == ("portal.apikey", str(old_key.pk))
    assert (event.ip, event.user_agent, event.request_id) == ("192.0.2.10", "trading-bot/2.0", "req-key-revoke")
    assert event.before["revoked_at"] is None and event.after["revoked_at"] is not None


def test_first_use_of_an_api_key_is_recorded_with_the_key_as_actor(trader, make_api_key, api_client):
    raw_key, api_key = make_api_key(trader, scopes=["read"])
    api_client.credentials(HTTP_X_API_KEY=raw_key)
    assert api_client.get("/api/v1/me", HTTP_X_REQUEST_ID="req-key-use").status_code == 200

    event = AuditEvent.objects.get(action="api_key.use")
    assert event.actor_type == AuditEvent.ActorType.API_KEY
    assert event.actor_api_key_id == api_key.pk and event.request_id == "req-key-use"


def test_a_system_component_is_recorded_by_name_without_request_context():
    event = audit_record(action="marketdata.feed_restart", actor="beat", target=Target(type="feed", id="fx"))
    assert event.actor_type == AuditEvent.ActorType.SYSTEM
    assert event.actor_label == "beat" and event.actor_user_id is None
    assert (event.ip, event.user_agent, event.request_id) == (None, "", "")


def test_no_actor_means_whoever_the_current_context_acts_for(trader):
    token = audit_context_set(AuditContext(request_id="job-7", user_id=trader.pk))
    try:
        event = audit_record(action="report.generated")
    finally:
        audit_context_reset(token)
    assert event.actor_type == AuditEvent.ActorType.USER and event.actor_user_id == trader.pk
    assert event.request_id == "job-7"

    nobody = audit_record(action="report.generated")
    assert nobody.actor_type == AuditEvent.ActorType.ANONYMOUS


def test_before_and_after_are_stored_as_json_and_the_stored_row_matches_its_hash(trader):
    event = audit_record(
        action="limits.change",
        actor=trader,
        target=trader,
        before={"limit": Decimal("10.50")},
        after={"limit": Decimal("12.00"), "note": "raised"},
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.before == {"limit": "10.50"}
    assert stored.after == {"limit": "12.00", "note": "raised"}
    assert stored.hash == event.hash
    assert audit_event_hash(stored) == stored.hash


# --- input that must neither crash the request nor break the chain ---------------------


def test_a_user_agent_with_a_nul_byte_is_recorded_without_it_and_the_request_still_answers(client, trader):
    response = client.post(
        "/login/",
        {"username": "trader1", "password": "wrong", "otp_token": ""},
        HTTP_USER_AGENT="evil\x00agent",
    )
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert event.user_agent == "evilagent"
    assert audit_chain_verify().ok


def test_a_link_local_ipv6_client_with_a_zone_is_recorded_and_the_chain_still_verifies(client, trader):
    response = client.post(
        "/login/", {"username": "trader1", "password": "wrong", "otp_token": ""}, REMOTE_ADDR="fe80::1%eth0"
    )
    assert response.status_code == 200
    assert AuditEvent.objects.get(action="auth.login_failed").ip == "fe80::1"
    assert audit_chain_verify().ok


def test_a_user_with_a_150_character_username_can_use_an_api_key_and_is_audited(make_user, key_client):
    user = make_user(username="u" * 150)
    response = key_client(user, scopes=["read"]).get("/api/v1/me")
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="api_key.use")
    assert len(event.actor_label) <= 150
    assert event.actor_label.endswith(f" via key {user.api_keys.get().prefix}")
    assert audit_chain_verify().ok


@pytest.mark.parametrize("number", [1e20, 1e300, -0.0, 5.0, 0.1, 1.5e-7, 2**70])
def test_numbers_the_database_rewrites_are_stored_so_that_the_chain_still_verifies(number):
    audit_record(action="position.change", actor="engine", after={"quantity": number, "nested": [number]})
    stored = AuditEvent.objects.get(action="position.change").after
    assert stored["quantity"] == number and stored["nested"] == [number]
    assert audit_chain_verify().ok
