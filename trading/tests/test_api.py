"""The trading API end to end through the test client: orders, fills, balances, positions, ledger,
accounts, public market data, and the operators' actions, with permissions and problem JSON."""

from decimal import Decimal

import pytest

from audit.models import AuditEvent
from portal.choices import Role
from trading.models import Order

D = Decimal
pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_account(funded_account):
    return funded_account("alice", USDT="10000", BTC="5")


@pytest.fixture
def alice(alice_account, key_client):
    return key_client(alice_account.owner)


@pytest.fixture
def bob_account(funded_account):
    return funded_account("bob", USDT="10000", BTC="5")


@pytest.fixture
def bob(bob_account, key_client):
    return key_client(bob_account.owner)


@pytest.fixture
def operator(users, key_client):
    return key_client(users[Role.OPERATOR])


def _order(client, **fields):
    body = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "95", **fields}
    return client.post("/api/v1/orders", body, format="json")


def test_place_a_limit_order_and_find_it_by_id_client_id_and_filters(alice, alice_account):
    response = _order(alice, client_order_id="bot-1")
    assert response.status_code == 201, response.json()
    order = response.json()
    assert order["status"] == "NEW" and order["price"] == "95.00000000" and order["account"] == alice_account.pk
    assert alice.get(f"/api/v1/orders/{order['id']}").json()["client_order_id"] == "bot-1"
    assert alice.get("/api/v1/orders/by-client-id/bot-1").json()["id"] == order["id"]
    listed = alice.get("/api/v1/orders", {"symbol": "BTCUSDT", "status": "NEW", "side": "BUY", "open": "true"}).json()
    assert [o["id"] for o in listed["results"]] == [order["id"]]
    assert alice.get("/api/v1/orders", {"side": "SELL"}).json()["results"] == []


def test_retrying_order_creation_with_the_same_idempotency_key_places_it_once(alice):
    first = alice.post(
        "/api/v1/orders",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "95"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    again = alice.post(
        "/api/v1/orders",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "95"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    assert Order.objects.count() == 1


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        ({"quantity": "abc"}, 400, "validation_error"),
        ({"quantity": "0.123456789"}, 400, "validation_error"),
        ({"quantity": "-1"}, 422, "INVALID_QUANTITY"),
        ({"quantity": "0"}, 422, "INVALID_QUANTITY"),
        ({"price": "95.001"}, 422, "TICK_SIZE"),
        ({"quantity": "1.0005"}, 422, "LOT_SIZE"),
        ({"quantity": "5000"}, 422, "LOT_SIZE"),
        ({"quantity": "0.005"}, 422, "MIN_NOTIONAL"),
        ({"symbol": "NOPEUSDT"}, 404, "UNKNOWN_SYMBOL"),
        ({"type": "MARKET", "price": None, "time_in_force": "GTC"}, 422, "INVALID_TIME_IN_FORCE"),
        ({"price": None}, 422, "PRICE_REQUIRED"),
        ({"type": "STOP_LOSS_LIMIT", "side": "SELL"}, 422, "STOP_PRICE_REQUIRED"),
        ({"price": "150"}, 422, "PRICE_BAND"),
        ({"quantity": "500"}, 422, "INSUFFICIENT_BALANCE"),
        ({"side": "HOLD"}, 400, "validation_error"),
    ],
)
def test_bad_orders_get_a_problem_with_a_reason_code(alice, fields, status, code):
    response = _order(alice, **fields)
    assert response.status_code == status, response.json()
    body = response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert body["code"] == code and body["status"] == status
    if status == 422 and code not in ("INVALID_QUANTITY",):
        stored = Order.objects.get(pk=body["order_id"])
        assert stored.status == "REJECTED" and stored.reject_reason == code
        assert AuditEvent.objects.filter(action="order.reject", target_id=str(stored.pk)).exists()
    elif status == 400:
        assert not Order.objects.exists()


def test_duplicate_client_order_id_among_open_orders_is_409(alice):
    assert _order(alice, client_order_id="dup").status_code == 201
    response = _order(alice, client_order_id="dup")
    assert response.status_code == 409 and response.json()["code"] == "DUPLICATE_CLIENT_ORDER_ID"


def test_order_on_a_halted_instrument_is_refused(alice, operator):
    assert operator.post("/api/v1/symbols/BTCUSDT/halt", {"reason": "maintenance"}, format="json").status_code == 200
    response = _order(alice)
    assert response.status_code == 422 and response.json()["code"] == "INSTRUMENT_HALTED"
    assert (
        operator.post("/api/v1/symbols/BTCUSDT/resume", {"reason": "done"}, format="json").json()["status"] == "TRADING"
    )
    assert _order(alice).status_code == 201


def test_a_trader_cannot_see_or_cancel_someone_elses_orders(alice, bob):
    order_id = _order(alice).json()["id"]
    assert bob.get(f"/api/v1/orders/{order_id}").status_code == 404
    response = bob.delete(f"/api/v1/orders/{order_id}")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert bob.get("/api/v1/orders").json()["results"] == []
    assert Order.objects.get(pk=order_id).status == "NEW"


def test_cancel_returns_the_canceled_order_and_a_filled_one_is_409_with_its_status(alice, bob):
    resting = _order(alice).json()
    assert alice.delete(f"/api/v1/orders/{resting['id']}").json()["status"] == "CANCELED"
    ask = _order(bob, side="SELL", price="100").json()
    _order(alice, price="100")
    response = bob.delete(f"/api/v1/orders/{ask['id']}")
    assert response.status_code == 409
    assert response.json()["code"] == "ORDER_NOT_OPEN" and response.json()["order_status"] == "FILLED"


def test_cancel_all_and_cancel_replace(alice):
    first = _order(alice).json()
    _order(alice, price="96")
    _order(alice, side="SELL", price="105", quantity="1")
    replaced = alice.post(
        f"/api/v1/orders/{first['id']}/cancel-replace",
        {"side": "BUY", "type": "LIMIT", "quantity": "2", "price": "94"},
        format="json",
    )
    assert replaced.status_code == 201 and replaced.json()["replaces"] == first["id"]
    canceled = alice.post("/api/v1/orders/cancel-all", {"symbol": "BTCUSDT", "side": "BUY"}, format="json").json()[
        "canceled"
    ]
    assert sorted(o["price"] for o in canceled) == ["94.00000000", "96.00000000"]
    assert Order.objects.filter(status="NEW").count() == 1


def test_fills_balances_positions_and_ledger_show_only_your_own(alice, bob, alice_account):
    _order(bob, side="SELL", price="100", quantity="2")
    _order(alice, price="100", quantity="2")
    fills = alice.get("/api/v1/trades").json()["results"]
    assert (
        len(fills) == 1
        and fills[0]["side"] == "BUY"
        and fills[0]["role"] == "TAKER"
        and fills[0]["fee"] == "0.40000000"
    )
    bob_fills = bob.get("/api/v1/trades").json()["results"]
    assert bob_fills[0]["side"] == "SELL" and bob_fills[0]["role"] == "MAKER"
    balances = {b["asset"]: b for b in alice.get("/api/v1/balances").json()}
    assert balances["BTC"]["free"] == "7.00000000" and balances["USDT"]["free"] == "9799.60000000"
    positions = alice.get("/api/v1/positions").json()
    assert positions[0]["quantity"] == "2.00000000" and positions[0]["average_price"] == "100.00000000"
    assert (
        positions[0]["market_value"] == "200.00000000"
        and positions[0]["unrealized_pnl"] == "0E-8"
        or D(positions[0]["unrealized_pnl"]) == 0
    )
    ledger = alice.get("/api/v1/ledger", {"asset": "USDT"}).json()["results"]
    assert {entry["account"] for entry in ledger} == {alice_account.pk}
    assert {"DEPOSIT", "LOCK", "TRADE", "FEE"} <= {entry["kind"] for entry in ledger}
    assert all(b["account"] == alice_account.pk for b in alice.get("/api/v1/balances").json())


def test_accounts_are_private_and_a_trader_opens_more(alice, bob, bob_account):
    assert [a["id"] for a in bob.get("/api/v1/accounts").json()["results"]] == [bob_account.pk]
    created = bob.post("/api/v1/accounts", {"name": "Swing"}, format="json")
    assert created.status_code == 201 and created.json()["stp_mode"] == "EXPIRE_TAKER"
    assert alice.get(f"/api/v1/accounts/{bob_account.pk}").status_code == 404
    response = _order(alice, account=bob_account.pk)
    assert response.status_code == 404


def test_public_market_data_needs_no_credentials(api_client, alice, bob):
    _order(alice, price="95", quantity="1")
    _order(alice, price="95", quantity="2")
    _order(bob, side="SELL", price="101")
    _order(bob, side="SELL", price="99", quantity="0.5")
    _order(alice, price="99", quantity="0.5")  # trades with bob's ask at 99
    assert api_client.get("/api/v1/exchanges").json()[0]["symbols"] == ["BTCUSDT", "ETHUSDT"]
    symbols = api_client.get("/api/v1/symbols").json()
    assert symbols[0]["symbol"] == "BTCUSDT" and symbols[0]["filters"][0]["filterType"] == "PRICE_FILTER"
    assert api_client.get("/api/v1/symbols/btcusdt").json()["tick_size"] == "0.01000000"
    depth = api_client.get("/api/v1/markets/BTCUSDT/depth", {"limit": 5}).json()
    assert depth["bids"] == [{"price": "95.00000000", "quantity": "3.00000000", "orders": 2}]
    assert depth["asks"] == [{"price": "101.00000000", "quantity": "1.00000000", "orders": 1}]
    tape = api_client.get("/api/v1/markets/BTCUSDT/trades").json()
    assert tape[0]["price"] == "99.00000000" and tape[0]["aggressor_side"] == "BUY"
    assert api_client.get("/api/v1/markets/NOPE/depth").json()["code"] == "UNKNOWN_SYMBOL"
    assert api_client.get("/api/v1/markets/BTCUSDT/depth", {"limit": "0"}).status_code == 400


def test_operators_deposit_and_withdraw_with_a_reason_traders_cannot(operator, alice, alice_account):
    body = {"account": alice_account.pk, "asset": "USDT", "amount": "100", "reason": "wire 9"}
    assert alice.post("/api/v1/deposits", body, format="json").status_code == 403
    response = operator.post("/api/v1/deposits", body, format="json")
    assert response.status_code == 201 and response.json()["free"] == "10100.00000000"
    missing = operator.post("/api/v1/withdrawals", {**body, "reason": ""}, format="json")
    assert missing.status_code == 400
    too_much = operator.post("/api/v1/withdrawals", {**body, "amount": "999999"}, format="json")
    assert too_much.status_code == 422 and too_much.json()["code"] == "INSUFFICIENT_BALANCE"


def test_operators_set_risk_limits_and_use_the_kill_switch(operator, alice, alice_account):
    assert alice.post("/api/v1/risk-limits", {"max_order_qty": "1"}, format="json").status_code == 403
    limit = operator.post("/api/v1/risk-limits", {"symbol": "BTCUSDT", "max_order_qty": "1.5"}, format="json")
    assert limit.status_code == 200 and limit.json()["scope"].startswith("instrument:")
    assert _order(alice, quantity="2").json()["code"] == "MAX_ORDER_QTY"
    open_id = _order(alice).json()["id"]
    switch = operator.post("/api/v1/kill-switches", {"account": alice_account.pk, "reason": "runaway"}, format="json")
    assert switch.status_code == 201 and switch.json()["canceled_orders"] == 1
    assert Order.objects.get(pk=open_id).status == "CANCELED"
    assert _order(alice).json()["code"] == "KILL_SWITCH"
    again = operator.post("/api/v1/kill-switches", {"account": alice_account.pk, "reason": "twice"}, format="json")
    assert again.status_code == 409
    released = operator.post(f"/api/v1/kill-switches/{switch.json()['id']}/release", {"reason": "ok"}, format="json")
    assert released.json()["engaged"] is False
    assert _order(alice).status_code == 201


def test_a_read_only_key_cannot_trade(alice_account, key_client):
    reader = key_client(alice_account.owner, scopes=("read",))
    response = _order(reader)
    assert response.status_code == 403 and response.json()["code"] == "api_key_scope"
    assert reader.get("/api/v1/orders").status_code == 200


def test_order_list_query_count_does_not_grow_with_rows(alice, django_assert_max_num_queries):
    for price in ("90", "91", "92", "93", "94"):
        _order(alice, price=price)
    with django_assert_max_num_queries(8):
        assert len(alice.get("/api/v1/orders").json()["results"]) == 5


def test_account_settings_fills_by_id_and_ledger_filters(alice, bob, alice_account):
    changed = alice.patch(f"/api/v1/accounts/{alice_account.pk}", {"stp_mode": "EXPIRE_BOTH"}, format="json")
    assert changed.status_code == 200 and changed.json()["stp_mode"] == "EXPIRE_BOTH"
    assert bob.patch(f"/api/v1/accounts/{alice_account.pk}", {"name": "mine"}, format="json").status_code == 404
    _order(bob, side="SELL", price="100")
    _order(alice, price="100", client_order_id="c-1")
    fill = alice.get("/api/v1/trades").json()["results"][0]
    assert alice.get(f"/api/v1/trades/{fill['id']}").json()["role"] == "TAKER"
    by_id = alice.get("/api/v1/orders/by-client-id/c-1", {"account": alice_account.pk}).json()
    assert by_id["status"] == "FILLED"
    assert alice.get("/api/v1/orders/by-client-id/nope").status_code == 404
    fees = alice.get("/api/v1/ledger", {"kind": "FEE"}).json()["results"]
    assert [entry["kind"] for entry in fees] == ["FEE"] and fees[0]["trade"] == fill["id"]


def test_operators_list_and_remove_limits_and_list_kill_switches(operator, alice, alice_account):
    created = operator.post("/api/v1/risk-limits", {"account": alice_account.pk, "max_open_orders": 1}, format="json")
    assert _order(alice).status_code == 201
    assert _order(alice, price="94").json()["code"] == "MAX_OPEN_ORDERS"
    assert [limit["scope"] for limit in operator.get("/api/v1/risk-limits").json()] == [f"account:{alice_account.pk}"]
    assert operator.delete(f"/api/v1/risk-limits/{created.json()['id']}").status_code == 204
    assert _order(alice, price="94").status_code == 201
    assert AuditEvent.objects.filter(action="risk_limit.delete").exists()
    operator.post("/api/v1/kill-switches", {"reason": "venue drill"}, format="json")
    switches = operator.get("/api/v1/kill-switches").json()
    assert switches[0]["scope"] == "venue" and switches[0]["canceled_orders"] == 2
    assert alice.get("/api/v1/kill-switches").status_code == 403


def test_operators_withdraw_through_the_ledger(operator, alice_account):
    body = {"account": alice_account.pk, "asset": "BTC", "amount": "1.5", "reason": "client payout"}
    response = operator.post("/api/v1/withdrawals", body, format="json")
    assert response.status_code == 201 and response.json()["free"] == "3.50000000"
    assert operator.post("/api/v1/deposits", {**body, "asset": "DOGE"}, format="json").json()["code"] == "UNKNOWN_ASSET"
