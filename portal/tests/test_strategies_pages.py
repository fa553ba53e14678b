"""The portal's strategies pages without a browser: a type's form generated from its schema, a
definition's errors on their fields, start and stop, a backtest run from a strategy's page with
its metrics, charts and CSV report, two backtests compared, and nobody else's pages."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from conftest import TEST_PASSWORD
from trading.choices import StrategyStatus
from trading.models import Backtest, Strategy
from trading.tests.bars import START, candles_store, random_walk

pytestmark = pytest.mark.django_db

BARS = 2000


def moment(bar: int) -> str:
    return datetime.fromtimestamp(START + 60 * bar, tz=UTC).strftime("%Y-%m-%d %H:%M")


@pytest.fixture
def alice(funded_account, client):
    account = funded_account("alice", USDT="100000")
    assert client.login(username="alice", password=TEST_PASSWORD)
    return account


@pytest.fixture
def history(market):
    candles_store(market.btcusdt, random_walk(BARS, seed=9))


def define(client, account, kind="ma_crossover", **fields):
    body = {"kind": kind, "name": "cross", "account": account.pk, "symbol": "BTCUSDT", "interval": "1m"}
    body.update(fields)
    return client.post("/strategies/", body)


def test_each_types_form_has_the_fields_of_its_parameters(alice, client):
    grid = client.get("/strategies/?kind=grid").content.decode()
    crossover = client.get("/strategies/").content.decode()

    for name in ("param_lower", "param_upper", "param_levels", "param_quantity"):
        assert f'name="{name}"' in grid
    assert 'name="param_fast"' in crossover and '<option value="ema">' in crossover
    assert 'name="param_lower"' not in crossover
    assert "Grid trading" in grid and "Moving-average crossover" in crossover


def test_a_definition_the_type_refuses_is_an_error_on_its_parameters_field(alice, client):
    response = define(client, alice, "grid", param_lower="120", param_upper="90", param_quantity="0.1")

    assert response.status_code == 422
    html = response.content.decode()
    assert "Must be less than upper." in html and not Strategy.objects.exists()


def test_defining_starting_and_stopping_a_strategy(alice, client):
    response = define(client, alice, param_fast="3", param_slow="8", param_quantity="0.5", param_average="sma")
    strategy = Strategy.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/strategies/{strategy.pk}/"
    assert strategy.params == {"fast": 3, "slow": 8, "average": "sma", "quantity": 0.5}

    client.post(f"/strategies/{strategy.pk}/start/")
    assert Strategy.objects.get().status == StrategyStatus.RUNNING
    page = client.get(f"/strategies/{strategy.pk}/").content.decode()
    assert 'data-testid="strategy-stop"' in page and "Running" in page
    client.post(f"/strategies/{strategy.pk}/stop/")
    assert Strategy.objects.get().status == StrategyStatus.STOPPED
    assert "stopped; its open orders were canceled" in client.get(f"/strategies/{strategy.pk}/").content.decode()


def test_a_backtest_from_a_strategys_page_shows_its_metrics_charts_trades_and_report(
    alice, client, history, jobs_inline
):
    define(client, alice, param_fast="5", param_slow="20", param_quantity="1", param_average="sma")
    strategy = Strategy.objects.get()
    body = {"start": moment(0), "end": moment(BARS), "starting_balance": "10000", "slippage_bps": "2"}

    with jobs_inline():
        response = client.post(f"/strategies/{strategy.pk}/", body)

    backtest = Backtest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/backtests/{backtest.pk}/"
    html = client.get(response["Location"]).content.decode()
    for chart in ("chart-equity", "chart-drawdown", "chart-price"):
        assert f'data-testid="{chart}"' in html
    assert html.count('class="marker buy"') >= 10 and 'data-testid="backtest-fills"' in html
    assert "Sharpe" in html and "Max drawdown" in html and "Profit factor" in html
    report = b"".join(client.get(f"/backtests/{backtest.pk}/report.csv").streaming_content).decode()
    rows = list(csv.reader(io.StringIO(report)))
    assert rows[0] == ["backtest", str(backtest.pk), "cross"]
    assert ["seq", "at", "side", "price", "quantity", "fee", "realized_pnl", "position"] in rows
    assert len([row for row in rows if row and row[0].isdigit()]) == backtest.fills.count() > 10


def test_a_backtest_period_without_candles_is_a_form_error(alice, client, history):
    define(client, alice, param_fast="5", param_slow="20", param_quantity="1", param_average="sma")
    strategy = Strategy.objects.get()

    response = client.post(
        f"/strategies/{strategy.pk}/",
        {"start": moment(BARS + 10), "end": moment(BARS + 20), "starting_balance": "10000", "slippage_bps": "0"},
    )

    assert response.status_code == 422 and "no_data" in response.content.decode()
    assert not Backtest.objects.exists()


def test_two_backtests_side_by_side(alice, client, history, jobs_inline):
    define(client, alice, param_fast="5", param_slow="20", param_quantity="1", param_average="sma")
    strategy = Strategy.objects.get()
    with jobs_inline():
        for end in (BARS // 2, BARS):
            body = {"start": moment(0), "end": moment(end), "starting_balance": "10000", "slippage_bps": "0"}
            client.post(f"/strategies/{strategy.pk}/", body)
    first, second = Backtest.objects.order_by("pk")

    html = client.get(f"/backtests/compare/?a={first.pk}&b={second.pk}").content.decode()

    assert f"#{first.pk}" in html and f"#{second.pk}" in html and "Sharpe" in html
    assert 'class="equity other"' in html


def test_nobody_else_sees_a_strategy_or_a_backtest(alice, client, history, jobs_inline, make_user):
    define(client, alice, param_fast="5", param_slow="20", param_quantity="1", param_average="sma")
    strategy = Strategy.objects.get()
    with jobs_inline():
        client.post(
            f"/strategies/{strategy.pk}/",
            {"start": moment(0), "end": moment(BARS), "starting_balance": "10000", "slippage_bps": "0"},
        )
    backtest = Backtest.objects.get()
    make_user("bob")
    assert client.login(username="bob", password=TEST_PASSWORD)

    for path in (
        f"/strategies/{strategy.pk}/",
        f"/backtests/{backtest.pk}/",
        f"/backtests/{backtest.pk}/report.csv",
        f"/backtests/compare/?a={backtest.pk}&b={backtest.pk}",
    ):
        assert client.get(path).status_code == 404, path
    assert client.post(f"/strategies/{strategy.pk}/start/").status_code == 404
    assert "cross" not in client.get("/strategies/").content.decode().split("New strategy")[0]
