"""API authentication and permissions: API keys (scopes, IP allowlist, expiry, revocation),
sessions with CSRF, and the role × endpoint matrix."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from portal.api_keys import api_key_revoke
from portal.models import ApiKey
from portal.tests.test_api_errors import assert_problem

pytestmark = pytest.mark.django_db


def test_key_is_accepted_in_authorization_and_x_api_key_headers(trader, make_api_key):
    raw_key, _ = make_api_key(trader, scopes=["read"])
    assert APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=f"Api-Key {raw_key}").status_code == 200
    assert APIClient().get("/api/v1/me", HTTP_X_API_KEY=raw_key).status_code == 200


def test_key_is_stored_only_as_a_hash(trader, make_api_key):
    raw_key, api_key = make_api_key(trader)
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert raw_key not in (stored.hashed_key, stored.prefix)
    assert len(stored.hashed_key) == 64
    assert raw_key.split(".")[1] not in str(AuditEvent.objects.values_list("after", flat=True)[::1])


def test_missing_credentials_are_401_problem(api_client):
    response = api_client.get("/api/v1/me")
    assert_problem(response, 401, "not_authenticated")
    assert "Api-Key" in response["WWW-Authenticate"]


def test_wrong_key_is_401_invalid(trader, make_api_key):
    raw_key, _ = make_api_key(trader)
    tampered = raw_key[:-4] + ("aaaa" if not raw_key.endswith("aaaa") else "bbbb")
    assert_problem(APIClient().get("/api/v1/me", HTTP_X_API_KEY=tampered), 401, "api_key_invalid")
    assert_problem(APIClient().get("/api/v1/me", HTTP_X_API_KEY="not-a-key"), 401, "api_key_invalid")


def test_revoked_key_is_401_revoked_and_audited(trader, make_api_key):
    raw_key, api_key = make_api_key(trader)
    api_key_revoke(api_key=api_key, actor=trader)
    assert_problem(APIClient().get("/api/v1/me", HTTP_X_API_KEY=raw_key), 401, "api_key_revoked")
    assert AuditEvent.objects.filter(action="api_key.revoke", target_id=str(api_key.pk)).exists()
    assert AuditEvent.objects.filter(action="api_key.rejected", after__reason="api_key_revoked").exists()


def test_an_address_sending_many_bad_keys_is_slowed_down_while_valid_keys_still_work(trader, make_api_key, settings):
    settings.API_KEY_FAILURE_LIMIT_PER_IP = "3/h"  # an hour: no window ends during the test
    guesser = APIClient(REMOTE_ADDR="203.0.113.7")
    for attempt in range(3):
        assert_problem(guesser.get("/api/v1/me", HTTP_X_API_KEY=f"tpk_{attempt:012d}.guess"), 401, "api_key_invalid")
    response = guesser.get("/api/v1/me", HTTP_X_API_KEY="tpk_000000000009.guess")
    slowed = assert_problem(response, 429, "api_key_failures")
    assert int(response["Retry-After"]) >= 1
    assert "wait" in slowed["detail"]
    raw_key, _ = make_api_key(trader)
    assert guesser.get("/api/v1/me", HTTP_X_API_KEY=raw_key).status_code == 200
    other_address = APIClient(REMOTE_ADDR="203.0.113.8")
    assert_problem(other_address.get("/api/v1/me", HTTP_X_API_KEY="tpk_000000000009.guess"), 401, "api_key_invalid")


def test_a_rejected_key_hammering_the_api_is_audited_once_per_interval(trader, make_api_key):
    raw_key, api_key = make_api_key(trader)
    api_key_revoke(api_key=api_key, actor=trader)
    for _ in range(5):
        assert_problem(APIClient().get("/api/v1/me", HTTP_X_API_KEY=raw_key), 401, "api_key_revoked")
    assert AuditEvent.objects.filter(action="api_key.rejected", target_id=str(api_key.pk)).count() == 1


def test_expired_key_is_401_expired(trader, make_api_key):
    raw_key, api_key = make_api_key(trader, expires_at=timezone.now() + timedelta(minutes=1))
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_problem(APIClient().get("/api/v1/me", HTTP_X_API_KEY=raw_key), 401, "api_key_expired")


def test_key_used_from_outside_its_ip_allowlist_is_403(trader, make_api_key):
    raw_key, _ = make_api_key(trader, allowed_ips=["10.1.0.0/16"])
    assert_problem(
        APIClient().get("/api/v1/me", HTTP_X_API_KEY=raw_key, REMOTE_ADDR="192.0.2.9"), 403, "api_key_ip_not_allowed"
    )
    assert APIClient().get("/api/v1/me", HTTP_X_API_KEY=raw_key, REMOTE_ADDR="10.1.2.3").status_code == 200


def test_read_scoped_key_cannot_write(trader, key_client):
    response = key_client(trader, scopes=["read"]).post(
        "/api/v1/api-keys", data={"name": "x", "scopes": ["read"]}, format="json"
    )
    assert_problem(response, 403, "api_key_scope")


def test_key_use_updates_last_used_and_is_audited_once_per_interval(trader, make_api_key):
    raw_key, api_key = make_api_key(trader)
    client = APIClient()
    for _ in range(3):
        assert client.get("/api/v1/me", HTTP_X_API_KEY=raw_key, REMOTE_ADDR="127.0.0.9").status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None and api_key.last_used_ip == "127.0.0.9"
    uses = AuditEvent.objects.filter(action="api_key.use", actor_api_key_id=api_key.pk)
    assert uses.count() == 1
    assert uses.get().ip == "127.0.0.9"


def test_session_writes_need_the_csrf_token(trader):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(trader)
    assert client.get("/api/v1/me").json()["auth_method"] == "session"
    refused = client.post("/api/v1/api-keys", data={"name": "s", "scopes": ["read"]}, format="json")
    assert_problem(refused, 403)
    client.get("/profile/")  # a portal page with a form sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    accepted = client.post(
        "/api/v1/api-keys", data={"name": "s", "scopes": ["read"]}, format="json", HTTP_X_CSRFTOKEN=token
    )
    assert accepted.status_code == 201


def test_inactive_user_key_is_refused(trader, make_api_key):
    raw_key, _ = make_api_key(trader)
    trader.is_active = False
    trader.save()
    assert_problem(APIClient().get("/api/v1/me", HTTP_X_API_KEY=raw_key), 401, "user_inactive")


# Permission matrix: role × endpoint of this issue → expected status.
ENDPOINTS = {
    "me": ("get", "/api/v1/me", None),
    "system_info": ("get", "/api/v1/system/info", None),
    "api_keys_list": ("get", "/api/v1/api-keys", None),
    "api_keys_create": ("post", "/api/v1/api-keys", {"name": "m", "scopes": ["read"]}),
    "api_key_own_retrieve": ("get", "/api/v1/api-keys/{own}", None),
    "api_key_own_revoke": ("delete", "/api/v1/api-keys/{own}", None),
    "api_key_other_retrieve": ("get", "/api/v1/api-keys/{other}", None),
    "api_key_other_revoke": ("delete", "/api/v1/api-keys/{other}", None),
}
EXPECTED = {
    #                        viewer trader operator admin
    "me": (200, 200, 200, 200),
    "system_info": (200, 200, 200, 200),
    "api_keys_list": (200, 200, 200, 200),
    "api_keys_create": (403, 201, 201, 201),
    "api_key_own_retrieve": (200, 200, 200, 200),
    "api_key_own_revoke": (403, 204, 204, 204),
    "api_key_other_retrieve": (404, 404, 200, 200),
    "api_key_other_revoke": (403, 404, 204, 204),
}
ROLES = ["viewer", "trader", "operator", "admin"]


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("role_index,role", list(enumerate(ROLES)))
@pytest.mark.parametrize("auth", ["api_key", "session"])
def test_permission_matrix(endpoint, role_index, role, auth, users, make_user, make_api_key):
    user = users[role]
    outsider = make_user(username="outsider", role="trader")
    own_raw, own_key = make_api_key(user, scopes=["read"], name="own")
    _, other_key = make_api_key(outsider, scopes=["read"], name="other")
    client = APIClient()
    if auth == "api_key":
        scopes = ["read", "trade"] if role != "viewer" else ["read"]
        raw, _ = make_api_key(user, scopes=scopes, name="caller")
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    else:
        client.force_login(user)
    method, url, body = ENDPOINTS[endpoint]
    url = url.format(own=own_key.pk, other=other_key.pk)
    response = getattr(client, method)(url, data=body, format="json")
    assert response.status_code == EXPECTED[endpoint][role_index], response.content
    if response.status_code >= 400:
        assert_problem(response, response.status_code)
    if endpoint == "system_info" and response.status_code == 200:
        assert ("components" in response.json()) is (role in ("operator", "admin"))


def test_changes_to_a_cached_key_or_its_user_take_effect_at_once(trader, make_api_key):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from portal.users import user_set_role

    raw_key, api_key = make_api_key(trader)
    client = APIClient(HTTP_X_API_KEY=raw_key)
    assert client.get("/api/v1/me").json()["role"] == "trader"  # the key record is now cached
    user_set_role(user=trader, role="viewer", actor="test")
    assert client.get("/api/v1/me").json()["role"] == "viewer"
    TOTPDevice.objects.create(user=trader, name="phone", confirmed=True)
    assert client.get("/api/v1/me").json()["two_factor_enabled"] is True
    api_key_revoke(api_key=ApiKey.objects.get(pk=api_key.pk), actor=trader)
    assert_problem(client.get("/api/v1/me"), 401, "api_key_revoked")
