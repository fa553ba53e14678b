"""The portal's risk page without a browser: what it shows, the VaR form's errors, a run's result."""

from __future__ import annotations

import pytest

from conftest import TEST_PASSWORD
from riskmgmt.models import VarRun
from riskmgmt.tests.test_var_runs import holder  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


def signed_in(client, username: str):
    assert client.login(username=username, password=TEST_PASSWORD)
    return client


def test_the_page_shows_exposures_limits_score_and_the_var_form(holder, client):  # noqa: F811
    alice, _ = holder
    page = signed_in(client, "alice").get("/risk/")
    assert page.status_code == 200
    html = page.content.decode()
    for text in ("BTCUSDT", "ETHUSDT", "Risk score", "Run VaR", "No run yet.", "No VaR has been computed"):
        assert text in html


def test_running_var_redirects_to_the_run_and_shows_its_figures(holder, client, jobs_inline):  # noqa: F811
    alice, _ = holder
    signed_in(client, "alice")
    with jobs_inline():
        response = client.post(
            "/risk/", {"method": "historical", "confidence": "0.95", "horizon_days": "1", "lookback_days": "250"}
        )
    run = VarRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/risk/?run={run.pk}"
    html = client.get(response["Location"]).content.decode()
    assert f"{run.var:.2f} USDT" in html and 'data-testid="var-histogram"' in html and "Kupiec" in html


def test_a_request_the_maths_refuses_is_a_form_error_on_its_field(holder, client):  # noqa: F811
    signed_in(client, "alice")
    response = client.post(
        "/risk/", {"method": "historical", "confidence": "0.99", "horizon_days": "30", "lookback_days": "20"}
    )
    assert response.status_code == 422
    assert "LOOKBACK_SHORTER_THAN_HORIZON" in response.content.decode()
    assert not VarRun.objects.exists()


def test_a_user_without_an_account_is_told_so(make_user, client):
    make_user("vic")
    assert "no trading account" in signed_in(client, "vic").get("/risk/").content.decode()
