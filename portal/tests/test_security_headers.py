"""Security headers on every page, CORS for configured origins only."""

import pytest

pytestmark = pytest.mark.django_db

PAGES = ["/login/", "/", "/profile/", "/api-keys/", "/system/", "/livez", "/api/v1/me", "/api/v1/nope", "/admin/"]


@pytest.mark.parametrize("path", PAGES)
def test_every_response_carries_the_security_headers(client, users, path):
    client.force_login(users["operator"])
    response = client.get(path)
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Request-ID"] and response["Server-Timing"]


def test_session_cookie_is_http_only_and_same_site(client, trader):
    from conftest import TEST_PASSWORD

    response = client.post("/login/", {"username": "trader1", "password": TEST_PASSWORD, "otp_token": ""})
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


def test_cors_allows_only_configured_origins(client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    allowed = client.options(
        "/api/v1/me", HTTP_ORIGIN="https://app.example.com", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
    )
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "idempotency-key" in allowed["Access-Control-Allow-Headers"]
    other = client.options("/api/v1/me", HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    assert "Access-Control-Allow-Origin" not in other


def test_health_details_and_metrics_are_internal_or_operator_only(client, users):
    outside = {"REMOTE_ADDR": "198.51.100.7"}
    assert client.get("/health", **outside).status_code == 403
    assert client.get("/metrics", **outside).status_code == 403
    assert client.get("/livez", **outside).status_code == 200
    assert client.get("/health").status_code == 200  # loopback is internal
    client.force_login(users["operator"])
    assert client.get("/health", **outside).status_code == 200
    client.force_login(users["trader"])
    assert client.get("/metrics", **outside).status_code == 403


@pytest.mark.parametrize("path", ["/api/v1/docs/", "/api/v1/redoc/", "/api/v1/schema/"])
def test_api_documentation_is_served_without_third_party_hosts(client, path):
    response = client.get(path)
    assert response.status_code == 200
    body = response.content.decode()
    assert "fonts.googleapis.com" not in body and "cdn.jsdelivr.net" not in body
