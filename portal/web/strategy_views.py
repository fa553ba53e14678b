"""The portal's strategies pages (ADR 0008): the list and a new strategy's form (its parameters'
fields generated from its type's schema), a strategy's page (status, P&L over time, orders,
fills, log, start / stop, "Backtest it"), a backtest's page (progress while its job runs, then
metrics, equity, drawdown and the price with the trades marked, a CSV report), and two
backtests side by side. Thin: the services decide; these parse, call and render."""

from __future__ import annotations

import bisect
import csv
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.choices import Role
from portal.errors import DomainError, NotFoundError
from portal.web.strategy_forms import BacktestForm, StrategyForm
from portal.web.trading_views import own_accounts
from trading.choices import OPEN_STATUSES
from trading.models import Backtest, Strategy, Trade
from trading.strategies.backtests import BacktestRequest, backtest_get_visible, backtest_submit, backtests_visible_to
from trading.strategies.base import Caps
from trading.strategies.builtin import CATALOGUE
from trading.strategies.services import (
    StrategyDefinition,
    strategy_create,
    strategy_get_owned,
    strategy_start,
    strategy_stop,
)

FILLS_SHOWN = 200
MARKERS_SHOWN = 400
#: The metrics a backtest page shows, in order: (key, label, kind).
METRICS = [
    ("total_return", "Total return", "percent"),
    ("annualized_return", "Annualized return", "percent"),
    ("volatility", "Volatility (annualized)", "percent"),
    ("sharpe", "Sharpe", "ratio"),
    ("sortino", "Sortino", "ratio"),
    ("max_drawdown", "Max drawdown", "percent"),
    ("max_drawdown_days", "Max drawdown duration (days)", "ratio"),
    ("win_rate", "Win rate", "percent"),
    ("profit_factor", "Profit factor", "ratio"),
    ("exposure", "Exposure", "percent"),
    ("trades", "Trades (fills)", "count"),
    ("closing_trades", "Closing trades", "count"),
    ("fees", "Fees", "money"),
    ("final_equity", "Final equity", "money"),
]


@login_required
@require_http_methods(["GET", "POST"])
def strategies(request):
    user = request.user
    kind = CATALOGUE.get(request.POST.get("kind") or request.GET.get("kind") or "", CATALOGUE["ma_crossover"])
    form = StrategyForm(request.POST or None, kind=kind, accounts=own_accounts(user))
    status = 200
    if request.method == "POST":
        if not user.has_role_at_least(Role.TRADER):
            form.add_error(None, "Defining a strategy needs the trader role.")
        elif form.is_valid():
            data = form.cleaned_data
            definition = StrategyDefinition(
                name=data["name"],
                kind=kind.name,
                params=form.params(),
                account_id=data["account"],
                symbol=data["symbol"],
                interval=data["interval"],
                caps={name: data[name] for name in ("max_position", "max_order_qty", "max_daily_loss")},
            )
            try:
                strategy = strategy_create(user=user, definition=definition, actor=user)
            except DomainError as error:
                form.add_problem(error.errors, f"{error.message} ({error.code})")
            else:
                messages.success(request, f"Strategy {strategy.name} defined: start it when ready.")
                return redirect("portal:strategy", strategy_id=strategy.pk)
        status = 422
    context = {
        "kinds": list(CATALOGUE.values()),
        "kind": kind,
        "form": form,
        "strategies": Strategy.objects.filter(owner=user).select_related("instrument").order_by("-id"),
    }
    return render(request, "portal/strategies.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def strategy_detail(request, strategy_id: int):
    strategy = _owned(request, strategy_id)
    form = BacktestForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            backtest_request = BacktestRequest(
                kind=strategy.kind,
                params=strategy.params,
                symbol=strategy.instrument.symbol,
                interval=strategy.interval,
                start=data["start"],
                end=data["end"],
                starting_balance=data["starting_balance"],
                slippage_bps=data["slippage_bps"],
                caps=Caps(strategy.max_position, strategy.max_order_qty, strategy.max_daily_loss),
                name=strategy.name,
            )
            try:
                backtest = backtest_submit(user=request.user, request=backtest_request, strategy=strategy)
            except DomainError as error:
                field = next((name for name in (error.errors or {}) if name in form.fields), None)
                form.add_error(field, f"{error.message} ({error.code})")
            else:
                return redirect("portal:backtest", backtest_id=backtest.pk)
        status = 422
    marks = list(strategy.marks.order_by("-at")[:500])[::-1]
    fills = Trade.objects.filter(Q(maker_order__strategy=strategy) | Q(taker_order__strategy=strategy)).select_related(
        "maker_order", "taker_order"
    )[:50]
    context = {
        "strategy": strategy,
        "form": form,
        "pnl": [float(mark.pnl) for mark in marks],
        "open_orders": strategy.orders.filter(status__in=OPEN_STATUSES).order_by("-id")[:50],
        "fills": [_fill_row(strategy, trade) for trade in fills],
        "log_lines": strategy.log_lines.all()[:30],
        "backtests": strategy.backtests.select_related("job").order_by("-id")[:10],
    }
    return render(request, "portal/strategy.html", context, status=status)


@login_required
@require_POST
def strategy_start_view(request, strategy_id: int):
    strategy = _owned(request, strategy_id)
    try:
        strategy_start(strategy=strategy, actor=request.user)
    except DomainError as error:
        messages.error(request, f"{strategy.name} was not started: {error.message}")
    else:
        messages.success(request, f"{strategy.name} started: the runner takes it within a second.")
    return redirect("portal:strategy", strategy_id=strategy.pk)


@login_required
@require_POST
def strategy_stop_view(request, strategy_id: int):
    strategy = _owned(request, strategy_id)
    try:
        strategy_stop(strategy=strategy, actor=request.user, reason="by its owner")
    except DomainError as error:
        messages.error(request, f"{strategy.name} was not stopped: {error.message}")
    else:
        messages.success(request, f"{strategy.name} stopped; its open orders were canceled.")
    return redirect("portal:strategy", strategy_id=strategy.pk)


@login_required
def backtest_detail(request, backtest_id: int):
    backtest = _backtest(request, backtest_id)
    curves = backtest.equity or {}
    times = curves.get("time", [])
    fills = list(backtest.fills.order_by("seq")[:MARKERS_SHOWN])
    markers = [(min(bisect.bisect_left(times, fill.at.timestamp()), len(times) - 1), fill.side) for fill in fills]
    others = backtests_visible_to(request.user).filter(owner=request.user).exclude(pk=backtest.pk)[:20]
    context = {
        "backtest": backtest,
        "metrics": _metrics_rows(backtest.metrics),
        "curves": curves,
        "markers": markers if times else [],
        "fills": fills[:FILLS_SHOWN],
        "others": others,
    }
    return render(request, "portal/backtest.html", context)


@login_required
def backtest_report(request, backtest_id: int):
    """The backtest as a CSV file: its inputs, its metrics, then every fill."""
    backtest = _backtest(request, backtest_id)
    if backtest.metrics is None:
        raise Http404("The backtest has no result yet.")
    response = StreamingHttpResponse(_report_lines(backtest), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="backtest-{backtest.pk}.csv"'
    return response


@login_required
def backtest_compare(request):
    ids = [request.GET.get(name, "") for name in ("a", "b")]
    if not all(value.isdigit() for value in ids):
        raise Http404("Two backtests to compare.")
    first, second = (_backtest(request, int(value)) for value in ids)
    rows = [
        (label, _shown(first.metrics, key, kind), _shown(second.metrics, key, kind)) for key, label, kind in METRICS
    ]
    context = {
        "first": first,
        "second": second,
        "rows": rows,
        "first_growth": _growth(first),
        "second_growth": _growth(second),
    }
    return render(request, "portal/backtest_compare.html", context)


# -- internals --------------------------------------------------------------------------------


def _owned(request, strategy_id: int) -> Strategy:
    try:
        return strategy_get_owned(user=request.user, strategy_id=strategy_id)
    except NotFoundError as missing:
        raise Http404(missing.message) from missing


def _backtest(request, backtest_id: int) -> Backtest:
    try:
        return backtest_get_visible(user=request.user, backtest_id=backtest_id)
    except NotFoundError as missing:
        raise Http404(missing.message) from missing


def _fill_row(strategy: Strategy, trade: Trade) -> dict[str, Any]:
    maker = trade.maker_order.strategy_id == strategy.pk
    order = trade.maker_order if maker else trade.taker_order
    return {
        "at": trade.executed_at,
        "side": order.side,
        "price": trade.price,
        "quantity": trade.quantity,
        "fee": trade.maker_fee if maker else trade.taker_fee,
        "role": "maker" if maker else "taker",
    }


def _shown(metrics: dict[str, Any] | None, key: str, kind: str) -> str:
    value = (metrics or {}).get(key)
    if value is None:
        return "—"
    if kind == "percent":
        return f"{float(value) * 100:.2f} %"
    if kind == "ratio":
        return f"{float(value):.2f}"
    if kind == "money":
        return f"{float(value):,.2f}"
    return f"{int(value):,}"


def _metrics_rows(metrics: dict[str, Any] | None) -> list[tuple[str, str]]:
    return [(label, _shown(metrics, key, kind)) for key, label, kind in METRICS] if metrics else []


def _growth(backtest: Backtest) -> list[float]:
    """Equity as a multiple of the starting balance (two backtests on one scale)."""
    equity = (backtest.equity or {}).get("equity", [])
    start = float(backtest.starting_balance) or 1.0
    return [value / start for value in equity]


def _report_lines(backtest: Backtest) -> Iterator[str]:
    class Line:
        def write(self, text: str) -> str:
            return text

    writer = csv.writer(Line(), lineterminator="\n")
    yield writer.writerow(["backtest", backtest.pk, backtest.name])
    for name in ("kind", "interval", "start", "end", "starting_balance", "slippage_bps", "bars", "candles_digest"):
        yield writer.writerow([name, getattr(backtest, name)])
    yield writer.writerow(["symbol", backtest.instrument.symbol])
    yield writer.writerow(["params", *(f"{key}={value}" for key, value in backtest.params.items())])
    for key, label, kind in METRICS:
        yield writer.writerow([label, _shown(backtest.metrics, key, kind)])
    yield "\n"
    yield writer.writerow(["seq", "at", "side", "price", "quantity", "fee", "realized_pnl", "position"])
    for fill in backtest.fills.order_by("seq").iterator(chunk_size=2000):
        row = [fill.seq, fill.at.isoformat(), fill.side, fill.price, fill.quantity, fill.fee, fill.realized_pnl]
        yield writer.writerow([*row, fill.position])
