"""The portal in a real browser: sign-in, API keys, lock-out, profile, system page, headers.

Each test checks what the user sees and the state behind it (database, audit log, API).
"""

from __future__ import annotations

import hashlib

import pytest
from playwright.sync_api import expect

from audit.models import AuditEvent
from portal.authentication import INVALID_CREDENTIALS_MESSAGE
from portal.models import ApiKey, User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _key_row(page, name: str):
    return page.get_by_test_id("api-keys").locator("tbody tr").filter(has_text=name)


def test_trader_signs_in_creates_an_api_key_and_uses_it(make_user, page, login, live_server, api_get, artifacts_dir):
    trader = make_user(username="tina", role="trader")

    login(page, "tina")
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, tina")
    expect(page.get_by_test_id("profile-link")).to_have_text("tina")
    assert User.objects.get(pk=trader.pk).last_login is not None
    assert AuditEvent.objects.filter(action__startswith="auth.login", actor_user=trader).exists()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    page.wait_for_url(f"{live_server.url}/api-keys/")
    expect(page.get_by_test_id("api-keys")).to_contain_text("No API keys yet.")

    page.get_by_label("Name").fill("ci-bot")
    page.locator("input[name=scopes][value=read]").check()
    page.locator("input[name=scopes][value=trade]").check()
    page.get_by_role("button", name="Create key").click()

    secret_box = page.get_by_test_id("new-key-secret")
    expect(secret_box).to_be_visible()
    secret = secret_box.inner_text().strip()
    assert secret.startswith("tpk_")
    page.screenshot(path=str(artifacts_dir / "api-keys.png"), full_page=True)

    api_key = ApiKey.objects.get(user=trader)
    assert api_key.name == "ci-bot"
    assert api_key.scopes == ["read", "trade"]
    assert api_key.revoked_at is None and api_key.expires_at is None and api_key.allowed_ips == []
    assert secret.startswith(f"tpk_{api_key.prefix}.")
    assert api_key.hashed_key == hashlib.sha256(secret.encode()).hexdigest()  # stored hashed, never in clear
    assert AuditEvent.objects.filter(action="api_key.create", actor_user=trader, target_id=str(api_key.pk)).exists()

    row = _key_row(page, "ci-bot")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(api_key.prefix)
    expect(row).to_contain_text("read, trade")
    expect(row).to_contain_text("active")
    expect(row.get_by_role("button", name="Revoke")).to_be_visible()

    response = api_get("/api/v1/me", {"Authorization": f"Api-Key {secret}"})
    assert response.status == 200, response.body
    me = response.json()
    assert me["username"] == "tina"
    assert me["role"] == "trader"
    assert me["auth_method"] == "api_key"
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None

    # Coming back to the page shows the key, never its secret again.
    page.goto("/api-keys/")
    expect(page.get_by_test_id("new-key-secret")).to_have_count(0)
    expect(_key_row(page, "ci-bot")).to_have_count(1)
    assert secret not in page.content()
    assert ApiKey.objects.filter(user=trader).count() == 1


def test_revoking_a_key_in_the_page_makes_the_api_refuse_it(make_user, make_api_key, page, login, api_get):
    trader = make_user(username="rita", role="trader")
    secret, api_key = make_api_key(trader, name="doomed")
    _, other_key = make_api_key(trader, name="keeper")
    assert api_get("/api/v1/me", {"Authorization": f"Api-Key {secret}"}).status == 200

    login(page, "rita")
    page.goto("/api-keys/")
    row = _key_row(page, "doomed")
    expect(row).to_contain_text("active")
    row.get_by_role("button", name="Revoke").click()

    expect(page.locator(".messages")).to_contain_text(f"API key {api_key.prefix} revoked.")
    row = _key_row(page, "doomed")
    expect(row).to_contain_text("revoked")
    expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
    expect(_key_row(page, "keeper")).to_contain_text("active")

    api_key.refresh_from_db()
    other_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert other_key.revoked_at is None
    assert AuditEvent.objects.filter(action="api_key.revoke", actor_user=trader, target_id=str(api_key.pk)).exists()

    response = api_get("/api/v1/me", {"Authorization": f"Api-Key {secret}"})
    assert response.status == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "api_key_revoked"
    assert problem["status"] == 401
    assert problem["trace_id"]


def test_wrong_passwords_lock_the_account_even_against_the_right_one(make_user, page, login, live_server):
    make_user(username="lou", role="trader")

    login(page, "lou", "not-the-password", expect_home=False)
    expect(page.get_by_test_id("form-error")).to_have_text(INVALID_CREDENTIALS_MESSAGE)
    assert page.url.startswith(f"{live_server.url}/login/")

    for _ in range(4):
        login(page, "lou", "still-not-it", expect_home=False)
    expect(page.get_by_test_id("form-error")).to_contain_text("locked")

    with page.expect_response(lambda r: r.url.endswith("/login/") and r.request.method == "POST") as posted:
        login(page, "lou", expect_home=False)
    assert posted.value.status == 429
    expect(page.get_by_test_id("form-error")).to_contain_text("locked")
    assert page.url.startswith(f"{live_server.url}/login/")

    assert User.objects.get(username="lou").last_login is None
    assert AuditEvent.objects.filter(action="auth.locked_out", target_label="lou").exists()
    page.goto("/")
    assert page.url.startswith(f"{live_server.url}/login/")


def test_profile_shows_the_user_and_sign_out_ends_the_session(make_user, page, login, live_server):
    from django.contrib.sessions.models import Session

    trader = make_user(username="pat", role="trader")
    login(page, "pat")
    assert any(s.get_decoded().get("_auth_user_id") == str(trader.pk) for s in Session.objects.all())

    page.get_by_test_id("profile-link").click()
    page.wait_for_url(f"{live_server.url}/profile/")
    expect(page.get_by_test_id("profile-username")).to_have_text("pat")
    expect(page.get_by_test_id("profile-role")).to_have_text("trader")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{live_server.url}/login/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator(".messages")).to_contain_text("You are signed out.")
    expect(page.get_by_test_id("profile-link")).to_have_count(0)
    assert not any(s.get_decoded().get("_auth_user_id") == str(trader.pk) for s in Session.objects.all())

    page.goto("/")
    assert page.url.startswith(f"{live_server.url}/login/")
    page.goto("/profile/")
    assert page.url.startswith(f"{live_server.url}/login/")


def test_operator_sees_the_system_page_and_a_trader_does_not(make_user, page, context, login, live_server):
    make_user(username="otto", role="operator")
    make_user(username="tom", role="trader")

    login(page, "otto")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="System").click()
    page.wait_for_url(f"{live_server.url}/system/")
    components = page.get_by_test_id("components")
    database = components.locator("tbody tr").filter(has_text="database")
    expect(database).to_have_count(1)
    expect(database).to_contain_text("ok")
    expect(page.get_by_test_id("system-status")).not_to_be_empty()

    context.clear_cookies()
    login(page, "tom")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="System")).to_have_count(0)
    response = page.goto("/system/")
    assert response.status == 403
    expect(page.get_by_test_id("components")).to_have_count(0)


def test_security_headers_and_no_console_errors_or_csp_violations(make_user, page, login, console_errors):
    make_user(username="sam", role="trader")

    response = page.goto("/login/")
    assert response.status == 200
    headers = response.headers
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert headers["x-frame-options"] == "DENY"
    assert console_errors == []
    # Chromium fetches the favicon on its own, after the load event, and logs a console error
    # when it fails; that request is racy to observe, so ask for the icon the page names.
    icon = page.evaluate("document.querySelector('link[rel~=icon]')?.href || '/favicon.ico'")
    if not icon.startswith("data:"):
        icon_status = page.request.get(icon).status
        assert icon_status == 200, f"favicon {icon} answers {icon_status}: every page logs a console error"

    login(page, "sam")
    assert console_errors == [], "home"
    for path in ("/api-keys/", "/profile/"):
        response = page.goto(path)
        assert response.status == 200
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert console_errors == [], path


def test_two_factor_setup_shows_its_qr_code_within_the_csp(make_user, page, login, console_errors):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = make_user(username="quinn", role="trader")
    login(page, "quinn")
    page.goto("/profile/")
    page.get_by_role("button", name="Set up").click()

    qr = page.get_by_role("img", name="QR code for your authenticator app")
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0"), "the QR code image did not load"
    expect(page.get_by_test_id("totp-secret")).not_to_be_empty()
    assert TOTPDevice.objects.filter(user=user, confirmed=False).count() == 1
    # The missing favicon is the security-headers test's business; here: no CSP violation.
    assert [e for e in console_errors if "favicon.ico" not in e] == []
