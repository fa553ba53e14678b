"""Backtests through the API: a job over the stored candles whose result is the backtester's
own on the same bars, the catalogue, and bad requests refused before anything is queued."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from portal.choices import JobStatus, Role
from portal.jobs import job_execute
from portal.models import Job
from trading.models import Backtest
from trading.strategies.backtest import Candles, backtest_run
from trading.strategies.backtests import backtest_execute
from trading.strategies.base import Caps, Rules, params_validate
from trading.strategies.builtin import CATALOGUE
from trading.tests.bars import START, candles_store, random_walk

pytestmark = pytest.mark.django_db

D = Decimal
BARS = 3000
CROSSOVER = {"kind": "ma_crossover", "params": {"fast": 5, "slow": 20, "quantity": 1}}


def moment(bar: int) -> str:
    return datetime.fromtimestamp(START + 60 * bar, tz=UTC).isoformat()


@pytest.fixture
def history(market):
    """3,000 one-minute candles of BTCUSDT from START."""
    candles = random_walk(BARS, seed=17)
    candles_store(market.btcusdt, candles)
    return candles


@pytest.fixture
def alice(make_user, key_client):
    return key_client(make_user("alice"))


def request_body(**overrides):
    return {
        **CROSSOVER,
        "symbol": "BTCUSDT",
        "interval": "1m",
        "start": moment(0),
        "end": moment(BARS),
        "starting_balance": "10000",
        "slippage_bps": "5",
        **overrides,
    }


def test_a_backtest_job_stores_exactly_what_the_backtester_gives_on_the_stored_candles(
    market, history, alice, jobs_inline
):
    with jobs_inline():
        response = alice.post("/api/v1/backtests", request_body(), format="json")

    assert response.status_code == 202, response.content
    assert response["Location"] == f"/api/v1/jobs/{response.json()['job']['id']}"
    job = alice.get(response["Location"]).json()
    assert job["status"] == JobStatus.SUCCEEDED and job["progress"] == 100 and job["kind"] == "backtest"
    backtest = alice.get(f"/api/v1/backtests/{response.json()['id']}").json()
    expected = backtest_run(
        CATALOGUE["ma_crossover"](params_validate(CATALOGUE["ma_crossover"], CROSSOVER["params"])),
        history,
        rules=Rules.of(market.btcusdt),
        caps=Caps(),
        starting_quote=D("10000"),
        slippage_bps=D("5"),
    )
    assert backtest["bars"] == BARS and len(backtest["candles_digest"]) == 64
    assert backtest["params"] == {"fast": 5, "slow": 20, "average": "sma", "quantity": 1}
    metrics = backtest["metrics"]
    assert metrics["trades"] == len(expected.fills) > 20
    assert metrics["final_equity"] == pytest.approx(float(expected.equity[-1]))
    assert D(metrics["fees"]) == sum(fill.fee for fill in expected.fills)
    assert all(len(metrics[name].split(".")[1]) == 8 for name in ("fees", "realized_pnl", "position"))
    fills = alice.get(f"/api/v1/backtests/{backtest['id']}/fills?limit=5000").json()["results"]
    assert [(f["side"], D(f["price"]), D(f["quantity"]), D(f["fee"])) for f in fills] == [
        (fill.side, fill.price, fill.quantity, fill.fee) for fill in expected.fills
    ]
    assert fills[0]["at"] == datetime.fromtimestamp(expected.fills[0].time, tz=UTC).isoformat().replace("+00:00", "Z")
    curves = alice.get(f"/api/v1/backtests/{backtest['id']}/equity").json()
    assert len(curves["time"]) == len(curves["equity"]) == len(curves["drawdown"]) == 2000
    assert curves["equity"][-1] == pytest.approx(float(expected.equity[-1]))
    assert curves["time"][-1] == START + 60 * BARS
    assert min(curves["drawdown"]) == pytest.approx(-metrics["max_drawdown"], abs=1e-8)  # stored to 8 places


def test_the_catalogue_lists_every_type_with_its_schema(alice):
    response = alice.get("/api/v1/strategy-types")

    assert response.status_code == 200
    types = {entry["name"]: entry for entry in response.json()}
    assert set(types) == {"ma_crossover", "rsi_reversion", "grid", "twap", "market_maker"}
    assert types["ma_crossover"]["params_schema"]["properties"]["average"]["enum"] == ["sma", "ema"]
    assert types["twap"]["timer_seconds"] == 1


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"kind": "martingale"}, "unknown_type", "kind"),
        ({"params": {"fast": "ten", "quantity": 1}}, "bad_params", "params.fast"),
        ({"params": {"fast": 30, "slow": 10, "quantity": 1}}, "bad_params", "params.fast"),
        ({"params": {"fast": 5}}, "bad_params", "params.quantity"),
        ({"end": moment(0)}, "bad_range", "end"),
        ({"start": moment(BARS + 10), "end": moment(BARS + 100)}, "no_data", "start"),
        ({"starting_balance": "0"}, "bad_balance", "starting_balance"),
        ({"slippage_bps": "1500"}, "bad_slippage", "slippage_bps"),
    ],
)
def test_a_bad_backtest_request_is_a_400_problem_naming_the_field_and_queues_nothing(
    history, alice, overrides, code, field
):
    response = alice.post("/api/v1/backtests", request_body(**overrides), format="json")

    assert response.status_code == 400, response.content
    problem = response.json()
    assert response["Content-Type"].startswith("application/problem+json")
    assert problem["code"] == code and field in problem["errors"], problem
    assert not Job.objects.exists() and not Backtest.objects.exists()


def test_an_unknown_symbol_is_a_404(history, alice):
    response = alice.post("/api/v1/backtests", request_body(symbol="DOGEUSDT"), format="json")

    assert response.status_code == 404 and response.json()["code"] == "UNKNOWN_SYMBOL"


def test_a_user_never_sees_anothers_backtest_and_an_operator_sees_all(
    history, alice, make_user, key_client, jobs_inline
):
    with jobs_inline():
        created = alice.post("/api/v1/backtests", request_body(), format="json").json()
    bob = key_client(make_user("bob"))
    operator = key_client(make_user("olga", role=Role.OPERATOR))

    for path in ("", "/fills", "/equity"):
        assert bob.get(f"/api/v1/backtests/{created['id']}{path}").status_code == 404
    assert bob.get("/api/v1/backtests").json()["results"] == []
    assert [b["id"] for b in operator.get("/api/v1/backtests").json()["results"]] == [created["id"]]


def test_the_equity_of_an_unfinished_backtest_is_a_409(history, alice):
    created = alice.post("/api/v1/backtests", request_body(), format="json").json()  # queued, never run here

    response = alice.get(f"/api/v1/backtests/{created['id']}/equity")

    assert response.status_code == 409 and response.json()["code"] == "not_finished"


def test_candles_added_to_the_period_after_the_request_fail_the_job(market, history, alice):
    created = alice.post("/api/v1/backtests", request_body(end=moment(BARS + 5)), format="json").json()
    later = random_walk(3, seed=1)
    candles_store(
        market.btcusdt,
        Candles(later.time + 60 * BARS, later.open, later.high, later.low, later.close, later.volume, 60),
    )

    job_execute(created["job"]["id"], backtest_execute)

    job = Job.objects.get(pk=created["job"]["id"])
    assert job.status == JobStatus.FAILED
    assert "held 3,000 candles when the backtest was requested and holds 3,003 now" in job.error
    assert not Backtest.objects.get(pk=created["id"]).fills.exists()
