"""VaR runs through the API and their job: figures checked against plain NumPy on the same closes,
inputs stored so a run repeats exactly, bad requests refused before anything is queued."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from marketdata.models import Candle, CandleInterval, CandleOrigin
from portal.choices import JobStatus
from portal.jobs import job_execute
from portal.models import Job
from riskmgmt.models import VarRun
from riskmgmt.var_runs import var_run_execute

D = Decimal
DAYS = 320


def daily_history(instrument, *, days: int = DAYS, seed: int = 7, volatility: float = 0.03) -> np.ndarray:
    """`days` daily candles ending yesterday, a seeded random walk; returns the closes."""
    rng = np.random.default_rng(seed)
    closes = float(instrument.reference_price) * np.exp(np.cumsum(rng.normal(0.0, volatility, days)))
    closes = np.round(closes, 2)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    Candle.objects.bulk_create(
        Candle(
            instrument=instrument,
            interval=CandleInterval.D1,
            open_time=today - timedelta(days=days - index),
            open=D(str(close)),
            high=D(str(close)),
            low=D(str(close)),
            close=D(str(close)),
            volume=D(1),
            quote_volume=D(str(close)),
            trade_count=1,
            origin=CandleOrigin.BACKFILL,
        )
        for index, close in enumerate(closes)
    )
    return closes


@pytest.fixture
def holder(market, funded_account, place):
    """alice holds 2 BTC and 3 ETH bought at 100 and 50 (from bob); both have daily history."""
    alice = funded_account("alice", USDT="10000")
    bob = funded_account("bob", BTC="10", ETH="10")
    place(bob, "SELL", qty="2", price="100")
    place(alice, "BUY", qty="2", price="100")
    place(bob, "SELL", qty="3", price="50", instrument=market.ethusdt)
    place(alice, "BUY", qty="3", price="50", instrument=market.ethusdt)
    closes = np.column_stack([daily_history(market.btcusdt, seed=1), daily_history(market.ethusdt, seed=2)])
    return alice, closes


def client_of(key_client, account):
    return key_client(account.owner)


def post_var(client, account, **body):
    return client.post("/api/v1/risk/var", {"account": account.pk, **body}, format="json")


def test_historical_var_through_the_api_matches_numpy_on_the_same_closes(holder, key_client, jobs_inline):
    alice, closes = holder
    client = client_of(key_client, alice)
    with jobs_inline():
        response = post_var(client, alice, method="historical", confidence=0.99, horizon_days=1, lookback_days=250)
    assert response.status_code == 202, response.content
    assert response["Location"] == f"/api/v1/jobs/{response.json()['job']['id']}"
    run = client.get(f"/api/v1/risk/var/{response.json()['id']}").json()
    assert run["job"]["status"] == JobStatus.SUCCEEDED and run["job"]["progress"] == 100

    exposures = np.array([2 * 100.0, 3 * 50.0])
    returns = np.diff(np.log(closes), axis=0)
    losses = -(np.expm1(returns[-250:]) @ exposures)
    expected_var = np.quantile(losses, 0.99)
    expected_es = losses[losses >= expected_var].mean()
    assert float(run["var"]) == pytest.approx(expected_var, abs=1e-7)
    assert float(run["es"]) == pytest.approx(expected_es, abs=1e-7)
    assert run["scenarios"] == 250 and sum(run["histogram"]["counts"]) == 250
    assert run["positions"] == [
        {"symbol": "BTCUSDT", "quantity": "2.00000000", "price": "100.00000000", "exposure": "200.00000000"},
        {"symbol": "ETHUSDT", "quantity": "3.00000000", "price": "50.00000000", "exposure": "150.00000000"},
    ]
    assert run["job"]["result"]["var"] == run["var"]


def test_every_run_carries_the_backtest_of_its_one_day_var_with_kupiec(holder, key_client, jobs_inline):
    from scipy.stats import chi2

    alice, closes = holder
    with jobs_inline():
        response = post_var(client_of(key_client, alice), alice, confidence=0.95, lookback_days=100)
    backtest = VarRun.objects.get(pk=response.json()["id"]).backtest
    exposures = np.array([200.0, 150.0])
    returns = np.diff(np.log(closes), axis=0)
    window = min(250, len(returns) - 100)
    breaches = 0
    for day in range(len(returns) - window, len(returns)):
        history = -(np.expm1(returns[day - 100 : day]) @ exposures)
        breaches += -(np.expm1(returns[day]) @ exposures) > np.quantile(history, 0.95)
    assert backtest["available"] and backtest["observations"] == window and backtest["breaches"] == breaches
    p, x, t = 0.05, breaches, window
    lr = -2 * ((t - x) * np.log(1 - p) + x * np.log(p)) + 2 * ((t - x) * np.log(1 - x / t) + x * np.log(x / t))
    assert backtest["kupiec_lr"] == pytest.approx(lr, rel=1e-9)
    assert backtest["kupiec_p_value"] == pytest.approx(chi2.sf(lr, 1), rel=1e-9)
    assert backtest["verdict"] == ("rejected" if chi2.sf(lr, 1) < 0.05 else "accepted")


def test_parametric_var_is_the_closed_form_of_the_sample_moments(holder, key_client, jobs_inline):
    from scipy.stats import norm

    alice, closes = holder
    with jobs_inline():
        response = post_var(
            client_of(key_client, alice), alice, method="parametric", confidence=0.95, horizon_days=5, lookback_days=200
        )
    run = VarRun.objects.get(pk=response.json()["id"])
    returns = np.diff(np.log(closes), axis=0)[-200:]
    exposures = np.array([200.0, 150.0])
    mu = 5 * exposures @ returns.mean(axis=0)
    sigma = np.sqrt(5 * exposures @ np.cov(returns, rowvar=False) @ exposures)
    assert float(run.var) == pytest.approx(norm.ppf(0.95) * sigma - mu, abs=1e-7)
    assert float(run.es) == pytest.approx(norm.pdf(norm.ppf(0.95)) / 0.05 * sigma - mu, abs=1e-7)


def test_a_monte_carlo_run_repeats_exactly_from_its_stored_seed(holder, key_client, jobs_inline):
    alice, _ = holder
    client = client_of(key_client, alice)
    with jobs_inline():
        first = post_var(client, alice, method="monte_carlo", paths=20_000).json()
    stored = VarRun.objects.get(pk=first["id"])
    assert stored.seed is not None and stored.paths == 20_000 and stored.numpy_version == np.__version__
    with jobs_inline():
        again = post_var(client, alice, method="monte_carlo", paths=20_000, seed=stored.seed).json()
    assert VarRun.objects.get(pk=again["id"]).var == stored.var
    assert VarRun.objects.get(pk=again["id"]).returns_digest == stored.returns_digest


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"confidence": 1.5}, "BAD_CONFIDENCE"),
        ({"confidence": 0}, "BAD_CONFIDENCE"),
        ({"horizon_days": 30, "lookback_days": 20}, "LOOKBACK_SHORTER_THAN_HORIZON"),
        ({"lookback_days": 5}, "BAD_LOOKBACK"),
        ({"lookback_days": 400}, "NO_HISTORY"),
        ({"horizon_days": 0}, "BAD_HORIZON"),
        ({"method": "monte_carlo", "paths": 10**9}, "BAD_PATHS"),
        ({"method": "monte_carlo", "paths": 10}, "BAD_PATHS"),
        ({"method": "monte_carlo", "seed": -1}, "BAD_SEED"),
    ],
)
def test_a_bad_request_is_a_400_problem_and_queues_nothing(holder, key_client, body, code):
    alice, _ = holder
    response = post_var(client_of(key_client, alice), alice, **body)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert not Job.objects.exists() and not VarRun.objects.exists()


def test_an_account_without_positions_is_told_there_is_nothing_to_measure(funded_account, key_client):
    carol = funded_account("carol", USDT="100")
    response = post_var(key_client(carol.owner), carol)
    assert response.status_code == 400 and response.json()["code"] == "NO_POSITIONS"


def test_positions_without_daily_history_are_told_so(market, funded_account, place, key_client):
    alice = funded_account("alice", USDT="1000")
    bob = funded_account("bob", BTC="1")
    place(bob, "SELL", qty="1", price="100")
    place(alice, "BUY", qty="1", price="100")
    response = post_var(key_client(alice.owner), alice)
    assert response.status_code == 400 and response.json()["code"] == "NO_HISTORY"


def test_an_unknown_method_is_a_400_naming_the_field(holder, key_client):
    alice, _ = holder
    response = post_var(client_of(key_client, alice), alice, method="astrology")
    assert response.status_code == 400 and "method" in response.json()["errors"]


def test_another_users_account_is_not_found(holder, funded_account, key_client):
    alice, _ = holder
    mallory = funded_account("mallory", USDT="1")
    response = post_var(key_client(mallory.owner), alice)
    assert response.status_code == 404
    assert not Job.objects.exists()


def test_runs_are_listed_to_their_owner_only(holder, funded_account, key_client, jobs_inline):
    alice, _ = holder
    with jobs_inline():
        post_var(client_of(key_client, alice), alice)
    mallory = funded_account("mallory", USDT="1")
    assert len(client_of(key_client, alice).get("/api/v1/risk/var").json()["results"]) == 1
    assert client_of(key_client, mallory).get("/api/v1/risk/var").json()["results"] == []


def test_history_that_changed_after_the_request_fails_the_job_with_the_reason(holder, key_client):
    alice, _ = holder
    run_id = post_var(client_of(key_client, alice), alice).json()["id"]
    run = VarRun.objects.get(pk=run_id)
    candle = Candle.objects.filter(origin=CandleOrigin.BACKFILL).order_by("-open_time").first()
    Candle.objects.filter(pk=candle.pk).update(close=candle.close * 2, high=candle.close * 2)
    job_execute(str(run.job_id), var_run_execute)
    job = Job.objects.get(pk=run.job_id)
    assert job.status == JobStatus.FAILED and "history" in job.error
    assert VarRun.objects.get(pk=run_id).var is None


@pytest.mark.django_db(transaction=True)
def test_in_embedded_mode_the_run_is_computed_off_the_request_thread(holder, key_client, settings):
    import time

    settings.CELERY_EMBEDDED = True
    alice, _ = holder
    client = client_of(key_client, alice)
    response = post_var(client, alice, method="monte_carlo", paths=2_000_000)
    assert response.status_code == 202 and response.json()["job"]["status"] == "queued"
    job_url = response["Location"]
    deadline = time.monotonic() + 60
    while (job := client.get(job_url).json())["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job["status"] == "succeeded" and job["result"]["var"]
