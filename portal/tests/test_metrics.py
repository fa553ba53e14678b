"""Prometheus /metrics: request counts and latency histograms, for internal networks and operators."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from portal.choices import Role

pytestmark = pytest.mark.django_db

EXTERNAL_ADDRESS = "203.0.113.9"


def _samples(client) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def _value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_requests_by_method_and_time_them_by_view(client):
    before = _samples(client)

    for _ in range(3):
        assert client.get("/livez").status_code == 200

    after = _samples(client)
    # /metrics itself was fetched once in between, so GET grew by at least the three probes.
    counted = "django_http_requests_total_by_method_total"
    assert _value(after, counted, method="GET") - _value(before, counted, method="GET") >= 3
    latency_count = "django_http_requests_latency_seconds_by_view_method_count"
    assert (
        _value(after, latency_count, method="GET", view="livez")
        - _value(before, latency_count, method="GET", view="livez")
        == 3
    )
    buckets = [
        key
        for key in after
        if key[0] == "django_http_requests_latency_seconds_by_view_method_bucket" and ("view", "livez") in key[1]
    ]
    assert any(("le", "+Inf") in labels for _, labels in buckets)


def test_metrics_count_responses_by_status(client):
    before = _samples(client)
    assert client.get("/no-such-page/").status_code == 404
    after = _samples(client)
    counted = "django_http_responses_total_by_status_total"
    assert _value(after, counted, status="404") - _value(before, counted, status="404") == 1


def test_metrics_are_refused_outside_internal_networks_unless_signed_in_as_operator(client, users):
    assert client.get("/metrics", REMOTE_ADDR=EXTERNAL_ADDRESS).status_code == 403
    client.force_login(users[Role.VIEWER])
    assert client.get("/metrics", REMOTE_ADDR=EXTERNAL_ADDRESS).status_code == 403
    client.force_login(users[Role.OPERATOR])
    response = client.get("/metrics", REMOTE_ADDR=EXTERNAL_ADDRESS)
    assert response.status_code == 200
    assert b"django_http_requests_total_by_method_total" in response.content
