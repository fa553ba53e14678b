"""Strategies through the API: define, change, start, stop, delete; bad definitions refused with
the field named; only the owner controls a strategy; its orders and fills are found by it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from audit.models import AuditEvent
from marketdata.models import InstrumentStatus
from portal.choices import Role
from riskmgmt.services import instrument_status_set, kill_switch_engage
from trading.choices import OPEN_STATUSES, StrategyStatus
from trading.models import Order, Strategy
from trading.strategies.runner import StrategyRunner
from trading.tests.bars import candles_of, candles_store

pytestmark = pytest.mark.django_db

D = Decimal
GRID = {"lower": 90, "upper": 99, "levels": 4, "quantity": 0.1}


@pytest.fixture
def alice(funded_account, key_client):
    account = funded_account("alice", USDT="100000")
    return account, key_client(account.owner)


def define(client, account, **overrides):
    body = {"name": "grid", "kind": "grid", "params": GRID, "account": account.pk, "symbol": "BTCUSDT", **overrides}
    return client.post("/api/v1/strategies", body, format="json")


def test_a_strategy_is_defined_stopped_with_its_defaults_and_audited(market, alice):
    account, client = alice

    response = define(client, account, max_order_qty="0.5")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == StrategyStatus.STOPPED and body["symbol"] == "BTCUSDT" and body["interval"] == "1m"
    assert body["params"] == {**GRID, "levels": 4} and body["max_order_qty"] == "0.50000000"
    assert body["position"] == "0.00000000" and body["unrealized_pnl"] == "0.00000000"
    assert AuditEvent.objects.filter(action="strategy.create", target_id=str(body["id"])).exists()


@pytest.mark.parametrize(
    ("overrides", "status", "code", "field"),
    [
        ({"kind": "martingale"}, 400, "unknown_type", "kind"),
        ({"params": {**GRID, "levels": 1}}, 400, "bad_params", "params.levels"),
        ({"params": {"lower": 99, "upper": 90, "quantity": 0.1}}, 400, "bad_params", "params.lower"),
        ({"params": {"upper": 99, "quantity": 0.1}}, 400, "bad_params", "params.lower"),
        ({"interval": "7m"}, 400, "validation_error", "interval"),
        ({"max_position": "-1"}, 400, "validation_error", "max_position"),
    ],
)
def test_a_bad_definition_is_a_problem_naming_the_field(market, alice, overrides, status, code, field):
    account, client = alice

    response = define(client, account, **overrides)

    assert response.status_code == status, response.content
    assert response.json()["code"] == code and field in response.json()["errors"]
    assert not Strategy.objects.exists()


def test_a_strategy_cannot_trade_someone_elses_account(market, alice, funded_account):
    _, client = alice
    bobs = funded_account("bob", USDT="10")

    response = define(client, bobs)

    assert response.status_code == 404 and not Strategy.objects.exists()


def test_start_runs_it_and_stop_cancels_its_open_orders(market, alice):
    account, client = alice
    created = define(client, account).json()

    started = client.post(f"/api/v1/strategies/{created['id']}/start")
    assert started.status_code == 200 and started.json()["status"] == StrategyStatus.RUNNING
    assert client.post(f"/api/v1/strategies/{created['id']}/start").json()["code"] == "strategy_running"
    runner = StrategyRunner()
    candles_store(market.btcusdt, candles_of([100, 100, 100]))
    runner.tick(now=float(candles_of([100, 100, 100]).time[-1]) + 61)
    candles_store(market.btcusdt, candles_of([100], first=3))
    runner.tick(now=float(candles_of([100], first=3).time[-1]) + 61)
    orders = client.get(f"/api/v1/orders?strategy={created['id']}&open=true").json()["results"]
    assert len(orders) == 4

    stopped = client.post(f"/api/v1/strategies/{created['id']}/stop")

    assert stopped.status_code == 200 and stopped.json()["status"] == StrategyStatus.STOPPED
    assert not Order.objects.filter(strategy_id=created["id"], status__in=OPEN_STATUSES).exists()
    assert client.get(f"/api/v1/strategies/{created['id']}/status").json()["status"] == StrategyStatus.STOPPED
    assert client.post(f"/api/v1/strategies/{created['id']}/stop").status_code == 409


def test_start_is_refused_on_a_halted_instrument_and_under_a_kill_switch(market, alice):
    account, client = alice
    created = define(client, account).json()
    instrument_status_set(instrument=market.btcusdt, status=InstrumentStatus.HALT, reason="test", actor="ops")

    halted = client.post(f"/api/v1/strategies/{created['id']}/start")

    assert halted.status_code == 409 and halted.json()["code"] == "INSTRUMENT_HALTED"
    instrument_status_set(instrument=market.btcusdt, status=InstrumentStatus.TRADING, reason="test", actor="ops")
    kill_switch_engage(account=None, reason="test", actor="ops")
    killed = client.post(f"/api/v1/strategies/{created['id']}/start")
    assert killed.status_code == 409 and killed.json()["code"] == "KILL_SWITCH"


def test_a_running_strategy_is_not_changed_or_deleted_and_a_stopped_one_is(market, alice):
    account, client = alice
    created = define(client, account).json()
    client.post(f"/api/v1/strategies/{created['id']}/start")

    assert client.patch(f"/api/v1/strategies/{created['id']}", {"name": "x"}, format="json").status_code == 409
    assert client.delete(f"/api/v1/strategies/{created['id']}").status_code == 409
    client.post(f"/api/v1/strategies/{created['id']}/stop")
    changed = client.patch(
        f"/api/v1/strategies/{created['id']}", {"params": {**GRID, "levels": 5}}, format="json"
    ).json()
    assert changed["params"]["levels"] == 5 and changed["name"] == "grid"
    assert client.delete(f"/api/v1/strategies/{created['id']}").status_code == 204
    assert not Strategy.objects.exists()


def test_only_the_owner_sees_and_controls_a_strategy_and_an_operator_may_stop_it(market, alice, make_user, key_client):
    account, client = alice
    created = define(client, account).json()
    client.post(f"/api/v1/strategies/{created['id']}/start")
    bob = key_client(make_user("bob"))
    operator = key_client(make_user("olga", role=Role.OPERATOR))

    assert bob.get("/api/v1/strategies").json()["results"] == []
    for method, path in [
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("post", "/start"),
        ("post", "/stop"),
        ("get", "/log"),
        ("get", "/marks"),
    ]:
        assert getattr(bob, method)(f"/api/v1/strategies/{created['id']}{path}").status_code == 404
    assert operator.post(f"/api/v1/strategies/{created['id']}/start").status_code == 404  # not theirs to start
    assert [s["id"] for s in operator.get("/api/v1/strategies").json()["results"]] == [created["id"]]

    stopped = operator.post(f"/api/v1/strategies/{created['id']}/stop")

    assert stopped.status_code == 200 and stopped.json()["status"] == StrategyStatus.STOPPED
    assert AuditEvent.objects.get(action="strategy.stop").actor_label == "olga"


def test_a_duplicate_name_is_a_409(market, alice):
    account, client = alice
    define(client, account)

    response = define(client, account)

    assert response.status_code == 409 and response.json()["code"] == "name_taken"
