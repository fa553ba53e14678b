"""Portal pages of trading: the trade page (ticket, book, open orders, fills, balances,
positions; account switcher) and the order history with CSV download."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, time, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from marketdata.candles import INTERVAL_SECONDS
from marketdata.models import Instrument
from marketdata.selectors import ticker_24h
from portal.choices import Role
from portal.errors import DomainError
from portal.idempotency import idempotency_claim_form, idempotency_complete, idempotency_release
from portal.web.trading_forms import FIELD_OF_CODE, OrderHistoryFilterForm, OrderTicketForm
from trading import selectors, services
from trading.choices import OPEN_STATUSES
from trading.models import Order, TradingAccount
from trading.order_rules import OrderRejected, OrderRequest

SESSION_ACCOUNT = "trading_account_id"
HISTORY_PAGE_SIZE = 100


def own_accounts(user):
    return TradingAccount.objects.filter(owner=user).order_by("id")


def current_account(request) -> TradingAccount | None:
    """The account the portal works on: `?account=` switches it (remembered in the session)."""
    accounts = own_accounts(request.user)
    wanted = request.GET.get("account") or request.session.get(SESSION_ACCOUNT)
    account = accounts.filter(pk=wanted).first() if str(wanted or "").isdigit() else None
    account = account or accounts.filter(is_active=True).first() or accounts.first()
    if account is not None:
        request.session[SESSION_ACCOUNT] = account.pk
    return account


def _current_instrument(request) -> Instrument:
    symbol = request.GET.get("symbol") or request.POST.get("symbol") or request.session.get("trading_symbol")
    instrument = Instrument.objects.select_related("base", "quote").filter(symbol=symbol).first() if symbol else None
    instrument = instrument or Instrument.objects.select_related("base", "quote").order_by("symbol").first()
    if instrument is None:
        raise Http404("No instruments yet: run `manage.py seed_demo` or add one in the admin.")
    request.session["trading_symbol"] = instrument.symbol
    return instrument


def _place_from_ticket(request, form: OrderTicketForm, account: TradingAccount, instrument: Instrument) -> Order | None:
    """Place the ticket's order once per rendered form (a double click or reload is not a second order)."""
    data = form.cleaned_data
    claim = idempotency_claim_form(user_id=request.user.pk, token=data["form_token"], path=request.path)
    if claim is None:
        messages.info(request, "This ticket was already sent; the order is in your lists below.")
        return None
    order_request = OrderRequest(
        side=data["side"],
        type=data["type"],
        quantity=data["quantity"],
        quote_quantity=data["quote_quantity"],
        price=data["price"],
        stop_price=data["stop_price"],
        time_in_force=data["time_in_force"],
        client_order_id=data["client_order_id"] or "",
    )
    try:
        order = services.order_place(account=account, instrument=instrument, request=order_request, actor=request.user)
    except DomainError as error:
        if isinstance(error, OrderRejected) and error.order is not None:
            idempotency_complete(record=claim, status=422, body={"order": error.order.pk}, headers={})
        else:
            idempotency_release(record=claim)
        field = FIELD_OF_CODE.get(error.code)
        form.add_error(field if field in form.fields else None, f"{error.message} ({error.code})")
        return None
    idempotency_complete(record=claim, status=201, body={"order": order.pk}, headers={})
    return order


@login_required
@require_http_methods(["GET", "POST"])
def trade(request):
    instrument = _current_instrument(request)
    account = current_account(request)
    can_trade = request.user.has_role_at_least(Role.TRADER) and account is not None
    form = OrderTicketForm(request.POST if request.method == "POST" else None, instrument=instrument)
    status = 200
    if request.method == "POST":
        if not can_trade:
            messages.error(request, "You need the trader role and a trading account to place orders.")
            return redirect("portal:trade")
        if form.is_valid():
            order = _place_from_ticket(request, form, account, instrument)  # type: ignore[arg-type]
            if order is not None:
                messages.success(
                    request,
                    f"Order #{order.pk} {order.side} {order.type} {instrument.symbol}: {order.status}"
                    + (f" ({order.expire_reason})" if order.expire_reason else ""),
                )
            if order is not None or not form.errors:  # placed, or this ticket was already sent
                return redirect(f"{reverse('portal:trade')}?symbol={instrument.symbol}")
            status = 422
        else:
            status = 422
    context = {
        "instrument": instrument,
        "instruments": Instrument.objects.order_by("symbol"),
        "account": account,
        "accounts": own_accounts(request.user),
        "form": form,
        "can_trade": can_trade,
        "ladder": selectors.depth_ladder(selectors.book_depth(instrument=instrument, levels=10)),
        "ticker": ticker_24h(instrument=instrument),
        "chart_intervals": list(INTERVAL_SECONDS),
        "chart_interval": "1m",
        "recent_trades": selectors.recent_trades(instrument=instrument, limit=15),
    }
    if account is not None:
        context.update(
            {
                "open_orders": Order.objects.filter(account=account, status__in=OPEN_STATUSES)
                .select_related("instrument")
                .order_by("-id")[:100],
                "fills": selectors.trades_of_accounts(account_ids=[account.pk])
                .select_related("instrument")
                .order_by("-id")[:20],
                "balances": account.balances.select_related("asset").order_by("asset__code"),
                "positions": [
                    {"position": position, **selectors.position_valuation(position)}
                    for position in account.positions.select_related("instrument").order_by("instrument__symbol")
                ],
            }
        )
    return render(request, "portal/trade.html", context, status=status)


@login_required
@require_POST
def order_cancel_view(request, order_id: int):
    order = Order.objects.filter(pk=order_id, account__owner=request.user).select_related("instrument").first()
    if order is None:
        raise Http404("No such order among yours.")
    try:
        services.order_cancel(order=order, actor=request.user)
    except DomainError as error:
        messages.error(request, f"Order #{order.pk} could not be canceled: {error.message}")
    else:
        messages.success(request, f"Order #{order.pk} canceled.")
    return redirect(request.POST.get("next") or reverse("portal:trade"))


def _history_queryset(account: TradingAccount, form: OrderHistoryFilterForm):
    queryset = Order.objects.filter(account=account).select_related("instrument").order_by("-id")
    if not form.is_valid():
        return queryset.none()
    data = form.cleaned_data
    if data["symbol"]:
        queryset = queryset.filter(instrument=data["symbol"])
    if data["status"]:
        queryset = queryset.filter(status=data["status"])
    if data["side"]:
        queryset = queryset.filter(side=data["side"])
    if data["date_from"]:
        queryset = queryset.filter(created_at__gte=datetime.combine(data["date_from"], time.min, tzinfo=UTC))
    if data["date_to"]:
        queryset = queryset.filter(
            created_at__lt=datetime.combine(data["date_to"] + timedelta(days=1), time.min, tzinfo=UTC)
        )
    return queryset


CSV_COLUMNS = [
    "id",
    "created_at",
    "symbol",
    "side",
    "type",
    "time_in_force",
    "price",
    "stop_price",
    "quantity",
    "quote_quantity",
    "executed_qty",
    "executed_quote",
    "fees_paid",
    "status",
    "reject_reason",
    "expire_reason",
    "client_order_id",
]


class _Echo:
    def write(self, value):
        return value


@login_required
def order_history(request):
    account = current_account(request)
    form = OrderHistoryFilterForm(request.GET or None)
    if account is None:
        return render(request, "portal/orders.html", {"form": form, "account": None, "accounts": []})
    queryset = _history_queryset(account, form if request.GET else OrderHistoryFilterForm({}))
    if request.GET.get("format") == "csv":
        writer = csv.writer(_Echo())

        def rows():
            yield writer.writerow(CSV_COLUMNS)
            for order in queryset.iterator(chunk_size=2000):
                yield writer.writerow(
                    [order.instrument.symbol if name == "symbol" else getattr(order, name) for name in CSV_COLUMNS]
                )

        response = StreamingHttpResponse(rows(), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="orders-{account.pk}.csv"'
        return response
    query = request.GET.copy()
    query["format"] = "csv"
    return render(
        request,
        "portal/orders.html",
        {
            "form": form if request.GET else OrderHistoryFilterForm(),
            "orders": queryset[:HISTORY_PAGE_SIZE],
            "account": account,
            "accounts": own_accounts(request.user),
            "csv_query": query.urlencode(),
            "page_size": HISTORY_PAGE_SIZE,
        },
    )
