"""The account's risk assessment (portal risk page, `risk/assessment`, `risk/limits`): exposures,
concentration, leverage and limit usage checked by hand, the documented score formula, warnings."""

from __future__ import annotations

from decimal import Decimal

import pytest

from riskmgmt.assessment import risk_assessment
from riskmgmt.services import kill_switch_engage, risk_limit_set

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def alice_holding(market, funded_account, place):
    """alice: 10,000 USDT deposited, buys 2 BTC at 100 and 3 ETH at 50 (taker fees 0.2 %)."""
    alice = funded_account("alice", USDT="10000")
    bob = funded_account("bob", BTC="10", ETH="10")
    place(bob, "SELL", qty="2", price="100")
    place(alice, "BUY", qty="2", price="100")
    place(bob, "SELL", qty="3", price="50", instrument=market.ethusdt)
    place(alice, "BUY", qty="3", price="50", instrument=market.ethusdt)
    return alice


def test_exposures_shares_leverage_and_limit_usage_are_what_the_positions_make(market, alice_holding, place):
    risk_limit_set(
        actor="test", account=alice_holding, instrument=market.btcusdt, values={"max_position_qty": D("2.5")}
    )
    risk_limit_set(actor="test", account=alice_holding, values={"max_open_orders": 4})
    place(alice_holding, "BUY", qty="1", price="45", instrument=market.ethusdt)  # rests below the market
    assessment = risk_assessment(alice_holding)

    assert [(row.symbol, row.exposure) for row in assessment.exposures] == [("BTCUSDT", D(200)), ("ETHUSDT", D(150))]
    assert [row.share for row in assessment.exposures] == [D("0.5714"), D("0.4286")]  # 200/350, 150/350
    # USDT: 10,000 − 200 − 150 − fees 0.4 + 0.3 = 9,649.30 (45 of it locked by the open order, still equity);
    # BTC 2 × 100, ETH 3 × 50.
    equity = D("9649.3") + D(200) + D(150)
    assert assessment.equity == equity
    assert assessment.gross_exposure == D(350) and assessment.net_exposure == D(350)
    assert assessment.leverage == (D(350) / equity).quantize(D("0.0001"))
    usage = {(row.limit, row.scope): (row.used, row.usage) for row in assessment.limits}
    assert usage[("max_position_qty", "BTCUSDT")] == (D(2), D("0.8"))
    assert usage[("max_open_orders", "account")] == (D(1), D("0.25"))

    expected = 100 * (D("0.25") * D("0.5714") + D("0.25") * assessment.leverage / 2 + D("0.30") * D("0.8") + 0)
    assert assessment.score == int(expected.to_integral_value()) and assessment.level == "medium"
    assert "BTCUSDT is 57% of your gross exposure." in assessment.warnings
    assert "max_position_qty (BTCUSDT) is 80% used." in assessment.warnings
    assert "No VaR has been computed for this account yet." in assessment.warnings


def test_an_engaged_kill_switch_is_the_first_warning(alice_holding):
    kill_switch_engage(account=alice_holding, reason="drill", actor="test")
    assert risk_assessment(alice_holding).warnings[0] == "A kill switch is engaged: new orders are refused."


def test_an_account_without_positions_scores_zero(funded_account):
    carol = funded_account("carol", USDT="50")
    assessment = risk_assessment(carol)
    assert assessment.exposures == [] and assessment.score == 0 and assessment.level == "low"
    assert assessment.warnings == [] and assessment.equity == D(50)


def test_the_api_serves_the_assessment_and_the_limits_of_the_users_own_accounts(
    market, alice_holding, funded_account, key_client
):
    risk_limit_set(actor="test", account=alice_holding, instrument=market.btcusdt, values={"max_position_qty": D("4")})
    client = key_client(alice_holding.owner)
    body = client.get(f"/api/v1/risk/assessment?account={alice_holding.pk}").json()
    assert body["account"] == alice_holding.pk and body["currency"] == "USDT"
    assert [row["symbol"] for row in body["exposures"]] == ["BTCUSDT", "ETHUSDT"]
    assert body["level"] in ("low", "medium", "high") and body["last_var"] is None
    assert client.get("/api/v1/risk/assessment").json()["account"] == alice_holding.pk  # the default account
    limits = client.get(f"/api/v1/risk/limits?account={alice_holding.pk}").json()
    assert {
        "limit": "max_position_qty",
        "scope": "BTCUSDT",
        "value": "4.00000000",
        "used": "2.00000000",
        "usage": "0.5000",
    } in limits
    mallory = funded_account("mallory", USDT="1")
    assert key_client(mallory.owner).get(f"/api/v1/risk/assessment?account={alice_holding.pk}").status_code == 404
    assert client.get("/api/v1/risk/limits?account=abc").status_code == 400
