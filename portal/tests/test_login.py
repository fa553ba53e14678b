"""Portal sign-in: Argon2 hashes, lock-out after repeated failures (audited), TOTP two-factor."""

import pytest
from django.contrib.auth.hashers import make_password
from django.core.cache import cache
from django.test import override_settings
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from conftest import TEST_PASSWORD
from portal.authentication import INVALID_CREDENTIALS_MESSAGE
from portal.settings.base import PASSWORD_HASHERS

pytestmark = pytest.mark.django_db


def _login(client, username, password=TEST_PASSWORD, otp_token="", remote_addr="127.0.0.1"):
    return client.post(
        "/login/", {"username": username, "password": password, "otp_token": otp_token}, REMOTE_ADDR=remote_addr
    )


def _current_code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def test_passwords_are_hashed_with_argon2():
    with override_settings(PASSWORD_HASHERS=PASSWORD_HASHERS):
        assert make_password("s3cret-enough").startswith("argon2$")


def test_trader_signs_in_sees_home_and_signs_out(client, trader):
    response = _login(client, "trader1")
    assert response.status_code == 302 and response["Location"] == "/"
    home = client.get("/")
    assert b"trader1" in home.content and b"trader" in home.content
    assert AuditEvent.objects.filter(action="auth.login", actor_user=trader).exists()
    assert client.get("/logout/").status_code == 405  # sign-out is a POST (CSRF-protected)
    assert client.post("/logout/").status_code == 302
    assert client.get("/")["Location"].startswith("/login/")
    assert AuditEvent.objects.filter(action="auth.logout", actor_user=trader).exists()


def test_wrong_password_shows_a_form_error_and_is_audited(client, trader):
    response = _login(client, "trader1", password="wrong")
    assert response.status_code == 200
    assert INVALID_CREDENTIALS_MESSAGE.encode() in response.content
    failed = AuditEvent.objects.get(action="auth.login_failed")
    assert failed.target_label == "trader1" and failed.ip == "127.0.0.1"


def test_repeated_failures_lock_the_account_even_for_the_right_password(client, trader):
    for _ in range(4):
        assert _login(client, "trader1", password="wrong").status_code == 200
    locked = _login(client, "trader1", password="wrong")
    assert locked.status_code == 429
    assert b"locked" in locked.content
    again = _login(client, "trader1")  # the right password no longer helps
    assert again.status_code == 429
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="auth.locked_out", target_label="trader1").exists()
    assert AuditEvent.objects.filter(action="auth.login_locked", target_label="trader1").exists()


def test_lock_out_is_per_username_and_per_address(client, make_user, settings):
    settings.LOGIN_FAILURE_LIMIT_PER_IP = "3/15m"
    make_user(username="bob")
    for _ in range(3):
        _login(client, "nobody-here", password="x", remote_addr="203.0.113.5")
    assert _login(client, "bob", remote_addr="203.0.113.5").status_code == 429
    assert _login(client, "bob", remote_addr="203.0.113.6").status_code == 302


def test_two_factor_setup_then_sign_in_needs_the_code(client, trader):
    client.force_login(trader)
    client.post("/profile/", {"step": "totp-begin"})
    device = TOTPDevice.objects.get(user=trader, confirmed=False)
    page = client.get("/profile/")
    assert b"data:image/svg+xml;base64," in page.content
    refused = client.post("/profile/", {"step": "totp-confirm", "token": "000000"})
    assert b"not valid" in refused.content
    client.post("/profile/", {"step": "totp-confirm", "token": _current_code(device)})
    device.refresh_from_db()
    assert device.confirmed
    assert AuditEvent.objects.filter(action="auth.2fa_enable", actor_user=trader).exists()
    client.post("/logout/")

    missing = _login(client, "trader1")
    assert missing.status_code == 200 and INVALID_CREDENTIALS_MESSAGE.encode() in missing.content
    assert "_auth_user_id" not in client.session
    wrong = _login(client, "trader1", otp_token="123456" if _current_code(device) != "123456" else "654321")
    assert INVALID_CREDENTIALS_MESSAGE.encode() in wrong.content
    assert "_auth_user_id" not in client.session
    device.refresh_from_db()
    device.throttling_failure_count = 0  # django-otp slows retries after failures
    device.throttling_failure_timestamp = None
    device.last_t = -1  # as if the next 30 s step had come: a code is accepted once per step
    device.save()
    assert _login(client, "trader1", otp_token=_current_code(device)).status_code == 302
    assert client.get("/").status_code == 200


def test_admin_site_signs_in_through_the_portal_login(client, users):
    response = client.get("/admin/")
    assert response.status_code == 302
    follow = client.get(response["Location"])
    assert follow.status_code == 302 and follow["Location"].startswith("/login/?next=")
    _login(client, "operator")
    assert client.get("/admin/").status_code == 200


def test_next_parameter_never_redirects_off_site(client, trader):
    response = client.post(
        "/login/?next=https://evil.example/", {"username": "trader1", "password": TEST_PASSWORD, "otp_token": ""}
    )
    assert response["Location"] == "/"


def test_unused_argon2_hash_still_verifies(trader):
    with override_settings(PASSWORD_HASHERS=PASSWORD_HASHERS):
        trader.set_password("Another-long-pass-1")
        trader.save()
        assert trader.password.startswith("argon2$")
        assert trader.check_password("Another-long-pass-1")


def test_sending_the_api_key_form_twice_creates_one_key(client, trader):
    from portal.models import ApiKey

    client.force_login(trader)
    form = {"form_token": "f" * 32, "name": "once", "scopes": ["read"], "allowed_ips": "", "expires_at": ""}
    first = client.post("/api-keys/", form)
    assert first.status_code == 201 and b"tpk_" in first.content
    again = client.post("/api-keys/", form)
    assert again.status_code == 302
    assert ApiKey.objects.filter(user=trader, name="once").count() == 1
    assert b"already sent" in client.get("/api-keys/").content


def test_a_second_sign_in_for_the_same_account_waits_for_the_first(client, trader):
    cache.add("login-busy:trader1", 1, timeout=30)  # another attempt for trader1 is being checked
    busy = _login(client, "trader1")
    assert busy.status_code == 429 and b"in progress" in busy.content
    assert "_auth_user_id" not in client.session
    cache.delete("login-busy:trader1")
    assert _login(client, "trader1").status_code == 302


def test_two_factor_setup_cannot_replace_an_active_device(client, trader):
    client.force_login(trader)
    client.post("/profile/", {"step": "totp-begin"})
    device = TOTPDevice.objects.get(user=trader, confirmed=False)
    client.post("/profile/", {"step": "totp-confirm", "token": _current_code(device)})
    refused = client.post("/profile/", {"step": "totp-begin"})
    assert refused.status_code == 200 and b"already on" in refused.content
    assert list(TOTPDevice.objects.filter(user=trader).values_list("pk", "confirmed")) == [(device.pk, True)]
