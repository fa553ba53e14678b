"""Report documents built from a real venue and read back: the CSV with the csv module, the XLSX
with openpyxl, the PDF with pypdf. Every figure is checked against what the test placed (or the
rows the engine wrote), the period bounds hold, a PDF caps its long tables while the CSV and XLSX
keep every row, and a spec no report can be built from is refused with its code."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db.models import Q
from django.utils import timezone
from openpyxl import load_workbook
from pypdf import PdfReader

from audit.models import AuditEvent
from portal.errors import DomainError
from portal.jobs import job_execute
from reports import documents
from reports.documents import CONTENT_TYPES, ReportSpec, report_build, report_filename
from riskmgmt.models import VarRun
from riskmgmt.services import risk_limit_set
from riskmgmt.tests.test_var_runs import daily_history
from riskmgmt.var_runs import var_run_execute, var_run_submit
from trading.models import Balance, Order, Position, Trade, TradingAccount
from trading.services import deposit_create, withdrawal_create

D = Decimal


@dataclass
class Fill:
    """One of alice's trades in the period, as the test placed it."""

    order: Order
    symbol: str
    side: str
    role: str
    price: Decimal
    quantity: Decimal


@dataclass
class Desk:
    alice: TradingAccount
    bob: TradingAccount
    start: datetime
    end: datetime
    #: alice's balances (free + locked) when the period starts.
    opening: dict[str, Decimal]
    fills: list[Fill]


@pytest.fixture
def desk(market, funded_account, place) -> Desk:
    """alice trades with bob once before the period, then in it: buys 2 BTC at 101 (taker), sells
    0.5 BTC at 105 (maker), buys 3 ETH at 50 (taker); deposits 500 USDT, withdraws 200 USDT and
    leaves an order open. The period runs from just before the deposit to a day from now."""
    alice = funded_account("alice", USDT="10000")
    bob = funded_account("bob", USDT="10000", BTC="10", ETH="10")
    place(bob, "SELL", qty="1", price="100")
    place(alice, "BUY", qty="1", price="100")
    opening = {
        code: free + locked
        for code, free, locked in Balance.objects.filter(account=alice).values_list("asset__code", "free", "locked")
    }
    start = timezone.now()
    deposit_create(account=alice, asset=market.usdt, amount=D("500"), reason="wire in", actor="test-setup")
    withdrawal_create(account=alice, asset=market.usdt, amount=D("200"), reason="wire out", actor="test-setup")
    place(bob, "SELL", qty="2", price="101")
    buy_btc = place(alice, "BUY", qty="2", price="101", client_order_id="alice-btc-buy")
    sell_btc = place(alice, "SELL", qty="0.5", price="105", client_order_id="alice-btc-sell")
    place(bob, "BUY", qty="0.5", price="105")
    place(bob, "SELL", qty="3", price="50", instrument=market.ethusdt)
    buy_eth = place(alice, "BUY", qty="3", price="50", instrument=market.ethusdt, client_order_id="alice-eth-buy")
    place(alice, "BUY", qty="1", price="90")
    fills = [
        Fill(buy_btc, "BTCUSDT", "BUY", "taker", D("101"), D("2")),
        Fill(sell_btc, "BTCUSDT", "SELL", "maker", D("105"), D("0.5")),
        Fill(buy_eth, "ETHUSDT", "BUY", "taker", D("50"), D("3")),
    ]
    return Desk(alice, bob, start, timezone.now() + timedelta(days=1), opening, fills)


@pytest.fixture
def var_run(desk, market) -> VarRun:
    """A historical VaR run of alice's positions (daily history of both pairs), computed by its
    job, and a limit on her account."""
    daily_history(market.btcusdt, seed=1)
    daily_history(market.ethusdt, seed=2)
    risk_limit_set(actor="test-setup", account=desk.alice, values={"max_open_orders": 10})
    run = var_run_submit(
        user=desk.alice.owner,
        account_id=desk.alice.pk,
        method="historical",
        confidence=0.99,
        horizon_days=1,
        lookback_days=250,
    )
    job_execute(str(run.job_id), var_run_execute)
    run.refresh_from_db()
    assert run.var is not None
    return run


def spec_of(desk: Desk, kind: str, format: str, **changes) -> ReportSpec:
    values = {
        "kind": kind,
        "format": format,
        "start": desk.start,
        "end": desk.end,
        "account_id": None if kind == "audit" else desk.alice.pk,
        "requested_by": "alice",
        **changes,
    }
    return ReportSpec(**values)


def build(spec: ReportSpec, tmp_path: Path) -> tuple[documents.ReportOutcome, Path, list[tuple[float, str]]]:
    path = tmp_path / report_filename(spec)
    calls: list[tuple[float, str]] = []
    outcome = report_build(spec, path, progress=lambda fraction, message: calls.append((fraction, message)))
    return outcome, path, calls


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as text:
        return list(csv.reader(text))


def read_xlsx(path: Path) -> dict[str, list[tuple]]:
    workbook = load_workbook(path)
    return {sheet.title: list(sheet.iter_rows(values_only=True)) for sheet in workbook.worksheets}


def read_pdf(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def as_records(rows: list[tuple]) -> list[dict]:
    header, *body = rows
    return [dict(zip(header, row, strict=True)) for row in body]


def summary_of(rows: list[tuple]) -> dict:
    return {row[0]: row[1] for row in rows if row and len(row) > 1 and row[0] is not None}


def own_fee(trade: Trade, account: TradingAccount) -> Decimal:
    return trade.maker_fee if trade.maker_account_id == account.pk else trade.taker_fee


def own_pnl(trade: Trade, account: TradingAccount) -> Decimal:
    return trade.maker_realized_pnl if trade.maker_account_id == account.pk else trade.taker_realized_pnl


def trades_in_period(desk: Desk) -> list[Trade]:
    mine = Q(maker_account=desk.alice) | Q(taker_account=desk.alice)
    period = Q(executed_at__gte=desk.start, executed_at__lt=desk.end)
    return list(Trade.objects.filter(mine, period).order_by("executed_at", "id"))


def number(value) -> Decimal:
    """A spreadsheet number back as a Decimal (floats through their shortest text)."""
    return D(str(value))


# -- statement --------------------------------------------------------------------------------


def test_statement_csv_lists_the_accounts_side_of_every_trade_of_the_period_and_nothing_before(desk, tmp_path):
    outcome, path, _ = build(spec_of(desk, "statement", "csv"), tmp_path)

    header, *rows = read_csv(path)
    assert header == [
        "executed_at",
        "trade_id",
        "symbol",
        "side",
        "role",
        "price",
        "quantity",
        "quote_quantity",
        "fee",
        "realized_pnl",
    ]
    trades = trades_in_period(desk)
    assert outcome.rows == len(rows) == len(desk.fills) == 3
    for row, fill, trade in zip(rows, desk.fills, trades, strict=True):
        record = dict(zip(header, row, strict=True))
        assert (record["symbol"], record["side"], record["role"]) == (fill.symbol, fill.side, fill.role)
        assert D(record["price"]) == fill.price and D(record["quantity"]) == fill.quantity
        assert D(record["quote_quantity"]) == fill.price * fill.quantity
        assert D(record["fee"]) == own_fee(trade, desk.alice)
        assert D(record["realized_pnl"]) == own_pnl(trade, desk.alice)
        assert datetime.fromisoformat(record["executed_at"]) == trade.executed_at
    # amounts print as the portal prints them: no trailing zeros, never an exponent
    assert rows[0][5] == "101" and rows[1][6] == "0.5" and rows[2][9] == "0"
    start, end = (moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") for moment in (desk.start, desk.end))
    assert outcome.title == f"Account statement, {desk.alice}, {start} to {end}"


def test_statement_xlsx_balances_at_period_end_equal_the_balance_rows_and_at_start_the_balances_then(desk, tmp_path):
    _, path, _ = build(spec_of(desk, "statement", "xlsx"), tmp_path)
    sheets = read_xlsx(path)

    assert list(sheets)[0] == "Summary"
    assert {"Balances", "Deposits and withdrawals", "Portfolio now", "Positions now", "Trades"} <= set(sheets)
    balances = {record["Asset"]: record for record in as_records(sheets["Balances"])}
    for row in Balance.objects.filter(account=desk.alice).select_related("asset"):
        record = balances[row.asset.code]
        assert number(record["At period end"]) == row.free + row.locked
        assert number(record["Free now"]) == row.free and number(record["Locked now"]) == row.locked
        assert number(record["At period start"]) == desk.opening.get(row.asset.code, D(0))
    assert number(balances["USDT"]["Locked now"]) > 0  # the open order's lock

    movements = as_records(sheets["Deposits and withdrawals"])
    assert [(m["Kind"], m["Asset"], number(m["Amount"]), m["Reason"]) for m in movements] == [
        ("DEPOSIT", "USDT", D("500"), "wire in"),
        ("WITHDRAWAL", "USDT", D("-200"), "wire out"),
    ]
    summary = summary_of(sheets["Summary"])
    assert summary["Account"] == str(desk.alice) and summary["Owner"] == "alice"
    assert summary["Requested by"] == "alice" and summary["Valuation asset"] == "USDT"
    assert number(summary["Deposits (USDT)"]) == D("500")
    assert number(summary["Withdrawals (USDT)"]) == D("200")
    assert number(summary["Traded volume (USDT)"]) == D("404.5")
    trades = trades_in_period(desk)
    assert number(summary["Fees paid (USDT)"]) == sum(own_fee(t, desk.alice) for t in trades)
    assert number(summary["Realized P&L (USDT)"]) == sum(own_pnl(t, desk.alice) for t in trades)
    assert summary["Trades in the period"] == 3

    positions = {record["Symbol"]: record for record in as_records(sheets["Positions now"])}
    for position in Position.objects.filter(account=desk.alice).select_related("instrument"):
        assert number(positions[position.instrument.symbol]["Quantity"]) == position.quantity
        assert number(positions[position.instrument.symbol]["Realized P&L"]) == position.realized_pnl
    assert number(positions["BTCUSDT"]["Quantity"]) == D("2.5")

    trade_rows = as_records(sheets["Trades"])
    assert [(r["Symbol"], r["Side"], number(r["Price"]), number(r["Quantity"])) for r in trade_rows] == [
        (f.symbol, f.side, f.price, f.quantity) for f in desk.fills
    ]
    first = trade_rows[0]["Time"]
    assert isinstance(first, datetime) and first.tzinfo is None
    assert abs(first - trades[0].executed_at.astimezone(UTC).replace(tzinfo=None)) < timedelta(milliseconds=1)
    assert isinstance(trade_rows[0]["Price"], int | float)


def test_statement_pdf_has_the_header_balances_trades_totals_and_both_charts(desk, tmp_path):
    outcome, path, _ = build(spec_of(desk, "statement", "pdf"), tmp_path)
    text = read_pdf(path)

    assert path.read_bytes().startswith(b"%PDF")
    for expected in (
        "Account statement",
        str(desk.alice),
        "alice",
        "Trades in the period",
        "Traded volume (USDT)",
        "404.5",
        "101",
        "0.5",
        "wire in",
        "Allocation now (USDT)",
        "Realized P&L per day (USDT)",
        "page 1 of",
    ):
        assert expected in text, expected
    assert outcome.rows == 3


def test_an_account_without_trades_gets_every_format_with_empty_tables(market, funded_account, tmp_path):
    carol = funded_account("carol", USDT="100")
    spec = ReportSpec("statement", "csv", timezone.now() - timedelta(days=3), timezone.now(), carol.pk, "carol")
    outcome, path, _ = build(spec, tmp_path)
    assert outcome.rows == 0 and read_csv(path) == [
        [
            "executed_at",
            "trade_id",
            "symbol",
            "side",
            "role",
            "price",
            "quantity",
            "quote_quantity",
            "fee",
            "realized_pnl",
        ]
    ]

    _, path, _ = build(replace(spec, format="xlsx"), tmp_path)
    assert as_records(read_xlsx(path)["Trades"]) == []

    _, path, _ = build(replace(spec, format="pdf"), tmp_path)
    text = read_pdf(path)
    assert "Trades in the period" in text and "Realized P&L per day (USDT)" in text and "USDT 100 %" in text


# -- blotter ----------------------------------------------------------------------------------


def test_blotter_csv_has_one_row_per_trade_with_the_accounts_order_role_and_the_aggressor(desk, tmp_path):
    outcome, path, _ = build(spec_of(desk, "blotter", "csv"), tmp_path)
    header, *rows = read_csv(path)
    records = [dict(zip(header, row, strict=True)) for row in rows]

    assert outcome.rows == len(records) == 3
    by_order = {int(record["order_id"]): record for record in records}
    assert set(by_order) == {fill.order.pk for fill in desk.fills}
    for fill in desk.fills:
        record = by_order[fill.order.pk]
        assert record["client_order_id"] == fill.order.client_order_id
        assert (record["side"], record["role"]) == (fill.side, fill.role)
        # the taker is the aggressor: alice's side when she took, bob's (the other) when she made
        aggressor = fill.side if fill.role == "taker" else ("SELL" if fill.side == "BUY" else "BUY")
        assert record["aggressor_side"] == aggressor
        assert record["fee_asset"] == "USDT"
    assert sum(D(record["quote_quantity"]) for record in records) == sum(f.price * f.quantity for f in desk.fills)
    assert sum(D(record["quote_quantity"]) for record in records) == D("404.5")


def test_blotter_xlsx_totals_per_symbol_add_up_the_trades(desk, tmp_path):
    _, path, _ = build(spec_of(desk, "blotter", "xlsx"), tmp_path)
    sheets = read_xlsx(path)

    assert list(sheets) == ["Summary", "Volume per day", "Totals per symbol", "Trades"]
    totals = {record["Symbol"]: record for record in as_records(sheets["Totals per symbol"])}
    assert number(totals["BTCUSDT"]["Volume (quote)"]) == D("2") * 101 + D("0.5") * 105
    assert number(totals["ETHUSDT"]["Volume (quote)"]) == D("150")
    assert (number(totals["BTCUSDT"]["Bought"]), number(totals["BTCUSDT"]["Sold"])) == (D("2"), D("0.5"))
    assert number(totals["BTCUSDT"]["Net quantity"]) == D("1.5")
    assert (totals["BTCUSDT"]["As maker"], totals["BTCUSDT"]["As taker"]) == (1, 1)
    trades = trades_in_period(desk)
    assert sum(number(record["Fees (quote)"]) for record in totals.values()) == sum(
        own_fee(t, desk.alice) for t in trades
    )
    summary = summary_of(sheets["Summary"])
    assert (summary["Trades"], summary["As maker"], summary["As taker"]) == (3, 1, 2)
    days = as_records(sheets["Volume per day"])
    assert sum(number(day["Volume (USDT)"]) for day in days) == D("404.5")
    assert len(days) == (desk.end.date() - desk.start.date()).days + 1


def test_blotter_pdf_shows_the_trades_the_totals_and_the_volume_chart(desk, tmp_path):
    _, path, _ = build(spec_of(desk, "blotter", "pdf"), tmp_path)
    text = read_pdf(path)

    for expected in (
        "Trade blotter",
        str(desk.alice),
        "Totals per symbol",
        "Traded volume per day (USDT)",
        "alice-btc-buy",
        "alice-eth-buy",
        "404.5",
        "maker",
        "taker",
    ):
        assert expected in text, expected


def test_a_pdf_table_stops_at_the_cap_and_says_how_many_rows_the_csv_and_xlsx_hold(desk, tmp_path, monkeypatch):
    monkeypatch.setattr(documents, "PDF_MAX_ROWS", 2)
    outcome, path, _ = build(spec_of(desk, "blotter", "pdf"), tmp_path)
    text = read_pdf(path)
    assert outcome.rows == 3
    assert "… 1 more rows: download the CSV or XLSX for all of them." in text
    assert "alice-btc-buy" in text and "alice-eth-buy" not in text  # the third trade

    _, csv_path, _ = build(spec_of(desk, "blotter", "csv"), tmp_path)
    assert len(read_csv(csv_path)) == 1 + 3
    _, xlsx_path, _ = build(spec_of(desk, "blotter", "xlsx"), tmp_path)
    assert len(as_records(read_xlsx(xlsx_path)["Trades"])) == 3


def test_a_long_period_is_charted_per_month(desk, tmp_path):
    spec = spec_of(desk, "blotter", "xlsx", end=desk.start + timedelta(days=200))
    _, path, _ = build(spec, tmp_path)
    months = as_records(read_xlsx(path)["Volume per month"])
    assert months[0]["Month"].date() == desk.start.date().replace(day=1)
    assert sum(number(month["Volume (USDT)"]) for month in months) == D("404.5")

    _, pdf_path, _ = build(replace(spec, format="pdf"), tmp_path)
    assert "Traded volume per month (USDT)" in read_pdf(pdf_path)


# -- risk -------------------------------------------------------------------------------------


def test_risk_csv_has_the_exposures_and_the_limits_as_two_blocks(desk, var_run, tmp_path):
    outcome, path, _ = build(spec_of(desk, "risk", "csv"), tmp_path)
    rows = read_csv(path)

    blank = rows.index([])
    exposures, limits = rows[:blank], rows[blank + 1 :]
    assert exposures[0] == ["Exposures"] and exposures[1] == ["symbol", "quantity", "price", "exposure", "share"]
    assert limits[0] == ["Limits"] and limits[1] == ["limit", "scope", "value", "used", "usage"]
    # alice holds 2.5 BTC last traded at 105 and 3 ETH last traded at 50
    assert [(r[0], D(r[1]), D(r[2]), D(r[3])) for r in exposures[2:]] == [
        ("BTCUSDT", D("2.5"), D("105"), D("262.5")),
        ("ETHUSDT", D("3"), D("50"), D("150")),
    ]
    assert sum(D(r[4]) for r in exposures[2:]) == 1
    open_orders = next(r for r in limits[2:] if r[0] == "max_open_orders")
    assert (open_orders[1], D(open_orders[2]), D(open_orders[3]), D(open_orders[4])) == (
        "account",
        D(10),
        D(Order.objects.filter(account=desk.alice, status="NEW").count()),
        D("0.1"),
    )
    assert outcome.rows == len(exposures) - 2 + len(limits) - 2


def test_risk_xlsx_lists_the_var_runs_of_the_period_with_their_backtest_and_the_histogram(desk, var_run, tmp_path):
    _, path, _ = build(spec_of(desk, "risk", "xlsx"), tmp_path)
    sheets = read_xlsx(path)

    assert list(sheets) == ["Summary", "Warnings", "Exposures", "Limits", "VaR runs", "Histogram"]
    (run,) = as_records(sheets["VaR runs"])
    assert (run["Method"], number(run["Confidence"]), run["Horizon (d)"]) == ("historical", D("0.99"), 1)
    assert number(run["VaR"]) == var_run.var and number(run["ES"]) == var_run.es
    assert run["Scenarios"] == var_run.scenarios == 250
    assert run["Breaches"] == var_run.backtest["breaches"]
    assert run["Backtest verdict"] == var_run.backtest["verdict"]
    histogram = as_records(sheets["Histogram"])
    assert sum(row["Scenarios"] for row in histogram) == var_run.scenarios
    assert [row["From"] for row in histogram] == pytest.approx(var_run.histogram["edges"][:-1])
    summary = summary_of(sheets["Summary"])
    assert number(summary["Gross exposure (USDT)"]) == D("412.5")
    assert summary["VaR runs in the period"] == 1 and summary["Risk level"] in ("low", "medium", "high")


def test_risk_pdf_shows_the_assessment_the_var_and_the_histogram_chart(desk, var_run, tmp_path):
    _, path, _ = build(spec_of(desk, "risk", "pdf"), tmp_path)
    text = read_pdf(path)

    for expected in (
        "Risk report",
        str(desk.alice),
        "Assessment now",
        "262.5",
        "max_open_orders",
        format(var_run.var.normalize(), "f"),
        "Scenario P&L of the newest VaR run (USDT, historical, 250 scenarios)",
        var_run.backtest["verdict"],
    ):
        assert expected in text, expected


def test_var_runs_outside_the_period_are_left_out(desk, var_run, tmp_path):
    spec = spec_of(desk, "risk", "xlsx", start=desk.start - timedelta(days=2), end=desk.start)
    _, path, _ = build(spec, tmp_path)
    sheets = read_xlsx(path)
    assert as_records(sheets["VaR runs"]) == [] and as_records(sheets["Histogram"]) == []
    _, pdf_path, _ = build(replace(spec, format="pdf"), tmp_path)
    assert "No VaR run in the period." in read_pdf(pdf_path)


# -- audit ------------------------------------------------------------------------------------


def test_audit_csv_holds_every_event_of_the_period_in_seq_order(desk, tmp_path):
    outcome, path, _ = build(spec_of(desk, "audit", "csv"), tmp_path)
    header, *rows = read_csv(path)

    expected = list(AuditEvent.objects.filter(occurred_at__gte=desk.start).order_by("seq"))
    assert header[:5] == ["seq", "occurred_at", "actor_type", "actor_label", "action"]
    assert [int(row[0]) for row in rows] == [event.seq for event in expected]
    assert outcome.rows == len(rows) > 0
    actions = {row[4] for row in rows}
    assert {"ledger.deposit", "ledger.withdrawal"} <= actions
    assert "account.create" not in actions  # before the period
    assert AuditEvent.objects.filter(action="account.create").exists()
    deposit = next(row for row in rows if row[4] == "ledger.deposit")
    assert (deposit[5], deposit[6], deposit[7]) == ("trading.tradingaccount", str(desk.alice.pk), str(desk.alice))


def test_audit_xlsx_counts_the_events_per_action(desk, tmp_path):
    _, path, _ = build(spec_of(desk, "audit", "xlsx"), tmp_path)
    sheets = read_xlsx(path)

    assert list(sheets) == ["Summary", "Per action", "Events"]
    events = AuditEvent.objects.filter(occurred_at__gte=desk.start)
    counted = Counter(events.values_list("action", flat=True))
    assert {row["Action"]: row["Events"] for row in as_records(sheets["Per action"])} == counted
    summary = summary_of(sheets["Summary"])
    assert summary["Events"] == sum(counted.values()) == len(as_records(sheets["Events"]))
    assert summary["Scope"] == "The whole venue"
    assert (summary["First seq"], summary["Last seq"]) == (
        min(e.seq for e in events),
        max(e.seq for e in events),
    )


def test_audit_pdf_shows_the_events_and_the_chart_per_action(desk, tmp_path):
    _, path, _ = build(spec_of(desk, "audit", "pdf"), tmp_path)
    text = read_pdf(path)
    for expected in ("Audit report", "The whole venue", "Events per action", "ledger.withdrawal", "page 1 of"):
        assert expected in text, expected


# -- specs, names, progress -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        (lambda desk: {"kind": "summary"}, "unknown_report"),
        (lambda desk: {"format": "docx"}, "unknown_format"),
        (lambda desk: {"end": desk.start}, "bad_range"),
        (lambda desk: {"end": desk.start - timedelta(seconds=1)}, "bad_range"),
        (lambda desk: {"start": desk.start.replace(tzinfo=None)}, "bad_range"),
        (lambda desk: {"account_id": None}, "account_required"),
        (lambda desk: {"kind": "audit", "account_id": desk.alice.pk}, "account_not_applicable"),
    ],
    ids=["kind", "format", "empty", "reversed", "naive", "no-account", "audit-with-account"],
)
def test_a_spec_no_report_can_be_built_from_is_refused_with_its_code(desk, tmp_path, changes, code):
    spec = replace(spec_of(desk, "statement", "pdf"), **changes(desk))
    with pytest.raises(DomainError) as refused:
        build(spec, tmp_path)
    assert (refused.value.code, refused.value.status) == (code, 400)
    assert list(tmp_path.iterdir()) == []


def test_an_account_that_does_not_exist_is_not_found(desk, tmp_path):
    with pytest.raises(DomainError) as refused:
        build(spec_of(desk, "blotter", "csv", account_id=desk.alice.pk + 1000), tmp_path)
    assert (refused.value.code, refused.value.status) == ("not_found", 404)


def test_file_names_say_the_kind_the_account_and_the_period():
    november = datetime(2026, 11, 1, tzinfo=UTC)
    december = datetime(2026, 12, 1, tzinfo=UTC)
    assert report_filename(ReportSpec("statement", "pdf", november, december, 42, "a")) == (
        "statement-42-2026-11-01-2026-11-30.pdf"
    )
    assert report_filename(
        ReportSpec("audit", "xlsx", november, december + timedelta(hours=9, minutes=30), None, "a")
    ) == ("audit-2026-11-01-2026-12-01T093000.xlsx")
    assert CONTENT_TYPES["xlsx"].endswith("spreadsheetml.sheet")


def test_progress_is_reported_per_section_and_every_few_rows_from_zero_to_one(desk, tmp_path, monkeypatch):
    monkeypatch.setattr(documents, "PROGRESS_ROWS", 2)
    outcome, _, calls = build(spec_of(desk, "audit", "xlsx"), tmp_path)

    fractions = [fraction for fraction, _ in calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions) and all(0 <= fraction <= 1 for fraction in fractions)
    assert sum("Events:" in message for _, message in calls) >= outcome.rows // 2
