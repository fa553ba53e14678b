"""Structured JSON logs: every line a request causes carries its request id, path and user."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from django.conf import settings

from portal.api.v1 import views as api_v1_views
from portal.choices import Role

pytestmark = pytest.mark.django_db


class JsonLines:
    """What the project's `json` formatter writes for every record reaching the root logger."""

    def __init__(self, stream: io.StringIO) -> None:
        self._stream = stream

    @property
    def records(self) -> list[dict]:
        return [json.loads(line) for line in self._stream.getvalue().splitlines() if line.strip()]

    def with_event(self, event: str) -> list[dict]:
        return [record for record in self.records if record["event"] == event]


@pytest.fixture
def json_logs():
    """A handler like the `console` one of settings.LOGGING, writing into a buffer."""
    formatter_config = dict(settings.LOGGING["formatters"]["json"])
    formatter = formatter_config.pop("()")(**formatter_config)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield JsonLines(stream)
    finally:
        root.removeHandler(handler)


def test_a_request_log_line_is_json_with_the_sent_request_id_and_the_path(client, json_logs):
    response = client.get("/no-such-page/", HTTP_X_REQUEST_ID="req-logs-1")
    assert response.status_code == 404
    assert response["X-Request-ID"] == "req-logs-1"

    lines = [record for record in json_logs.records if record.get("request_id") == "req-logs-1"]
    assert lines, json_logs.records
    not_found = next(record for record in lines if record["logger"] == "django.request")
    assert not_found["path"] == "/no-such-page/"
    assert not_found["method"] == "GET"
    assert not_found["level"] == "warning"
    assert not_found["logger"] == "django.request"
    assert not_found["timestamp"].endswith("Z")


def test_a_generated_request_id_is_the_one_in_the_log_and_the_response(client, json_logs):
    response = client.get("/api/v1/no-such-endpoint")
    assert response.status_code == 404
    logged = [record for record in json_logs.records if record.get("path") == "/api/v1/no-such-endpoint"]
    assert logged and {record["request_id"] for record in logged} == {response["X-Request-ID"]}


def test_log_lines_of_a_signed_in_portal_request_name_the_user(client, users, json_logs):
    client.force_login(users[Role.TRADER])
    client.get("/no-such-page/", HTTP_X_REQUEST_ID="req-logs-2")
    lines = [record for record in json_logs.records if record.get("request_id") == "req-logs-2"]
    assert lines and all(record["user"] == "trader" for record in lines)


def test_a_service_log_line_during_an_api_key_request_carries_user_request_id_and_path(
    trader, key_client, json_logs, monkeypatch
):
    original = api_v1_views.me_representation

    def me_representation_that_logs(user, auth):
        # Services log with structlog or with the standard library; both must carry the context.
        structlog.get_logger("portal.users").info("me_read", detail="structlog")
        logging.getLogger("portal.users").info("me_read (stdlib)")
        return original(user, auth)

    monkeypatch.setattr(api_v1_views, "me_representation", me_representation_that_logs)
    client = key_client(trader, scopes=["read"])

    response = client.get("/api/v1/me", HTTP_X_REQUEST_ID="req-logs-3")

    assert response.status_code == 200
    lines = json_logs.with_event("me_read") + json_logs.with_event("me_read (stdlib)")
    assert len(lines) == 2, json_logs.records
    for line in lines:
        assert line["user"] == "trader1"
        assert line["request_id"] == "req-logs-3"
        assert line["path"] == "/api/v1/me"
        assert line["logger"] == "portal.users"
        assert line["api_key"] == trader.api_keys.get().prefix


def test_an_unhandled_error_in_an_api_request_is_logged_with_its_traceback_user_and_request_id(
    trader, key_client, json_logs, monkeypatch
):
    def broken(user, auth):
        raise RuntimeError("boom in a service")

    monkeypatch.setattr(api_v1_views, "me_representation", broken)
    response = key_client(trader, scopes=["read"]).get("/api/v1/me", HTTP_X_REQUEST_ID="req-logs-4")

    assert response.status_code == 500
    assert response["Content-Type"].startswith("application/problem+json")
    assert "boom" not in response.content.decode()  # never a traceback to the client
    logged = [record for record in json_logs.records if record.get("request_id") == "req-logs-4"]
    unhandled = [record for record in logged if record["event"] == "unhandled_api_exception"]
    assert len(unhandled) == 1
    assert unhandled[0]["user"] == "trader1" and unhandled[0]["level"] == "error"
    assert "RuntimeError: boom in a service" in unhandled[0]["exception"]
    failed = [record for record in logged if record["event"] == "request"]
    assert failed and failed[0]["status"] == 500 and failed[0]["level"] == "error"
    assert failed[0]["path"] == "/api/v1/me"


def test_the_next_request_does_not_inherit_the_previous_requests_user(client, trader, key_client, json_logs):
    key_client(trader, scopes=["read"]).get("/api/v1/me", HTTP_X_REQUEST_ID="req-logs-5")
    client.get("/no-such-page/", HTTP_X_REQUEST_ID="req-logs-6")  # anonymous
    lines = [record for record in json_logs.records if record.get("request_id") == "req-logs-6"]
    assert lines and all("user" not in record for record in lines)


def test_every_request_writes_one_json_access_line(client, json_logs):
    client.get("/livez", HTTP_X_REQUEST_ID="req-logs-7")
    access = [record for record in json_logs.records if record.get("request_id") == "req-logs-7"]
    assert [record["event"] for record in access] == ["request"]
    assert access[0]["status"] == 200 and access[0]["path"] == "/livez" and access[0]["duration_ms"] >= 0
