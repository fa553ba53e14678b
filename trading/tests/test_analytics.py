"""Analytics: the portfolio summary and trading stats, checked against an independent calculation
over the rows the engine wrote, and the two API endpoints (permissions, bad input)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from django.db.models import Q
from django.utils import timezone

from marketdata.models import Asset, Instrument
from portal.choices import Role
from portal.errors import DomainError
from trading.analytics import analytics_period, portfolio_summary, trading_stats
from trading.models import Balance, Order, Position, Trade, TradingAccount
from trading.services import deposit_create, order_cancel

D = Decimal
pytestmark = pytest.mark.django_db


@dataclass
class Book:
    main: TradingAccount  # alice's first account: the trader under test
    algo: TradingAccount  # alice's second account, trading with the first
    bob: TradingAccount
    carol: TradingAccount


@pytest.fixture
def book(funded_account, place, market) -> Book:
    """Four accounts trading with each other through the engine.

    alice/Main buys 2 BTC @ 100 (part of a 3 BTC order, the rest canceled) and 1 @ 106 (average
    102), sells 1 @ 108 to her own Algo account (+6), 0.5 @ 97 (−2.5) and, as maker, 0.5 @ 104
    (+1); buys 2 of 3 ETH @ 50 (the rest stays open); has one order rejected and one resting.
    alice/Algo sells the BTC it bought from Main @ 95 (−13).
    """
    main = funded_account("alice", USDT="10000")
    algo = funded_account("alice", name="Algo", USDT="2000")
    bob = funded_account("bob", BTC="5", USDT="2000")
    carol = funded_account("carol", BTC="5", ETH="10", USDT="5000")

    place(bob, "SELL", qty="2", price="100")
    partly_filled = place(main, "BUY", qty="3", price="100")
    order_cancel(order=partly_filled, actor="test")
    place(carol, "SELL", qty="1", price="106")
    place(main, "BUY", qty="1", price="106")
    place(algo, "BUY", qty="1", price="108")
    place(main, "SELL", qty="1", price="108")
    place(bob, "BUY", qty="0.5", price="97")
    place(main, "SELL", qty="0.5", price="97")
    place(carol, "BUY", qty="1", price="95")
    place(algo, "SELL", qty="1", price="95")
    place(main, "SELL", qty="0.5", price="104")
    place(carol, "BUY", qty="0.5", price="104")
    place(main, "BUY", qty="1", price="100.005", expect_reject=True)
    place(main, "BUY", qty="0.1", price="96")
    place(carol, "SELL", qty="2", price="50", instrument=market.ethusdt)
    place(main, "BUY", qty="3", price="50", instrument=market.ethusdt)
    return Book(main=main, algo=algo, bob=bob, carol=carol)


# --- the independent calculation: plain Python over the stored rows ---------------------------


def _own_trades(account: TradingAccount, start: datetime, end: datetime) -> list[dict]:
    rows = []
    for trade in Trade.objects.filter(Q(maker_account=account) | Q(taker_account=account)).select_related("instrument"):
        if not start <= trade.executed_at < end:
            continue
        is_maker = trade.maker_account_id == account.pk
        rows.append(
            {
                "symbol": trade.instrument.symbol,
                "quote": trade.quote_quantity,
                "fee": trade.maker_fee if is_maker else trade.taker_fee,
                "pnl": trade.maker_realized_pnl if is_maker else trade.taker_realized_pnl,
            }
        )
    return rows


def _pct(part, whole) -> Decimal | None:
    return None if not whole else (D(part) * 100 / D(whole)).quantize(D("0.01"), ROUND_HALF_EVEN)


def _expected_stats(account: TradingAccount, start: datetime, end: datetime) -> dict:
    trades = _own_trades(account, start, end)
    wins = [row["pnl"] for row in trades if row["pnl"] > 0]
    losses = [row["pnl"] for row in trades if row["pnl"] < 0]
    orders = [order for order in Order.objects.filter(account=account) if start <= order.created_at < end]
    statuses = [order.status for order in orders]
    realized = sum((row["pnl"] for row in trades), D(0))
    fees = sum((row["fee"] for row in trades), D(0))
    unrealized = D(0)
    for position in Position.objects.filter(account=account).select_related("instrument"):
        last = position.instrument.last_price or position.instrument.reference_price
        unrealized += position.quantity * (last - position.average_price)
    symbols = sorted({row["symbol"] for row in trades})
    return {
        "orders": {
            "total": len(orders),
            "new": statuses.count("NEW"),
            "partially_filled": statuses.count("PARTIALLY_FILLED"),
            "filled": statuses.count("FILLED"),
            "canceled": statuses.count("CANCELED"),
            "rejected": statuses.count("REJECTED"),
            "expired": statuses.count("EXPIRED"),
            "fill_ratio_pct": _pct(statuses.count("FILLED"), len(orders)),
        },
        "trade_count": len(trades),
        "volume": sum((row["quote"] for row in trades), D(0)),
        "fees": fees,
        "realized_pnl": realized,
        "net_realized_pnl": realized - fees,
        "winning_trades": len(wins),
        "losing_trades": len(losses),
        "win_rate_pct": _pct(len(wins), len(wins) + len(losses)),
        "average_win": sum(wins) / len(wins) if wins else None,
        "average_loss": sum(losses) / len(losses) if losses else None,
        "unrealized_pnl": unrealized,
        "by_symbol": [
            (
                symbol,
                len([row for row in trades if row["symbol"] == symbol]),
                sum(row["quote"] for row in trades if row["symbol"] == symbol),
                sum(row["fee"] for row in trades if row["symbol"] == symbol),
                sum(row["pnl"] for row in trades if row["symbol"] == symbol),
            )
            for symbol in symbols
        ],
    }


def _actual_stats(stats) -> dict:
    return {
        "orders": vars(stats.orders),
        "trade_count": stats.trade_count,
        "volume": stats.volume,
        "fees": stats.fees,
        "realized_pnl": stats.realized_pnl,
        "net_realized_pnl": stats.net_realized_pnl,
        "winning_trades": stats.winning_trades,
        "losing_trades": stats.losing_trades,
        "win_rate_pct": stats.win_rate_pct,
        "average_win": stats.average_win,
        "average_loss": stats.average_loss,
        "unrealized_pnl": stats.unrealized_pnl,
        "by_symbol": [(r.symbol, r.trade_count, r.volume, r.fees, r.realized_pnl) for r in stats.by_symbol],
    }


def _all_time() -> tuple[datetime, datetime]:
    now = timezone.now()
    return now - timedelta(days=1), now + timedelta(seconds=1)


# --- trading stats -------------------------------------------------------------------------


def test_trading_stats_match_an_independent_calculation_and_the_numbers_worked_by_hand(book):
    start, end = _all_time()
    stats = trading_stats(account=book.main, start=start, end=end)

    assert _actual_stats(stats) == _expected_stats(book.main, start, end)
    # Worked by hand from the fixture's story (fees: maker 0.1 %, taker 0.2 % of the quote amount).
    assert vars(stats.orders) == {
        "total": 8,
        "new": 1,
        "partially_filled": 1,
        "filled": 4,
        "canceled": 1,
        "rejected": 1,
        "expired": 0,
        "fill_ratio_pct": D("50.00"),
    }
    assert stats.trade_count == 6
    assert stats.volume == D("614.5")  # 200 + 106 + 108 + 48.5 + 52 + 100
    assert stats.fees == D("1.177")  # 0.4 + 0.212 + 0.216 + 0.097 + 0.052 (maker) + 0.2
    assert stats.realized_pnl == D("4.5")  # +6 − 2.5 + 1
    assert stats.net_realized_pnl == D("3.323")
    assert (stats.winning_trades, stats.losing_trades, stats.win_rate_pct) == (2, 1, D("66.67"))
    assert (stats.average_win, stats.average_loss) == (D("3.5"), D("-2.5"))
    assert stats.unrealized_pnl == D("2")  # 1 BTC @ 102 marked at 104; 2 ETH @ 50 at 50
    assert [(r.symbol, r.trade_count, r.volume, r.fees, r.realized_pnl) for r in stats.by_symbol] == [
        ("BTCUSDT", 5, D("514.5"), D("0.977"), D("4.5")),
        ("ETHUSDT", 1, D("100"), D("0.2"), D("0")),
    ]
    assert stats.valuation_asset == "USDT" and (stats.start, stats.end) == (start, end)


def test_a_trade_between_two_accounts_of_one_user_counts_for_each_account_on_its_side(book):
    start, end = _all_time()
    stats = trading_stats(account=book.algo, start=start, end=end)

    assert _actual_stats(stats) == _expected_stats(book.algo, start, end)
    # Bought 1 @ 108 from Main as maker (fee 0.108), sold it @ 95 as taker (fee 0.19, −13).
    assert (stats.trade_count, stats.volume, stats.fees, stats.realized_pnl) == (2, D("203"), D("0.298"), D("-13"))
    assert (stats.winning_trades, stats.losing_trades, stats.win_rate_pct) == (0, 1, D("0.00"))
    assert (stats.average_win, stats.average_loss) == (None, D("-13"))

    # Alone in a period of its own, the trade between them is Main's (taker) and Algo's (maker).
    moment = timezone.now() - timedelta(days=3)
    Trade.objects.filter(maker_account=book.algo, taker_account=book.main).update(executed_at=moment)
    window = {"start": moment, "end": moment + timedelta(seconds=1)}
    as_taker, as_maker = trading_stats(account=book.main, **window), trading_stats(account=book.algo, **window)
    assert (as_taker.trade_count, as_taker.volume, as_taker.fees, as_taker.realized_pnl) == (1, 108, D("0.216"), 6)
    assert (as_maker.trade_count, as_maker.volume, as_maker.fees, as_maker.realized_pnl) == (1, 108, D("0.108"), 0)


def test_the_counterparties_stats_match_the_independent_calculation_too(book):
    start, end = _all_time()
    for account in (book.bob, book.carol):
        assert _actual_stats(trading_stats(account=account, start=start, end=end)) == _expected_stats(
            account, start, end
        )
    carol = trading_stats(account=book.carol, start=start, end=end)
    assert carol.realized_pnl == D("11") and carol.win_rate_pct == D("100.00")  # short 1 @ 106, covered @ 95


def test_the_period_includes_its_start_and_excludes_its_end(book):
    now = timezone.now()
    start, end = now - timedelta(days=10), now - timedelta(days=5)
    trades = list(Trade.objects.filter(Q(maker_account=book.main) | Q(taker_account=book.main)).order_by("id"))
    orders = list(Order.objects.filter(account=book.main).order_by("id"))
    Trade.objects.filter(pk=trades[0].pk).update(executed_at=start)  # the first buy: in
    Trade.objects.filter(pk=trades[2].pk).update(executed_at=end)  # the +6 sale: out
    Trade.objects.filter(pk=trades[3].pk).update(executed_at=start - timedelta(microseconds=1))  # −2.5: out
    Order.objects.filter(pk=orders[0].pk).update(created_at=start)
    Order.objects.filter(pk=orders[1].pk).update(created_at=end)

    stats = trading_stats(account=book.main, start=start, end=end)

    assert _actual_stats(stats) == _expected_stats(book.main, start, end)
    assert (stats.trade_count, stats.volume, stats.realized_pnl) == (1, D("200"), D("0"))
    assert vars(stats.orders)["total"] == 1 and stats.orders.canceled == 1
    assert stats.win_rate_pct is None and stats.average_win is None and stats.average_loss is None
    assert stats.unrealized_pnl == D("2")  # now's, whatever the period


def test_the_default_period_is_the_last_30_days(book):
    old = timezone.now() - timedelta(days=31)
    Trade.objects.filter(taker_account=book.algo).update(executed_at=old)  # the −13 sale
    stats = trading_stats(account=book.algo)
    assert stats.end - stats.start == timedelta(days=30)
    assert (stats.trade_count, stats.realized_pnl, stats.losing_trades) == (1, D("0"), 0)


def test_trading_stats_of_an_idle_account_are_zero_and_empty(funded_account):
    account = funded_account("dave", USDT="100")
    stats = trading_stats(account=account)
    assert vars(stats.orders) == {
        "total": 0,
        "new": 0,
        "partially_filled": 0,
        "filled": 0,
        "canceled": 0,
        "rejected": 0,
        "expired": 0,
        "fill_ratio_pct": None,
    }
    assert (stats.trade_count, stats.volume, stats.fees, stats.realized_pnl, stats.unrealized_pnl) == (0, 0, 0, 0, 0)
    assert stats.win_rate_pct is None and stats.by_symbol == []


def test_trading_stats_run_in_a_fixed_number_of_queries(book, django_assert_max_num_queries):
    with django_assert_max_num_queries(4):
        trading_stats(account=book.main)


# --- the period -----------------------------------------------------------------------------


def test_the_period_defaults_to_30_days_up_to_now_and_refuses_bad_ranges():
    now = datetime(2025, 3, 1, tzinfo=UTC)
    assert analytics_period(now=now) == analytics_period(start=now - timedelta(days=30), end=now)
    only_end = analytics_period(end=now)
    assert (only_end.start, only_end.end) == (now - timedelta(days=30), now)
    only_start = analytics_period(start=now - timedelta(days=2), now=now)
    assert (only_start.start, only_start.end) == (now - timedelta(days=2), now)
    assert analytics_period(start=now - timedelta(days=366), end=now).start == now - timedelta(days=366)

    with pytest.raises(DomainError) as backwards:
        analytics_period(start=now, end=now - timedelta(seconds=1))
    assert (backwards.value.code, backwards.value.status) == ("bad_range", 400)
    with pytest.raises(DomainError) as too_long:
        analytics_period(start=now - timedelta(days=366, seconds=1), end=now)
    assert (too_long.value.code, too_long.value.status) == ("range_too_long", 400)


# --- portfolio summary ----------------------------------------------------------------------


def test_portfolio_summary_values_each_asset_at_its_pairs_last_price_and_matches_an_independent_sum(book, market):
    xyz = Asset.objects.create(code="XYZ", name="Unlisted")
    deposit_create(account=book.main, asset=xyz, amount=D("7"), reason="test funding", actor="test-setup")

    summary = portfolio_summary(account=book.main)

    # Independent: each balance row × the last price of the asset's USDT pair (USDT itself at 1).
    price_of = {"USDT": D(1)}
    for instrument in Instrument.objects.filter(quote__code="USDT").select_related("base"):
        price_of[instrument.base.code] = instrument.last_price or instrument.reference_price
    rows = {
        row.asset.code: (row.free, row.locked, row.free + row.locked)
        for row in Balance.objects.filter(account=book.main).select_related("asset")
    }
    values = {code: (total * price_of[code]) for code, (_, _, total) in rows.items() if code in price_of}
    total_value = sum(values.values(), D(0))
    assert summary.total_value == total_value
    assert {h.asset: (h.free, h.locked, h.total) for h in summary.assets} == rows
    for holding in summary.assets:
        assert holding.price == price_of.get(holding.asset)
        assert holding.value == values.get(holding.asset)
        assert holding.allocation_pct == (_pct(values[holding.asset], total_value) if holding.asset in values else None)

    # Worked by hand: USDT 10000 − 200.4 − 106.212 + 107.784 + 48.403 + 51.948 − 100.2 (some of it locked
    # by the open BTC and ETH buys); BTC 1 at 104; ETH 2 at 50; XYZ has no USDT pair.
    assert rows["USDT"][2] == D("9801.323") and rows["USDT"][1] > 0
    assert summary.total_value == D("10005.323")
    assert [(h.asset, h.value) for h in summary.assets] == [
        ("USDT", D("9801.323")),
        ("BTC", D("104")),
        ("ETH", D("100")),
        ("XYZ", None),
    ]
    assert sum(h.allocation_pct for h in summary.assets if h.allocation_pct is not None) == D("100.00")

    positions = {p.symbol: p for p in summary.positions}
    assert (positions["BTCUSDT"].quantity, positions["BTCUSDT"].average_price) == (D("1"), D("102"))
    assert (positions["BTCUSDT"].last_price, positions["BTCUSDT"].market_value) == (D("104"), D("104"))
    assert (positions["BTCUSDT"].realized_pnl, positions["BTCUSDT"].unrealized_pnl) == (D("4.5"), D("2"))
    assert (positions["ETHUSDT"].quantity, positions["ETHUSDT"].unrealized_pnl) == (D("2"), D("0"))
    assert (summary.realized_pnl, summary.unrealized_pnl) == (D("4.5"), D("2"))


def test_before_any_trade_an_asset_is_valued_at_its_pairs_reference_price(funded_account, market):
    account = funded_account("erin", USDT="100", ETH="3")
    summary = portfolio_summary(account=account)
    assert [(h.asset, h.price, h.value, h.allocation_pct) for h in summary.assets] == [
        ("ETH", D("50"), D("150"), D("60.00")),
        ("USDT", D("1"), D("100"), D("40.00")),
    ]
    assert summary.total_value == D("250") and summary.positions == []


def test_an_empty_account_has_an_empty_portfolio(funded_account):
    summary = portfolio_summary(account=funded_account("frank"))
    assert (summary.total_value, summary.assets, summary.positions) == (D("0"), [], [])
    assert (summary.realized_pnl, summary.unrealized_pnl) == (D("0"), D("0"))


# --- the API --------------------------------------------------------------------------------


def _user(account: TradingAccount):
    return account.owner


def test_portfolio_summary_api_answers_the_default_account_with_decimals_as_strings(book, key_client):
    client = key_client(_user(book.main))
    response = client.get("/api/v1/analytics/portfolio-summary")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["account"] == book.main.pk and body["valuation_asset"] == "USDT"
    assert body["total_value"] == "10005.32300000"
    assert body["assets"][0] == {
        "asset": "USDT",
        "free": body["assets"][0]["free"],
        "locked": body["assets"][0]["locked"],
        "total": "9801.32300000",
        "price": "1.00000000",
        "value": "9801.32300000",
        "allocation_pct": "97.96",
    }
    assert {row["symbol"]: row["unrealized_pnl"] for row in body["positions"]} == {
        "BTCUSDT": "2.00000000",
        "ETHUSDT": "0.00000000",
    }
    assert (body["realized_pnl"], body["unrealized_pnl"]) == ("4.50000000", "2.00000000")


def test_trading_stats_api_answers_a_named_account_over_a_period(book, key_client):
    client = key_client(_user(book.main))
    start, end = _all_time()
    response = client.get(
        "/api/v1/analytics/trading-stats",
        {"account": book.algo.pk, "start": start.isoformat(), "end": end.isoformat()},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["account"] == book.algo.pk
    assert (body["trade_count"], body["volume"], body["fees"]) == (2, "203.00000000", "0.29800000")
    assert (body["realized_pnl"], body["win_rate_pct"], body["average_win"], body["average_loss"]) == (
        "-13.00000000",
        "0.00",
        None,
        "-13.00000000",
    )
    assert body["orders"]["total"] == 2 and body["orders"]["fill_ratio_pct"] == "100.00"
    assert [row["symbol"] for row in body["by_symbol"]] == ["BTCUSDT"]
    assert body["start"] == start.isoformat().replace("+00:00", "Z")


def test_trading_stats_api_takes_bare_dates_and_defaults_to_the_last_30_days(book, key_client):
    client = key_client(_user(book.main))
    old = client.get("/api/v1/analytics/trading-stats", {"start": "2020-01-01", "end": "2020-06-01"})
    assert old.status_code == 200, old.content
    assert (old.json()["start"], old.json()["trade_count"]) == ("2020-01-01T00:00:00Z", 0)
    default = client.get("/api/v1/analytics/trading-stats").json()
    assert default["account"] == book.main.pk and default["trade_count"] == 6
    parse = datetime.fromisoformat
    assert parse(default["end"]) - parse(default["start"]) == timedelta(days=30)


@pytest.mark.parametrize("path", ["/api/v1/analytics/portfolio-summary", "/api/v1/analytics/trading-stats"])
def test_another_users_account_is_404_to_a_trader_and_readable_by_an_operator(book, key_client, make_user, path):
    response = key_client(_user(book.main)).get(path, {"account": book.bob.pk})
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"

    operator = make_user(username="olga", role=Role.OPERATOR)
    response = key_client(operator).get(path, {"account": book.bob.pk})
    assert response.status_code == 200 and response.json()["account"] == book.bob.pk


def test_a_user_without_an_account_gets_a_404_problem(key_client, make_user, market):
    response = key_client(make_user(username="viv", role=Role.VIEWER), scopes=("read",)).get(
        "/api/v1/analytics/portfolio-summary"
    )
    assert response.status_code == 404 and response.json()["code"] == "NO_ACCOUNT"


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ({"start": "2025-03-02T00:00:00Z", "end": "2025-03-01T00:00:00Z"}, "bad_range", "end"),
        ({"start": "2024-01-01", "end": "2025-03-01"}, "range_too_long", "start"),
        ({"start": "yesterday"}, "validation_error", "start"),
        ({"end": "2025-02-30"}, "validation_error", "end"),
        ({"account": "abc"}, "validation_error", "account"),
    ],
)
def test_bad_periods_are_400_problems_naming_the_field(book, key_client, query, code, field):
    response = key_client(_user(book.main)).get("/api/v1/analytics/trading-stats", query)
    assert response.status_code == 400, response.content
    body = response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert body["code"] == code and field in body["errors"]


def test_the_analytics_endpoints_need_credentials(client, market):
    for path in ("/api/v1/analytics/portfolio-summary", "/api/v1/analytics/trading-stats"):
        response = client.get(path)
        assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
