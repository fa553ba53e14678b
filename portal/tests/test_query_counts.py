"""Query-count baselines: list endpoints must not grow a query per row (N+1)."""

import pytest

pytestmark = pytest.mark.django_db


def test_api_key_list_queries_do_not_grow_with_rows(
    trader, key_client, make_api_key, django_assert_max_num_queries, settings
):
    settings.API_KEY_MAX_ACTIVE_PER_USER = 100
    client = key_client(trader, scopes=["read"])
    client.get("/api/v1/me")  # the once-per-interval key-use bookkeeping is not part of the baseline
    for index in range(30):
        make_api_key(trader, name=f"k{index}")
    with django_assert_max_num_queries(4):
        response = client.get("/api/v1/api-keys")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 31


def test_me_costs_a_constant_number_of_queries(trader, key_client, django_assert_max_num_queries):
    client = key_client(trader, scopes=["read"])
    client.get("/api/v1/me")
    with django_assert_max_num_queries(3):
        assert client.get("/api/v1/me").status_code == 200
