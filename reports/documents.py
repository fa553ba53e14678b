"""Report documents (DESIGN §11): the account statement, the trade blotter, the risk report and the
audit report, each written as PDF (ReportLab, with its own charts), CSV or XLSX (openpyxl) by
`report_build`. Who may ask for which report, the job that runs it, schedules and e-mails live
elsewhere; this module reads the database and writes one file.

A report is first assembled as format-neutral blocks (facts, notes, charts, tables); a table's
rows are read from the database only when a writer asks for them, `CHUNK_ROWS` at a time, and go
straight to the file, so a report of a million trades never holds them in memory:

- CSV: the report's main table (a statement's or a blotter's trades, a risk report's exposures
  and limits as two blocks, an audit report's events), a header row first, UTF-8.
- XLSX: a "Summary" sheet (header and figures), then one sheet per table, in a write-only
  workbook. Amounts are numbers, times naive UTC datetimes with a date format.
- PDF: every block in order, on landscape A4, "page N of M" in the footer. A table shows at
  most `PDF_MAX_ROWS` rows and says how many more the CSV or XLSX holds.

Append-only tables (trades, ledger entries, audit events) are read up to their largest key when
the report starts, so the counts in its summary match its tables even while the venue trades.
Amounts print as the portal prints them (`portal.templatetags.amounts`); times are UTC.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape

from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    Count,
    DecimalField,
    F,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import TruncDate
from django.utils import timezone
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.piecharts import Pie
from reportlab.graphics.shapes import Drawing, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from audit.models import AuditEvent
from portal.decimals import AMOUNT_DIGITS, AMOUNT_PLACES
from portal.errors import NotFoundError
from portal.templatetags.amounts import amount as amount_filter
from reports.specs import (  # noqa: F401 - re-exported: the document's vocabulary
    ACCOUNT_REPORTS,
    CONTENT_TYPES,
    REPORT_FORMATS,
    REPORT_KINDS,
    REPORT_TITLES,
    ReportSpec,
    _stamp,
    report_filename,
    report_spec_check,
)
from riskmgmt.assessment import risk_assessment
from riskmgmt.models import VarRun
from trading.analytics import VALUATION_ASSET, portfolio_summary
from trading.choices import LedgerKind, Side
from trading.models import Balance, LedgerEntry, Trade, TradingAccount

#: The most rows a PDF table shows: a PDF of a million rows is unusable, the CSV and XLSX hold them all.
PDF_MAX_ROWS = 5_000
#: Rows read per round trip to the database.
CHUNK_ROWS = 2_000
#: Rows written between two progress reports.
PROGRESS_ROWS = 2_000
#: VaR runs a risk report lists (the newest ones of the period).
VAR_RUNS_LISTED = 20
#: A longer period is charted per month instead of per day (bars stay readable).
DAILY_CHART_MAX_DAYS = 92
#: Bars of the audit report's chart; the rarer actions are added up as "other".
ACTION_CHART_BARS = 20
#: Ledger entries a statement lists as money moved in or out of the account.
TRANSFER_KINDS = (LedgerKind.DEPOSIT, LedgerKind.WITHDRAWAL, LedgerKind.ADJUSTMENT)
_TRANSFER_LABELS: dict[str, str] = {
    LedgerKind.DEPOSIT: "Deposits",
    LedgerKind.WITHDRAWAL: "Withdrawals",
    LedgerKind.ADJUSTMENT: "Adjustments",
}

#: Called with the fraction done (0–1) and what is being done; may raise to stop the build.
Progress = Callable[[float, str], None]

_AMOUNT = DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
_XLSX_DATETIME = "yyyy-mm-dd hh:mm:ss"
_XLSX_DATE = "yyyy-mm-dd"
_PAGE = landscape(A4)
_MARGIN = 1.5 * cm
_FRAME_WIDTH = _PAGE[0] - 2 * _MARGIN
_PDF_FONT_SIZE = 7
_PDF_ROW_HEIGHT = 10
_PDF_CELL_PADDING = 6
_POSITIVE, _NEGATIVE = colors.HexColor("#2e7d32"), colors.HexColor("#c62828")
_SERIES = colors.HexColor("#1565c0")
_STYLES = getSampleStyleSheet()
_HEADING = ParagraphStyle("section", parent=_STYLES["Heading2"], keepWithNext=1, spaceBefore=10)
_BODY = _STYLES["BodyText"]
_PIE_COLOURS = [
    colors.HexColor(code)
    for code in ("#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f", "#9e9d24", "#4e342e")
]


@dataclass(frozen=True)
class ReportOutcome:
    """What the built document holds: the rows of its main table, the one its CSV holds (trades,
    audit events; a risk report's exposures and limits together), all of them also where a PDF
    shows only the first `PDF_MAX_ROWS`; and its title ("Account statement, Main (#42), 2026-11-01
    to 2026-12-01")."""

    rows: int
    title: str


def report_build(spec: ReportSpec, path: Path, *, progress: Progress) -> ReportOutcome:
    """Write the report `spec` asks for to `path` (and nowhere else that outlives the call),
    reporting progress per section and every `PROGRESS_ROWS` rows. Refused as `report_spec_check`
    says; an account that does not exist is a 404 (`not_found`)."""
    report_spec_check(spec)
    progress(0.0, "Reading the figures")
    document = _ASSEMBLERS[spec.kind](spec)
    _WRITERS[spec.format](document, path, progress)
    progress(1.0, "Done")
    return ReportOutcome(rows=sum(table.count for table in document.csv_tables), title=document.title)


# -- the blocks of a document -----------------------------------------------------------------

#: How a column's values are written: text, an amount (Decimal), a count, a float (from JSON),
#: a time (aware datetime) or a day.
_ColumnKind = Literal["text", "amount", "int", "float", "time", "date"]


@dataclass(frozen=True)
class _Column:
    name: str
    label: str
    kind: _ColumnKind = "text"
    #: Longest text a PDF cell shows (0: no limit); the CSV and XLSX hold it whole.
    pdf_chars: int = 0

    @property
    def numeric(self) -> bool:
        return self.kind in ("amount", "int", "float")


_RowSource = Callable[[int | None], Iterator[Sequence[Any]]]


@dataclass(frozen=True)
class _Table:
    """A table of `count` rows; `rows(limit)` reads them (the first `limit` of them) in order."""

    sheet: str
    title: str
    columns: tuple[_Column, ...]
    count: int
    rows: _RowSource
    empty: str = "None."
    in_pdf: bool = True


@dataclass(frozen=True)
class _Facts:
    """Labelled figures: in the PDF a small table, in the XLSX the Summary sheet."""

    title: str
    items: list[tuple[str, Any]]


@dataclass(frozen=True)
class _Notes:
    sheet: str
    title: str
    lines: list[str]
    empty: str = "None."


@dataclass(frozen=True)
class _Chart:
    """A PDF chart: bars (negative ones red where `signed`) or a pie of `values` by `labels`."""

    kind: Literal["bars", "pie"]
    title: str
    labels: list[str]
    values: list[Decimal]
    signed: bool = False
    empty: str = "Nothing to chart."


_Block = _Facts | _Notes | _Chart | _Table


@dataclass
class _Document:
    kind_title: str
    subject: str
    period: str
    header: list[tuple[str, Any]]
    requested_by: str
    blocks: list[_Block] = field(default_factory=list)
    #: What the CSV holds (several tables are written as blocks, each under its title).
    csv_tables: list[_Table] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.kind_title}, {self.subject}, {self.period}"

    @property
    def tables(self) -> list[_Table]:
        return [block for block in self.blocks if isinstance(block, _Table)]


def _query_rows(queryset: QuerySet, fields: Sequence[str]) -> _RowSource:
    def rows(limit: int | None) -> Iterator[Sequence[Any]]:
        selected = queryset.values_list(*fields)
        if limit is not None:
            selected = selected[:limit]
        return selected.iterator(chunk_size=CHUNK_ROWS)

    return rows


def _list_rows(rows: list[Sequence[Any]]) -> _RowSource:
    return lambda limit: iter(rows if limit is None else rows[:limit])


def _list_table(sheet: str, title: str, columns: tuple[_Column, ...], rows: list[Sequence[Any]], **kw: Any) -> _Table:
    return _Table(sheet, title, columns, len(rows), _list_rows(rows), **kw)


# -- common reads -----------------------------------------------------------------------------


def _account(spec: ReportSpec) -> TradingAccount:
    accounts = TradingAccount.objects.select_related("owner")
    account = None if spec.account_id is None else accounts.filter(pk=spec.account_id).first()
    if account is None:
        raise NotFoundError("not_found", f"No trading account #{spec.account_id}.")
    return account


def _header(spec: ReportSpec, *, scope: tuple[str, str], owner: str | None) -> list[tuple[str, Any]]:
    header: list[tuple[str, Any]] = [scope]
    if owner is not None:
        header.append(("Owner", owner))
    return [
        *header,
        ("Period from", spec.start),
        ("Period to (excluded)", spec.end),
        ("Generated at", timezone.now()),
        ("Requested by", spec.requested_by),
        ("Valuation asset", VALUATION_ASSET),
        ("Times", "UTC"),
    ]


def _account_document(spec: ReportSpec, account: TradingAccount) -> _Document:
    owner = account.owner.username if account.owner else "the venue"
    return _Document(
        kind_title=REPORT_TITLES[spec.kind],
        subject=str(account),
        period=_period_text(spec),
        header=_header(spec, scope=("Account", str(account)), owner=owner),
        requested_by=spec.requested_by,
    )


def _account_trades(account_id: int, spec: ReportSpec) -> tuple[QuerySet[Trade], int]:
    """The account's trades of the period (either side) that existed when the report started,
    and how many they are."""
    trades = Trade.objects.filter(
        Q(maker_account_id=account_id) | Q(taker_account_id=account_id),
        executed_at__gte=spec.start,
        executed_at__lt=spec.end,
    )
    bounds = trades.aggregate(count=Count("id"), last=Max("id"))
    return trades.filter(id__lte=bounds["last"] or 0), bounds["count"]


def _own(account_id: int, field_name: str, output_field: Any = _AMOUNT) -> Case:
    """The account's side of a trade's `maker_<field>` / `taker_<field>` (a trade never has the
    same account on both sides)."""
    return Case(
        When(maker_account_id=account_id, then=F(f"maker_{field_name}")),
        default=F(f"taker_{field_name}"),
        output_field=output_field,
    )


def _own_side(account_id: int) -> Case:
    """BUY or SELL as the account traded: the aggressor's side for the taker, the other for the maker."""
    return Case(
        When(maker_account_id=account_id, aggressor_side=Side.BUY, then=Value(Side.SELL.value)),
        When(maker_account_id=account_id, then=Value(Side.BUY.value)),
        default=F("aggressor_side"),
        output_field=CharField(),
    )


def _bought(account_id: int) -> Q:
    return Q(taker_account_id=account_id, aggressor_side=Side.BUY) | Q(
        maker_account_id=account_id, aggressor_side=Side.SELL
    )


def _with_own_side(trades: QuerySet[Trade], account_id: int) -> QuerySet[Trade]:
    return trades.annotate(
        own_side=_own_side(account_id),
        own_role=Case(
            When(maker_account_id=account_id, then=Value("maker")), default=Value("taker"), output_field=CharField()
        ),
        own_order=_own(account_id, "order_id", BigIntegerField()),
        own_client_order_id=_own(account_id, "order__client_order_id", CharField()),
        own_fee=_own(account_id, "fee"),
        own_pnl=_own(account_id, "realized_pnl"),
    ).order_by("executed_at", "id")


def _trade_totals(trades: QuerySet[Trade], account_id: int, group: Sequence[str]) -> list[dict[str, Any]]:
    """The account's trades added up per `group` (amounts on its side of each trade)."""
    bought = _bought(account_id)
    return list(
        trades.values(*group)
        .annotate(
            trades=Count("id"),
            maker=Count("id", filter=Q(maker_account_id=account_id)),
            taker=Count("id", filter=Q(taker_account_id=account_id)),
            bought=Sum("quantity", filter=bought),
            sold=Sum("quantity", filter=~bought),
            volume=Sum("quote_quantity"),
            fees=Sum(_own(account_id, "fee")),
            pnl=Sum(_own(account_id, "realized_pnl")),
        )
        .order_by(*group)
    )


def _daily_sums(queryset: QuerySet, time_field: str, total: Any) -> dict[date, Decimal]:
    """`total` summed per UTC day of `time_field`, for the days that have rows."""
    rows = (
        queryset.annotate(day=TruncDate(time_field, tzinfo=UTC))
        .values("day")
        .annotate(total=Sum(total, output_field=_AMOUNT))
        .order_by("day")
    )
    return {row["day"]: row["total"] or Decimal(0) for row in rows}


def _period_series(spec: ReportSpec, sums: dict[date, Decimal]) -> tuple[str, list[date], list[Decimal]]:
    """Every day of the period with its sum (0 for a day without rows), or every month when the
    period is longer than `DAILY_CHART_MAX_DAYS`: ("day" | "month", bucket starts, sums)."""
    first = spec.start.astimezone(UTC).date()
    last = (spec.end.astimezone(UTC) - timedelta(microseconds=1)).date()
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    if len(days) <= DAILY_CHART_MAX_DAYS:
        return "day", days, [sums.get(day, Decimal(0)) for day in days]
    months: dict[date, Decimal] = {}
    for day in days:
        month = day.replace(day=1)
        months[month] = months.get(month, Decimal(0)) + sums.get(day, Decimal(0))
    return "month", list(months), list(months.values())


def _series_labels(unit: str, buckets: list[date]) -> list[str]:
    return [bucket.strftime("%Y-%m") if unit == "month" else bucket.isoformat() for bucket in buckets]


# -- account statement ------------------------------------------------------------------------

_STATEMENT_TRADE_COLUMNS = (
    _Column("executed_at", "Time", "time"),
    _Column("trade_id", "Trade", "int"),
    _Column("symbol", "Symbol"),
    _Column("side", "Side"),
    _Column("role", "Role"),
    _Column("price", "Price", "amount"),
    _Column("quantity", "Quantity", "amount"),
    _Column("quote_quantity", "Quote quantity", "amount"),
    _Column("fee", "Fee (quote)", "amount"),
    _Column("realized_pnl", "Realized P&L (quote)", "amount"),
)
_SYMBOL_TOTAL_COLUMNS = (
    _Column("symbol", "Symbol"),
    _Column("quote_asset", "Quote asset"),
    _Column("trades", "Trades", "int"),
    _Column("maker_trades", "As maker", "int"),
    _Column("taker_trades", "As taker", "int"),
    _Column("bought", "Bought", "amount"),
    _Column("sold", "Sold", "amount"),
    _Column("net_quantity", "Net quantity", "amount"),
    _Column("volume", "Volume (quote)", "amount"),
    _Column("fees", "Fees (quote)", "amount"),
    _Column("realized_pnl", "Realized P&L (quote)", "amount"),
)


def _symbol_total_rows(totals: list[dict[str, Any]]) -> list[Sequence[Any]]:
    zero = Decimal(0)
    return [
        (
            row["instrument__symbol"],
            row["instrument__quote__code"],
            row["trades"],
            row["maker"],
            row["taker"],
            row["bought"] or zero,
            row["sold"] or zero,
            (row["bought"] or zero) - (row["sold"] or zero),
            row["volume"] or zero,
            row["fees"] or zero,
            row["pnl"] or zero,
        )
        for row in totals
    ]


def _quote_total_facts(trades: QuerySet[Trade], account_id: int) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for row in _trade_totals(trades, account_id, ["instrument__quote__code"]):
        quote, fees, pnl = row["instrument__quote__code"], row["fees"] or Decimal(0), row["pnl"] or Decimal(0)
        items += [
            (f"Trades quoted in {quote}", row["trades"]),
            (f"Traded volume ({quote})", row["volume"] or Decimal(0)),
            (f"Fees paid ({quote})", fees),
            (f"Realized P&L ({quote})", pnl),
            (f"Net realized P&L after fees ({quote})", pnl - fees),
        ]
    return items


def _statement(spec: ReportSpec) -> _Document:
    account = _account(spec)
    document = _account_document(spec, account)
    portfolio = portfolio_summary(account=account)
    trades, trade_count = _account_trades(account.pk, spec)

    entries = LedgerEntry.objects.filter(account=account)
    change = F("free_delta") + F("locked_delta")
    ledger = (
        entries.filter(created_at__lt=spec.end)
        .values("asset__code")
        .annotate(
            opening=Sum(change, filter=Q(created_at__lt=spec.start), output_field=_AMOUNT),
            closing=Sum(change, output_field=_AMOUNT),
        )
        .order_by("asset__code")
    )
    then = {row["asset__code"]: (row["opening"] or Decimal(0), row["closing"] or Decimal(0)) for row in ledger}
    now = {
        balance.asset.code: (balance.free, balance.locked)
        for balance in Balance.objects.filter(account=account).select_related("asset")
    }
    zero = Decimal(0)
    balance_rows: list[Sequence[Any]] = [
        (code, *then.get(code, (zero, zero)), *now.get(code, (zero, zero)), sum(now.get(code, (zero, zero))))
        for code in sorted(then.keys() | now.keys())
    ]

    transfers = entries.filter(kind__in=TRANSFER_KINDS, created_at__gte=spec.start, created_at__lt=spec.end)
    transfers = transfers.filter(id__lte=transfers.aggregate(last=Max("id"))["last"] or 0)
    moved = transfers.values("asset__code", "kind").annotate(total=Sum(change, output_field=_AMOUNT))
    # Deposits and withdrawals add up to what came in and what went out; adjustments keep their sign.
    moved_facts: list[tuple[str, Any]] = [
        (
            f"{_TRANSFER_LABELS[row['kind']]} ({row['asset__code']})",
            row["total"] if row["kind"] == LedgerKind.ADJUSTMENT else abs(row["total"]),
        )
        for row in moved.order_by("asset__code", "kind")
    ]

    facts: list[tuple[str, Any]] = [
        ("Trades in the period", trade_count),
        *_quote_total_facts(trades, account.pk),
        *moved_facts,
        (f"Portfolio value now ({portfolio.valuation_asset})", portfolio.total_value),
        (f"Unrealized P&L now ({portfolio.valuation_asset})", portfolio.unrealized_pnl),
        (f"Realized P&L of the positions, all time ({portfolio.valuation_asset})", portfolio.realized_pnl),
    ]
    pnl_by_day = _daily_sums(
        trades.filter(instrument__quote__code=VALUATION_ASSET), "executed_at", _own(account.pk, "realized_pnl")
    )
    unit, buckets, pnl = _period_series(spec, pnl_by_day)
    valued = [holding for holding in portfolio.assets if holding.value is not None and holding.value > 0]

    document.blocks = [
        _Facts("Period totals", facts),
        _list_table(
            "Balances",
            "Balances",
            (
                _Column("asset", "Asset"),
                _Column("opening", "At period start", "amount"),
                _Column("closing", "At period end", "amount"),
                _Column("free_now", "Free now", "amount"),
                _Column("locked_now", "Locked now", "amount"),
                _Column("total_now", "Total now", "amount"),
            ),
            balance_rows,
        ),
        _Table(
            "Deposits and withdrawals",
            "Deposits, withdrawals and adjustments in the period",
            (
                _Column("created_at", "Time", "time"),
                _Column("entry_id", "Entry", "int"),
                _Column("kind", "Kind"),
                _Column("asset", "Asset"),
                _Column("amount", "Amount", "amount"),
                _Column("free_after", "Free after", "amount"),
                _Column("reason", "Reason", pdf_chars=60),
            ),
            transfers.count(),
            _query_rows(
                transfers.annotate(amount=change).order_by("id"),
                ("created_at", "id", "kind", "asset__code", "amount", "free_after", "reason"),
            ),
        ),
        _Chart(
            "pie",
            f"Allocation now ({portfolio.valuation_asset})",
            [f"{holding.asset} {_pdf_text(holding.allocation_pct)} %" for holding in valued],
            [holding.value for holding in valued if holding.value is not None],
            empty="The account holds nothing of value.",
        ),
        _list_table(
            "Portfolio now",
            "Portfolio now",
            (
                _Column("asset", "Asset"),
                _Column("total", "Total", "amount"),
                _Column("price", f"Price ({portfolio.valuation_asset})", "amount"),
                _Column("value", f"Value ({portfolio.valuation_asset})", "amount"),
                _Column("allocation_pct", "Allocation %", "amount"),
            ),
            [(h.asset, h.total, h.price, h.value, h.allocation_pct) for h in portfolio.assets],
        ),
        _list_table(
            "Positions now",
            "Positions now",
            (
                _Column("symbol", "Symbol"),
                _Column("quote_asset", "Quote asset"),
                _Column("quantity", "Quantity", "amount"),
                _Column("average_price", "Average price", "amount"),
                _Column("last_price", "Last price", "amount"),
                _Column("market_value", "Market value", "amount"),
                _Column("realized_pnl", "Realized P&L", "amount"),
                _Column("unrealized_pnl", "Unrealized P&L", "amount"),
                _Column("fees_paid", "Fees paid", "amount"),
            ),
            [
                (
                    p.symbol,
                    p.quote_asset,
                    p.quantity,
                    p.average_price,
                    p.last_price,
                    p.market_value,
                    p.realized_pnl,
                    p.unrealized_pnl,
                    p.fees_paid,
                )
                for p in portfolio.positions
            ],
        ),
        _Chart(
            "bars",
            f"Realized P&L per {unit} ({VALUATION_ASSET})",
            _series_labels(unit, buckets),
            pnl,
            signed=True,
        ),
        _list_table(
            f"Realized P&L per {unit}",
            f"Realized P&L per {unit}",
            (_Column(unit, unit.capitalize(), "date"), _Column("realized_pnl", "Realized P&L", "amount")),
            list(zip(buckets, pnl, strict=True)),
            in_pdf=False,
        ),
        _list_table(
            "Totals per symbol",
            "Trades per symbol",
            _SYMBOL_TOTAL_COLUMNS,
            _symbol_total_rows(_trade_totals(trades, account.pk, ["instrument__symbol", "instrument__quote__code"])),
        ),
    ]
    trade_table = _Table(
        "Trades",
        "Trades in the period",
        _STATEMENT_TRADE_COLUMNS,
        trade_count,
        _query_rows(
            _with_own_side(trades, account.pk),
            (
                "executed_at",
                "id",
                "instrument__symbol",
                "own_side",
                "own_role",
                "price",
                "quantity",
                "quote_quantity",
                "own_fee",
                "own_pnl",
            ),
        ),
    )
    document.blocks.append(trade_table)
    document.csv_tables = [trade_table]
    return document


# -- trade blotter ----------------------------------------------------------------------------

_BLOTTER_COLUMNS = (
    _Column("executed_at", "Time", "time"),
    _Column("trade_id", "Trade", "int"),
    _Column("symbol", "Symbol"),
    _Column("order_id", "Order", "int"),
    _Column("client_order_id", "Client order id", pdf_chars=20),
    _Column("side", "Side"),
    _Column("role", "Role"),
    _Column("aggressor_side", "Aggressor"),
    _Column("price", "Price", "amount"),
    _Column("quantity", "Quantity", "amount"),
    _Column("quote_quantity", "Quote quantity", "amount"),
    _Column("fee", "Fee", "amount"),
    _Column("fee_asset", "Fee asset"),
    _Column("realized_pnl", "Realized P&L", "amount"),
)


def _blotter(spec: ReportSpec) -> _Document:
    account = _account(spec)
    document = _account_document(spec, account)
    trades, trade_count = _account_trades(account.pk, spec)
    roles = trades.aggregate(maker=Count("id", filter=Q(maker_account_id=account.pk)))
    volume_by_day = _daily_sums(trades.filter(instrument__quote__code=VALUATION_ASSET), "executed_at", "quote_quantity")
    unit, buckets, volume = _period_series(spec, volume_by_day)
    trade_table = _Table(
        "Trades",
        "Trades",
        _BLOTTER_COLUMNS,
        trade_count,
        _query_rows(
            _with_own_side(trades, account.pk),
            (
                "executed_at",
                "id",
                "instrument__symbol",
                "own_order",
                "own_client_order_id",
                "own_side",
                "own_role",
                "aggressor_side",
                "price",
                "quantity",
                "quote_quantity",
                "own_fee",
                "instrument__quote__code",
                "own_pnl",
            ),
        ),
    )
    document.blocks = [
        _Facts(
            "Totals",
            [
                ("Trades", trade_count),
                ("As maker", roles["maker"]),
                ("As taker", trade_count - roles["maker"]),
                *_quote_total_facts(trades, account.pk),
            ],
        ),
        _Chart("bars", f"Traded volume per {unit} ({VALUATION_ASSET})", _series_labels(unit, buckets), volume),
        _list_table(
            f"Volume per {unit}",
            f"Traded volume per {unit}",
            (_Column(unit, unit.capitalize(), "date"), _Column("volume", f"Volume ({VALUATION_ASSET})", "amount")),
            list(zip(buckets, volume, strict=True)),
            in_pdf=False,
        ),
        _list_table(
            "Totals per symbol",
            "Totals per symbol",
            _SYMBOL_TOTAL_COLUMNS,
            _symbol_total_rows(_trade_totals(trades, account.pk, ["instrument__symbol", "instrument__quote__code"])),
        ),
        trade_table,
    ]
    document.csv_tables = [trade_table]
    return document


# -- risk report ------------------------------------------------------------------------------


def _risk(spec: ReportSpec) -> _Document:
    account = _account(spec)
    document = _account_document(spec, account)
    assessment = risk_assessment(account)
    runs = list(
        VarRun.objects.filter(
            account=account, var__isnull=False, created_at__gte=spec.start, created_at__lt=spec.end
        ).order_by("-created_at", "-id")[:VAR_RUNS_LISTED]
    )
    last = assessment.last_var
    currency = assessment.currency
    facts: list[tuple[str, Any]] = [
        (f"Equity ({currency})", assessment.equity),
        (f"Gross exposure ({currency})", assessment.gross_exposure),
        (f"Net exposure ({currency})", assessment.net_exposure),
        ("Leverage (gross / equity)", assessment.leverage if assessment.leverage is not None else "n/a"),
        ("Concentration (largest share)", assessment.concentration),
        ("Risk score (0-100)", assessment.score),
        ("Risk level", assessment.level),
        ("Kill switch engaged", "yes" if assessment.kill_switch_engaged else "no"),
        ("VaR runs in the period", len(runs)),
    ]
    if last is not None:
        facts += [
            ("Last VaR run", last.created_at),
            (
                "Last VaR",
                f"{_pdf_text(last.var)} {last.currency} ({_pdf_text(last.confidence * 100)} %, "
                f"{last.horizon_days} d, {last.method})",
            ),
        ]
    exposures = _list_table(
        "Exposures",
        "Exposures",
        (
            _Column("symbol", "Symbol"),
            _Column("quantity", "Quantity", "amount"),
            _Column("price", "Price", "amount"),
            _Column("exposure", f"Exposure ({currency})", "amount"),
            _Column("share", "Share of gross", "amount"),
        ),
        [(row.symbol, row.quantity, row.price, row.exposure, row.share) for row in assessment.exposures],
        empty="No open position.",
    )
    limits = _list_table(
        "Limits",
        "Limits",
        (
            _Column("limit", "Limit"),
            _Column("scope", "Scope"),
            _Column("value", "Value", "amount"),
            _Column("used", "Used", "amount"),
            _Column("usage", "Usage (0-1)", "amount"),
        ),
        [(row.limit, row.scope, row.value, row.used, row.usage) for row in assessment.limits],
        empty="No limit applies.",
    )
    document.blocks = [
        _Facts("Assessment now", facts),
        _Notes("Warnings", "Warnings", assessment.warnings, empty="No warning."),
        exposures,
        limits,
        _list_table(
            "VaR runs",
            f"VaR runs in the period (the newest {VAR_RUNS_LISTED} that succeeded)",
            (
                _Column("created_at", "Requested", "time"),
                _Column("method", "Method"),
                _Column("confidence", "Confidence", "amount"),
                _Column("horizon_days", "Horizon (d)", "int"),
                _Column("lookback_days", "Lookback (d)", "int"),
                _Column("scenarios", "Scenarios", "int"),
                _Column("var", "VaR", "amount"),
                _Column("es", "ES", "amount"),
                _Column("currency", "Currency"),
                _Column("breaches", "Breaches", "int"),
                _Column("observations", "Backtest days", "int"),
                _Column("kupiec_p_value", "Kupiec p", "float"),
                _Column("verdict", "Backtest verdict", pdf_chars=40),
            ),
            [_var_run_row(run) for run in runs],
            empty="No VaR run succeeded in the period.",
        ),
    ]
    newest = runs[0] if runs else None
    bins = _histogram_bins(newest)
    document.blocks += [
        _Chart(
            "bars",
            "Scenario P&L of the newest VaR run"
            + (f" ({newest.currency}, {newest.method}, {newest.scenarios} scenarios)" if newest else ""),
            [_histogram_label(low) for low, _, _ in bins],
            [Decimal(count) for _, _, count in bins],
            empty="No VaR run in the period.",
        ),
        _list_table(
            "Histogram",
            "Scenario P&L of the newest VaR run",
            (_Column("low", "From", "float"), _Column("high", "To", "float"), _Column("scenarios", "Scenarios", "int")),
            list(bins),
            in_pdf=False,
        ),
    ]
    document.csv_tables = [exposures, limits]
    return document


def _var_run_row(run: VarRun) -> tuple[Any, ...]:
    backtest = run.backtest or {}
    if backtest.get("available"):
        verdict = backtest.get("verdict", "")
    else:
        verdict = f"none: {backtest.get('reason', 'not computed')}"
    return (
        run.created_at,
        run.method,
        run.confidence,
        run.horizon_days,
        run.lookback_days,
        run.scenarios,
        run.var,
        run.es,
        run.currency,
        backtest.get("breaches"),
        backtest.get("observations"),
        backtest.get("kupiec_p_value"),
        verdict,
    )


def _histogram_bins(run: VarRun | None) -> list[tuple[float, float, int]]:
    histogram = (run.histogram if run else None) or {}
    edges, counts = histogram.get("edges") or [], histogram.get("counts") or []
    return [(edges[index], edges[index + 1], count) for index, count in enumerate(counts) if index + 1 < len(edges)]


def _histogram_label(edge: float) -> str:
    return f"{edge:,.0f}" if abs(edge) >= 100 else f"{edge:.2f}"


# -- audit report -----------------------------------------------------------------------------

_AUDIT_COLUMNS = (
    _Column("seq", "Seq", "int"),
    _Column("occurred_at", "Time", "time"),
    _Column("actor_type", "Actor type"),
    _Column("actor_label", "Actor", pdf_chars=24),
    _Column("action", "Action", pdf_chars=30),
    _Column("target_type", "Target type", pdf_chars=24),
    _Column("target_id", "Target id", pdf_chars=14),
    _Column("target_label", "Target", pdf_chars=36),
    _Column("ip", "IP", pdf_chars=39),
    _Column("request_id", "Request id", pdf_chars=36),
)


def _audit(spec: ReportSpec) -> _Document:
    events = AuditEvent.objects.filter(occurred_at__gte=spec.start, occurred_at__lt=spec.end)
    bounds = events.aggregate(
        count=Count("id"), first=Min("seq"), last=Max("seq"), actors=Count("actor_label", distinct=True)
    )
    events = events.filter(seq__lte=bounds["last"] or 0)
    per_action = list(events.values("action").annotate(events=Count("id")).order_by("-events", "action"))
    charted = per_action[:ACTION_CHART_BARS]
    other = sum(row["events"] for row in per_action[ACTION_CHART_BARS:])
    labels = [row["action"] for row in charted] + (["other"] if other else [])
    counts = [Decimal(row["events"]) for row in charted] + ([Decimal(other)] if other else [])
    event_table = _Table(
        "Events",
        "Events",
        _AUDIT_COLUMNS,
        bounds["count"],
        _query_rows(events.order_by("seq"), [column.name for column in _AUDIT_COLUMNS]),
    )
    document = _Document(
        kind_title=REPORT_TITLES["audit"],
        subject="the venue",
        period=_period_text(spec),
        header=_header(spec, scope=("Scope", "The whole venue"), owner=None),
        requested_by=spec.requested_by,
    )
    document.blocks = [
        _Facts(
            "Summary",
            [
                ("Events", bounds["count"]),
                ("First seq", bounds["first"] if bounds["first"] is not None else "n/a"),
                ("Last seq", bounds["last"] if bounds["last"] is not None else "n/a"),
                ("Actors", bounds["actors"]),
                ("Actions", len(per_action)),
            ],
        ),
        _Chart("bars", "Events per action", labels, counts, empty="No event in the period."),
        _list_table(
            "Per action",
            "Events per action",
            (_Column("action", "Action"), _Column("events", "Events", "int")),
            [(row["action"], row["events"]) for row in per_action],
        ),
        event_table,
    ]
    document.csv_tables = [event_table]
    return document


_ASSEMBLERS: dict[str, Callable[[ReportSpec], _Document]] = {
    "statement": _statement,
    "blotter": _blotter,
    "risk": _risk,
    "audit": _audit,
}


# -- values -----------------------------------------------------------------------------------


def _amount_text(value: Decimal) -> str:
    return str(amount_filter(value))


def _csv_text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return _amount_text(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _pdf_text(value: Any, limit: int = 0) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        text = _amount_text(value)
    elif isinstance(value, datetime):
        text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(value, date):
        text = value.isoformat()
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    return text if not limit or len(text) <= limit else text[: limit - 1] + "…"


def _excel_number(value: Decimal) -> int | float | str:
    """A Decimal as a spreadsheet number: an int when it is whole (and a double holds it exactly),
    else the nearest double, converted from the Decimal itself (exact for up to 15 significant
    digits, which is all Excel keeps; the CSV has every digit). Not a number: its text."""
    if not value.is_finite():
        return str(value)
    if value == value.to_integral_value() and abs(value) < 2**53:
        return int(value)
    return float(value)


def _period_text(spec: ReportSpec) -> str:
    return f"{_bound_text(spec.start)} to {_bound_text(spec.end)}"


def _bound_text(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.date().isoformat() if moment.time() == time(0) else moment.strftime("%Y-%m-%d %H:%M UTC")


# -- progress ---------------------------------------------------------------------------------


class _Progress:
    """Turns units of work done (rows written, sections finished) into the caller's fraction,
    scaled into [low, high)."""

    def __init__(self, report: Progress, units: int, *, low: float = 0.0, high: float = 0.99):
        self.report, self.units, self.low, self.high = report, max(units, 1), low, high
        self.done = 0

    def advance(self, units: int, message: str) -> None:
        self.done += units
        self.report(self.low + (self.high - self.low) * min(1.0, self.done / self.units), message)

    def rows(self, table: _Table, rows: Iterator[Sequence[Any]]) -> Iterator[Sequence[Any]]:
        """`rows`, reporting every `PROGRESS_ROWS` of them and once at the end."""
        written = 0
        for row in rows:
            yield row
            written += 1
            if written % PROGRESS_ROWS == 0:
                self.advance(PROGRESS_ROWS, f"{table.title}: {written:,} of {table.count:,} rows")
        self.advance(written % PROGRESS_ROWS + 1, f"{table.title}: {written:,} rows")


# -- CSV --------------------------------------------------------------------------------------


def _write_csv(document: _Document, path: Path, report: Progress) -> None:
    tables = document.csv_tables
    progress = _Progress(report, sum(table.count + 1 for table in tables))
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        for index, table in enumerate(tables):
            if len(tables) > 1:
                if index:
                    writer.writerow([])
                writer.writerow([table.title])
            writer.writerow([column.name for column in table.columns])
            writer.writerows([_csv_text(value) for value in row] for row in progress.rows(table, table.rows(None)))


# -- XLSX -------------------------------------------------------------------------------------


def _write_xlsx(document: _Document, path: Path, report: Progress) -> None:
    sheets = [block for block in document.blocks if isinstance(block, _Table | _Notes)]
    progress = _Progress(report, 1 + sum(block.count + 1 if isinstance(block, _Table) else 1 for block in sheets))
    workbook = Workbook(write_only=True)
    try:
        summary = workbook.create_sheet("Summary")
        summary.column_dimensions["A"].width = 48
        summary.column_dimensions["B"].width = 36
        summary.append([_xlsx_bold(summary, document.kind_title)])
        for label, value in document.header:
            summary.append([label, _xlsx_value(summary, value)])
        for facts in (block for block in document.blocks if isinstance(block, _Facts)):
            summary.append([])
            summary.append([_xlsx_bold(summary, facts.title)])
            for label, value in facts.items:
                summary.append([label, _xlsx_value(summary, value)])
        progress.advance(1, "Summary")
        for block in sheets:
            sheet = workbook.create_sheet(block.sheet)
            if isinstance(block, _Notes):
                sheet.column_dimensions["A"].width = 100
                sheet.append([_xlsx_bold(sheet, block.title)])
                for line in block.lines:
                    sheet.append([line])
                progress.advance(1, block.title)
                continue
            for number, column in enumerate(block.columns, 1):
                sheet.column_dimensions[get_column_letter(number)].width = 20 if column.kind == "time" else 16
            sheet.freeze_panes = "A2"
            sheet.append([_xlsx_bold(sheet, column.label) for column in block.columns])
            for row in progress.rows(block, block.rows(None)):
                sheet.append([_xlsx_value(sheet, value) for value in row])
        workbook.save(str(path))
    except BaseException:
        _xlsx_discard(workbook)
        raise


def _xlsx_discard(workbook: Workbook) -> None:
    """Remove the temporary files a write-only workbook spools its sheets to (openpyxl removes
    them when it saves, otherwise only when the process exits: a canceled report of a million
    rows must not leave its rows in the system's temp directory of a long-lived worker)."""
    for sheet in workbook.worksheets:
        writer = getattr(sheet, "_writer", None)
        if writer is not None:
            Path(writer.out).unlink(missing_ok=True)


def _xlsx_bold(sheet: Any, value: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=value)
    cell.font = Font(bold=True)
    return cell


def _xlsx_value(sheet: Any, value: Any) -> Any:
    if isinstance(value, Decimal):
        return _excel_number(value)
    if isinstance(value, datetime):
        cell = WriteOnlyCell(sheet, value=value.astimezone(UTC).replace(tzinfo=None))
        cell.number_format = _XLSX_DATETIME
        return cell
    if isinstance(value, date):
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = _XLSX_DATE
        return cell
    return value


# -- PDF --------------------------------------------------------------------------------------


class _NumberedCanvas(Canvas):
    """Holds each page back until the last one is laid out, so that every footer can say
    "page N of M"."""

    def __init__(self, *args: Any, footer: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._footer = footer
        self._pages: list[dict[str, Any]] = []

    def showPage(self) -> None:  # noqa: N802 - ReportLab's name
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for number, state in enumerate(self._pages, 1):
            self.__dict__.update(state)
            self.setFont("Helvetica", 7)
            self.setFillColor(colors.grey)
            self.drawString(_MARGIN, _MARGIN / 2, self._footer)
            self.drawRightString(_PAGE[0] - _MARGIN, _MARGIN / 2, f"page {number} of {total}")
            super().showPage()
        super().save()


def _write_pdf(document: _Document, path: Path, report: Progress) -> None:
    pdf_tables = [table for table in document.tables if table.in_pdf]
    shown = sum(min(table.count, PDF_MAX_ROWS) for table in pdf_tables)
    progress = _Progress(report, shown + len(document.blocks), high=0.6)

    story: list[Flowable] = [
        Paragraph(escape(document.kind_title), _STYLES["Title"]),
        _pdf_pairs([(label, _pdf_text(value)) for label, value in document.header]),
    ]
    for block in document.blocks:
        if isinstance(block, _Facts):
            story += [Paragraph(escape(block.title), _HEADING), _pdf_pairs(block.items)]
        elif isinstance(block, _Notes):
            story.append(Paragraph(escape(block.title), _HEADING))
            story += [Paragraph(f"• {escape(line)}", _BODY) for line in block.lines] or [
                Paragraph(escape(block.empty), _BODY)
            ]
        elif isinstance(block, _Chart):
            story += [Spacer(1, 8), _pdf_chart(block)]
        elif block.in_pdf:
            story += _pdf_table(block, progress)
            continue
        progress.advance(1, getattr(block, "title", ""))

    estimated_pages = max(1, shown // 45 + len(document.blocks) // 2)

    def page_done(canvas: Canvas, _doc: Any) -> None:
        page = canvas.getPageNumber()
        report(0.6 + 0.39 * min(1.0, page / estimated_pages), f"Laying out page {page}")

    pdf = SimpleDocTemplate(
        str(path),
        pagesize=_PAGE,
        leftMargin=_MARGIN,
        rightMargin=_MARGIN,
        topMargin=_MARGIN,
        bottomMargin=_MARGIN,
        title=document.title,
        author="Tradeport",
        subject=document.kind_title,
    )
    footer = f"Tradeport · {document.title} · requested by {document.requested_by}"
    pdf.build(
        story,
        onFirstPage=page_done,
        onLaterPages=page_done,
        canvasmaker=partial(_NumberedCanvas, footer=footer),
    )


def _pdf_pairs(items: list[tuple[str, Any]]) -> Table:
    rows = [[label, _pdf_text(value)] for label, value in items]
    table = Table(rows, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("FONTNAME", (0, 0), (0, -1), "Helvetica-Bold"),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
            ]
        )
    )
    return table


def _pdf_table(table: _Table, progress: _Progress) -> list[Flowable]:
    """The table's title and its first `PDF_MAX_ROWS` rows, the header repeated on every page,
    with a note of how many more rows the CSV and XLSX hold."""
    flowables: list[Flowable] = [Paragraph(escape(table.title), _HEADING)]
    columns = table.columns
    rows = [[column.label for column in columns]]
    for row in progress.rows(table, table.rows(PDF_MAX_ROWS)):
        rows.append([_pdf_text(value, column.pdf_chars) for value, column in zip(row, columns, strict=True)])
    if len(rows) == 1:
        return [*flowables, Paragraph(escape(table.empty), _BODY)]
    header, *body = rows
    widths = [
        max(
            stringWidth(label, "Helvetica-Bold", _PDF_FONT_SIZE),
            *(stringWidth(text, "Helvetica", _PDF_FONT_SIZE) for text in texts),
        )
        + _PDF_CELL_PADDING
        for label, *texts in zip(header, *body, strict=True)
    ]
    scale = min(1.0, _FRAME_WIDTH / sum(widths))
    style = [
        ("FONTNAME", (0, 0), (-1, -1), "Helvetica"),
        ("FONTSIZE", (0, 0), (-1, -1), _PDF_FONT_SIZE),
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e0e0e0")),
        ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f5f5f5")]),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 1),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
        ("LEFTPADDING", (0, 0), (-1, -1), _PDF_CELL_PADDING / 2),
        ("RIGHTPADDING", (0, 0), (-1, -1), _PDF_CELL_PADDING / 2),
    ]
    style += [("ALIGN", (index, 0), (index, -1), "RIGHT") for index, column in enumerate(columns) if column.numeric]
    flowables.append(
        Table(
            rows,
            colWidths=[width * scale for width in widths],
            rowHeights=[_PDF_ROW_HEIGHT] * len(rows),
            repeatRows=1,
            hAlign="LEFT",
            style=TableStyle(style),
        )
    )
    more = table.count - (len(rows) - 1)
    if more > 0:
        flowables.append(
            Paragraph(
                escape(f"… {more:,} more rows: download the CSV or XLSX for all of them."),
                _BODY,
            )
        )
    return flowables


def _pdf_chart(chart: _Chart) -> Drawing:
    """The chart as a ReportLab drawing, its title drawn in it (so it is text in the PDF)."""
    height = 250 if chart.values else 40
    drawing = Drawing(_FRAME_WIDTH, height)
    drawing.add(String(0, height - 14, chart.title, fontName="Helvetica-Bold", fontSize=11))
    if not chart.values:
        drawing.add(String(0, 6, chart.empty, fontName="Helvetica", fontSize=9))
        return drawing
    if chart.kind == "pie":
        pie = Pie()
        pie.x, pie.y, pie.width, pie.height = 200, 25, 180, 180
        pie.data = [float(value) for value in chart.values]
        pie.labels = chart.labels
        pie.sideLabels = True
        pie.slices.strokeWidth = 0.5
        pie.slices.fontSize = 8
        for index in range(len(chart.values)):
            pie.slices[index].fillColor = _PIE_COLOURS[index % len(_PIE_COLOURS)]
        drawing.add(pie)
        return drawing
    bars = VerticalBarChart()
    bars.x, bars.y, bars.width, bars.height = 50, 60, _FRAME_WIDTH - 70, height - 90
    bars.data = [[float(value) for value in chart.values]]
    step = max(1, -(-len(chart.labels) // 24))
    bars.categoryAxis.categoryNames = [label if index % step == 0 else "" for index, label in enumerate(chart.labels)]
    bars.categoryAxis.labels.angle = 35
    bars.categoryAxis.labels.boxAnchor = "ne"
    bars.categoryAxis.labels.fontSize = 6
    bars.valueAxis.labels.fontSize = 7
    bars.valueAxis.visibleGrid = True
    bars.valueAxis.gridStrokeColor = colors.HexColor("#dddddd")
    if not any(chart.values):
        bars.valueAxis.valueMin, bars.valueAxis.valueMax = 0, 1
    bars.bars[0].fillColor = _SERIES
    bars.bars.strokeWidth = 0
    if chart.signed:
        for index, value in enumerate(chart.values):
            bars.bars[(0, index)].fillColor = _NEGATIVE if value < 0 else _POSITIVE
    drawing.add(bars)
    return drawing


_WRITERS: dict[str, Callable[[_Document, Path, Progress], None]] = {
    "csv": _write_csv,
    "xlsx": _write_xlsx,
    "pdf": _write_pdf,
}
