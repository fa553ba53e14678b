"""Every error on an API path is RFC 9457 problem JSON with a trace id — never HTML."""

import json

import pytest
from django.test import override_settings
from django.urls import path
from rest_framework.views import APIView

from portal.api.errors import PROBLEM_CONTENT_TYPE

pytestmark = pytest.mark.django_db


def assert_problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status
    assert response["Content-Type"].startswith(PROBLEM_CONTENT_TYPE)
    body = json.loads(response.content)
    assert body["status"] == status
    assert body["type"].startswith("urn:tradeport:problem:")
    assert body["title"] and body["detail"]
    assert body["trace_id"] == response["X-Request-ID"]
    if code is not None:
        assert body["code"] == code
    assert b"Traceback" not in response.content and b"<html" not in response.content.lower()
    return body


def test_malformed_json_is_400_problem(trader, key_client):
    response = key_client(trader).post("/api/v1/api-keys", data=b'{"name": "x",', content_type="application/json")
    assert_problem(response, 400, "malformed_request")


def test_invalid_fields_are_400_problem_with_field_errors(trader, key_client):
    response = key_client(trader).post("/api/v1/api-keys", data={"scopes": ["root"]}, format="json")
    body = assert_problem(response, 400, "validation_error")
    assert set(body["errors"]) == {"name", "scopes"}


def test_wrong_content_type_is_415_problem(trader, key_client):
    response = key_client(trader).post(
        "/api/v1/api-keys", data="name=x", content_type="application/x-www-form-urlencoded"
    )
    assert_problem(response, 415, "unsupported_media_type")


@override_settings(MAX_REQUEST_BODY_BYTES=1000)
def test_body_over_the_limit_is_413_problem_and_writes_nothing(trader, key_client):
    from portal.models import ApiKey

    client = key_client(trader)
    before = ApiKey.objects.count()
    response = client.post("/api/v1/api-keys", data={"name": "x" * 2000, "scopes": ["read"]}, format="json")
    assert_problem(response, 413, "payload_too_large")
    assert ApiKey.objects.count() == before


def test_unknown_api_path_is_404_problem(api_client):
    assert_problem(api_client.get("/api/v1/no-such-thing"), 404, "not_found")
    assert_problem(api_client.get("/api/v2/me"), 404, "not_found")


def test_wrong_method_is_405_problem_with_allow_header(trader, key_client):
    response = key_client(trader).put("/api/v1/me", data={}, format="json")
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


class _Exploding(APIView):
    permission_classes = []
    authentication_classes = []

    def get(self, request):
        raise RuntimeError("secret internals must not leak")


urlpatterns = [path("api/v1/explode", _Exploding.as_view())]


@override_settings(ROOT_URLCONF=__name__)
def test_unexpected_exception_is_500_problem_without_internals(client):
    client.raise_request_exception = False
    response = client.get("/api/v1/explode")
    body = assert_problem(response, 500, "server_error")
    assert "secret internals" not in json.dumps(body)


def test_non_api_404_is_an_html_page(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_request_id_is_echoed_when_sane_and_generated_otherwise(api_client):
    echoed = api_client.get("/livez", HTTP_X_REQUEST_ID="client-id-42")
    assert echoed["X-Request-ID"] == "client-id-42"
    replaced = api_client.get("/livez", HTTP_X_REQUEST_ID="bad id\nwith\x00junk")
    assert replaced["X-Request-ID"] != "bad id\nwith\x00junk" and len(replaced["X-Request-ID"]) == 32
    assert replaced["Server-Timing"].startswith("app;dur=")


def test_oversized_and_non_utf8_headers_do_not_crash_anything(trader, key_client, api_client):
    client = key_client(trader)
    huge = client.get("/api/v1/me", HTTP_X_REQUEST_ID="x" * 10_000, HTTP_USER_AGENT="u" * 20_000)
    assert huge.status_code == 200
    assert len(huge["X-Request-ID"]) == 32
    latin = client.get("/api/v1/me", HTTP_USER_AGENT="caf\xe9 \xff\xfe", HTTP_X_REQUEST_ID="\xe9t\xe9")
    assert latin.status_code == 200
    broken_key = api_client.get("/api/v1/me", HTTP_AUTHORIZATION="Api-Key \xff\xfe\xfd")
    assert_problem(broken_key, 401, "api_key_invalid")
