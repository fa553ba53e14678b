"""The risk page on the full stack (daphne + a real Celery worker on the `risk` queue): run VaR,
watch the progress bar follow the job over the `jobs` stream, see VaR, ES, histogram and backtest."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.tests.servers import CeleryWorker
from riskmgmt.tests.test_var_runs import holder  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def risk_worker(daphne_url, tmp_path):
    worker = CeleryWorker(tmp_path / "worker.log", queues="risk").start()
    yield worker
    worker.stop()


def test_a_trader_runs_var_and_watches_it_complete(
    holder,  # noqa: F811
    daphne_login,
    risk_worker,
    console_errors,
    artifacts_dir,
):
    alice, _ = holder
    page = daphne_login(alice.owner)
    page.goto("/risk/")
    expect(page.get_by_test_id("exposures")).to_contain_text("BTCUSDT")
    expect(page.get_by_test_id("risk-warnings")).to_contain_text("No VaR has been computed")

    page.get_by_label("Method").select_option("monte_carlo")
    page.get_by_label("Paths (Monte Carlo)").fill("6000000")
    page.get_by_label("Seed (Monte Carlo, optional)").fill("42")
    page.get_by_test_id("run-var").click()
    progress = page.get_by_test_id("job-progress")
    expect(progress).to_be_visible()
    page.wait_for_function("() => window.TradeportLive && TradeportLive.isOpen()")
    expect(page.get_by_test_id("var-value")).to_contain_text("USDT", timeout=60_000)
    expect(page.get_by_test_id("es-value")).to_contain_text("USDT")
    expect(page.get_by_test_id("var-histogram")).to_be_visible()
    expect(page.get_by_test_id("backtest")).to_contain_text("Kupiec")
    expect(page.get_by_test_id("var-runs")).to_contain_text("succeeded")
    expect(page.get_by_test_id("job-progress")).to_have_count(0)
    page.screenshot(path=str(artifacts_dir / "risk-var.png"), full_page=True)
    assert console_errors == []


def test_a_bad_var_request_is_a_form_error(holder, daphne_login, console_errors):  # noqa: F811
    alice, _ = holder
    page = daphne_login(alice.owner)
    page.goto("/risk/")
    page.get_by_label("Horizon (days)").fill("30")
    page.get_by_label("Lookback (days)").fill("20")
    page.get_by_test_id("run-var").click()
    expect(page.get_by_test_id("var-form")).to_contain_text("LOOKBACK_SHORTER_THAN_HORIZON")
