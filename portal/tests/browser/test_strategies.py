"""The strategies pages on the full stack (daphne + a real Celery worker on the `risk` queue):
define a strategy with the form generated from its type's schema, backtest it from its page,
watch the progress bar follow the job, and see the metrics and the charts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from portal.tests.servers import CeleryWorker
from trading.tests.bars import START, candles_store, random_walk

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: Enough one-minute bars for the market maker's backtest to take a few seconds.
BARS = 100_000


@pytest.fixture
def risk_worker(daphne_url, tmp_path):
    worker = CeleryWorker(tmp_path / "worker.log", queues="risk").start()
    yield worker
    worker.stop()


def moment(bar: int) -> str:
    return datetime.fromtimestamp(START + 60 * bar, tz=UTC).strftime("%Y-%m-%d %H:%M")


def test_a_trader_defines_a_strategy_backtests_it_and_sees_the_result(
    market, funded_account, daphne_login, risk_worker, console_errors, artifacts_dir
):
    alice = funded_account("alice", USDT="100000")
    candles_store(market.btcusdt, random_walk(BARS, seed=4, sigma=0.001))
    page = daphne_login(alice.owner)
    page.goto("/strategies/")
    page.get_by_test_id("strategy-kinds").get_by_role("link", name="Market maker").click()
    form = page.get_by_test_id("strategy-form")
    form.get_by_label("Name").fill("maker")
    form.get_by_label("Quote notional").fill("200")
    form.get_by_label("Max inventory").fill("5")
    page.get_by_test_id("strategy-create").click()
    expect(page.get_by_test_id("strategy-status")).to_contain_text("Stopped")

    backtest = page.get_by_test_id("backtest-form")
    backtest.get_by_label("Start", exact=True).fill(moment(0))
    backtest.get_by_label("End", exact=True).fill(moment(BARS))
    page.get_by_test_id("backtest-run").click()
    expect(page.get_by_test_id("job-progress")).to_be_visible()
    page.wait_for_function("() => window.TradeportLive && TradeportLive.isOpen()")
    expect(page.get_by_test_id("backtest-metrics")).to_contain_text("Sharpe", timeout=90_000)
    expect(page.get_by_test_id("chart-equity")).to_be_visible()
    expect(page.get_by_test_id("chart-drawdown")).to_be_visible()
    expect(page.get_by_test_id("chart-price")).to_be_visible()
    expect(page.get_by_test_id("backtest-fills")).to_contain_text("BUY")
    expect(page.get_by_test_id("job-progress")).to_have_count(0)
    page.screenshot(path=str(artifacts_dir / "backtest.png"), full_page=True)
    assert console_errors == []
