"""Trading endpoints: accounts, orders, trades, balances, positions, ledger, deposits / withdrawals.

Thin: parse, check who may see what (selectors), call a service, render.
"""

from __future__ import annotations

from typing import cast

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from marketdata.models import Asset, Venue
from marketdata.selectors import instrument_get
from portal.api.docs import PROBLEM_RESPONSES, problem
from portal.api.errors import PROBLEM_CONTENT_TYPE, SERVER_ERROR_DETAIL, problem_body
from portal.api.shared_serializers import shared_serializer
from portal.api.views import ApiViewSet
from portal.choices import Role
from portal.errors import DomainError, NotFoundError
from portal.models import User
from trading import selectors, services
from trading.api.v1.filters import LedgerFilter, OrderFilter, TradeFilter
from trading.api.v1.serializers import (
    BalanceSerializer,
    CancelAllSerializer,
    CanceledOrdersSerializer,
    LedgerEntrySerializer,
    OrderCreateSerializer,
    OrderReplaceSerializer,
    OrderSerializer,
    PositionSerializer,
    TradeSerializer,
    TradingAccountCreateSerializer,
    TradingAccountSerializer,
    TradingAccountUpdateSerializer,
    TransferResultSerializer,
    TransferSerializer,
)
from trading.combining import Answer, QueuedOrder, combining_enabled, order_place_combined
from trading.models import Balance, LedgerEntry, Order, Position, Trade, TradingAccount
from trading.order_rules import OrderRequest

ORDER_REJECTED = problem(
    "The order was refused; `code` is its reason and `order_id` the stored REJECTED order", "TICK_SIZE", 422
)


def _order_answer(outcome: services.OrderOutcome | Exception, queued: QueuedOrder) -> Answer:
    """What the caller of `queued` gets: the order as `create` renders it, or problem JSON as
    the API's exception handler renders it (whichever worker matched the order)."""
    if isinstance(outcome, Order):
        return Answer(status.HTTP_201_CREATED, shared_serializer(OrderSerializer).to_representation(outcome))
    if isinstance(outcome, DomainError):
        extra, status_code, code, detail = outcome.extra, outcome.status, outcome.code, outcome.message
    else:
        extra, status_code, code, detail = {}, 500, "server_error", SERVER_ERROR_DETAIL
    body = problem_body(
        status=status_code, code=code, detail=detail, trace_id=queued.context.request_id, instance=queued.path
    )
    return Answer(status_code, {**extra, **body}, content_type=PROBLEM_CONTENT_TYPE)


class IdCursorPagination(CursorPagination):
    ordering = ("-id",)
    page_size_query_param = "limit"
    max_page_size = 500


def _actor(request):
    return request.auth or request.user


def _request_from(data: dict) -> OrderRequest:
    return OrderRequest(
        side=data["side"],
        type=data["type"],
        quantity=data.get("quantity"),
        quote_quantity=data.get("quote_quantity"),
        price=data.get("price"),
        stop_price=data.get("stop_price"),
        time_in_force=data.get("time_in_force") or "",
        client_order_id=data.get("client_order_id") or "",
    )


@extend_schema_view(
    list=extend_schema(
        summary="Your trading accounts", responses={200: TradingAccountSerializer(many=True), **PROBLEM_RESPONSES}
    ),
    retrieve=extend_schema(
        summary="One trading account", responses={200: TradingAccountSerializer, **PROBLEM_RESPONSES}
    ),
)
class TradingAccountViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Trading accounts. A trader sees and opens their own; operators see all and open them for anyone."""

    queryset = TradingAccount.objects.none()  # the schema generator's; requests use get_queryset
    serializer_class = TradingAccountSerializer
    pagination_class = IdCursorPagination
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.accounts_visible_to(self.request.user).order_by("id")

    def get_object(self):
        return selectors.account_get_visible(user=self.request.user, account_id=int(self.kwargs["pk"]))

    @extend_schema(
        summary="Open a trading account",
        request=TradingAccountCreateSerializer,
        responses={201: TradingAccountSerializer, **PROBLEM_RESPONSES},
    )
    def create(self, request):
        payload = TradingAccountCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        owner = request.user
        username = payload.validated_data.get("owner")
        if username and username != request.user.username:
            if not request.user.has_role_at_least(Role.OPERATOR):
                raise DomainError("role_forbidden", "Only operators open accounts for other users.", status=403)
            owner = get_object_or_404(User, username=username)
        venue = Venue.objects.order_by("id").first()
        if venue is None:
            raise DomainError("NO_VENUE", "The venue is not set up yet.", status=409)
        account = services.account_create(
            owner=owner,
            venue=venue,
            name=payload.validated_data["name"],
            stp_mode=payload.validated_data["stp_mode"],
            actor=_actor(request),
        )
        return Response(TradingAccountSerializer(account).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Rename an account or change its self-trade prevention mode",
        request=TradingAccountUpdateSerializer,
        responses={200: TradingAccountSerializer, **PROBLEM_RESPONSES},
    )
    def partial_update(self, request, pk=None):
        account = self.get_object()
        payload = TradingAccountUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        account = services.account_update(account=account, actor=_actor(request), **payload.validated_data)
        return Response(TradingAccountSerializer(account).data)


@extend_schema_view(
    list=extend_schema(
        summary="Your orders (filter by account, symbol, status, side, type, open, dates)",
        responses={200: OrderSerializer(many=True), **PROBLEM_RESPONSES},
    ),
    retrieve=extend_schema(summary="One order by id", responses={200: OrderSerializer, **PROBLEM_RESPONSES}),
)
class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Orders: place, list, look up by id or client order id, cancel, cancel all, cancel-replace."""

    queryset = Order.objects.none()  # the schema generator's; requests use get_queryset
    serializer_class = OrderSerializer
    filterset_class = OrderFilter
    pagination_class = IdCursorPagination
    lookup_value_regex = r"\d+"
    rate_limit_class = "trade"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.orders_visible_to(self.request.user)

    def get_object(self):
        return selectors.order_get_visible(user=self.request.user, order_id=int(self.kwargs["pk"]))

    def get_throttles(self):
        # Reads of orders count as reads; placing and canceling as trades.
        self.rate_limit_class = "trade" if self.request.method not in ("GET", "HEAD", "OPTIONS") else "read"
        return super().get_throttles()

    def _account(self, account_id: int | None):
        """The account an order goes to: only your own accounts trade (admins may act for anyone)."""
        user = cast(User, self.request.user)
        if account_id is None:
            account = selectors.account_default_for(user)
            if account is None:
                raise DomainError("NO_ACCOUNT", "You have no trading account; open one first.", status=409)
            return account
        return selectors.account_for_orders(user=user, account_id=account_id)

    def idempotency_deferred(self) -> bool:
        return self.action == "create" and combining_enabled()

    @extend_schema(
        summary="Place an order",
        request=OrderCreateSerializer,
        responses={
            201: OrderSerializer,
            **PROBLEM_RESPONSES,
            409: problem("Duplicate client_order_id among open orders", "DUPLICATE_CLIENT_ORDER_ID", 409),
            422: ORDER_REJECTED,
        },
        examples=[
            OpenApiExample(
                "Limit buy",
                value={
                    "symbol": "BTCUSDT",
                    "side": "BUY",
                    "type": "LIMIT",
                    "quantity": "0.01",
                    "price": "64000.00",
                    "client_order_id": "bot-42",
                },
                request_only=True,
            ),
            OpenApiExample(
                "Market buy for 100 USDT",
                value={"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quote_quantity": "100"},
                request_only=True,
            ),
            OpenApiExample(
                "Stop loss limit",
                value={
                    "symbol": "ETHUSDT",
                    "side": "SELL",
                    "type": "STOP_LOSS_LIMIT",
                    "quantity": "1",
                    "price": "3000.00",
                    "stop_price": "3010.00",
                    "time_in_force": "GTC",
                },
                request_only=True,
            ),
        ],
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Retrying with the same key and body never places the order twice.",
            )
        ],
    )
    def create(self, request):
        # Bound once per thread: the busiest endpoint skips DRF's per-request field copies.
        data = shared_serializer(OrderCreateSerializer).run_validation(request.data)
        account = self._account(data.get("account"))
        if combining_enabled():
            ticket = self._idempotency_ticket
            answer = order_place_combined(
                account=account,
                symbol=data["symbol"],
                request=_request_from(data),
                actor=_actor(request),
                path=request.path,
                ticket=ticket,
                render=_order_answer,
            )
            if ticket is not None:
                ticket.answered = True
            headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
            return Response(answer.body, status=answer.status, content_type=answer.content_type, headers=headers)
        order = services.order_place(
            account=account, instrument=data["symbol"], request=_request_from(data), actor=_actor(request)
        )
        return Response(shared_serializer(OrderSerializer).to_representation(order), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Cancel an order",
        request=None,
        responses={
            200: OrderSerializer,
            **PROBLEM_RESPONSES,
            409: problem("The order is no longer open (`order_status` says what it is)", "ORDER_NOT_OPEN", 409),
        },
    )
    def destroy(self, request, pk=None):
        order = self.get_object()
        order = services.order_cancel(order=order, actor=_actor(request))
        return Response(OrderSerializer(order).data)

    @extend_schema(
        summary="Look an order up by your client order id",
        parameters=[OpenApiParameter("account", int, description="Limit to one account (ids are unique per account).")],
        responses={200: OrderSerializer, **PROBLEM_RESPONSES},
    )
    @action(detail=False, methods=["get"], url_path=r"by-client-id/(?P<client_order_id>[A-Za-z0-9._:\-]{1,64})")
    def by_client_id(self, request, client_order_id: str):
        account = request.query_params.get("account")
        order = selectors.order_get_by_client_id(
            user=request.user,
            client_order_id=client_order_id,
            account_id=int(account) if account and account.isdigit() else None,
        )
        return Response(OrderSerializer(order).data)

    @extend_schema(
        summary="Cancel every open order of an account (optionally one symbol and side)",
        request=CancelAllSerializer,
        responses={200: CanceledOrdersSerializer, **PROBLEM_RESPONSES},
    )
    @action(detail=False, methods=["post"], url_path="cancel-all")
    def cancel_all(self, request):
        payload = CancelAllSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        if "account" in data:
            account_ids = [self._account(data["account"]).pk]
        else:
            account_ids = list(
                selectors.accounts_visible_to(request.user).filter(owner=request.user).values_list("pk", flat=True)
            )
        instrument_id = instrument_get(symbol=data["symbol"]).pk if data.get("symbol") else None
        canceled = services.order_cancel_all(
            account_ids=account_ids, instrument_id=instrument_id, side=data.get("side"), actor=_actor(request)
        )
        return Response({"canceled": OrderSerializer(canceled, many=True).data})

    @extend_schema(
        summary="Cancel an order and place its replacement atomically",
        description=(
            "If the replacement is refused, the original order stays untouched "
            "and the refusal is stored as a REJECTED order."
        ),
        request=OrderReplaceSerializer,
        responses={
            201: OrderSerializer,
            **PROBLEM_RESPONSES,
            409: problem("The order is no longer open", "ORDER_NOT_OPEN", 409),
            422: ORDER_REJECTED,
        },
    )
    @action(detail=True, methods=["post"], url_path="cancel-replace")
    def cancel_replace(self, request, pk=None):
        order = self.get_object()
        self._account(order.account_id)
        payload = OrderReplaceSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        new_order = services.order_cancel_replace(
            order=order, request=_request_from(payload.validated_data), actor=_actor(request)
        )
        return Response(OrderSerializer(new_order).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        summary="Your fills (filter by account, symbol, order, dates)",
        responses={200: TradeSerializer(many=True), **PROBLEM_RESPONSES},
    ),
    retrieve=extend_schema(summary="One of your fills", responses={200: TradeSerializer, **PROBLEM_RESPONSES}),
)
class TradeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = Trade.objects.none()  # the schema generator's; requests use get_queryset
    serializer_class = TradeSerializer
    filterset_class = TradeFilter
    pagination_class = IdCursorPagination
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.trades_visible_to(self.request.user)

    def get_serializer_context(self):
        """Which side of each trade is "yours": the account asked for, else every account you own."""
        context = dict(super().get_serializer_context())
        if getattr(self, "swagger_fake_view", False):
            return context
        user = cast(User, self.request.user)
        account = self.request.query_params.get("account")
        if account and account.isdigit():
            context["account_ids"] = {int(account)}
        else:
            context["account_ids"] = set(TradingAccount.objects.filter(owner=user).values_list("pk", flat=True))
        return context


class AccountScopedListMixin:
    """`?account=<id>` narrows a list to one of the caller's accounts."""

    def account_filtered(self, queryset):
        account = self.request.query_params.get("account")  # type: ignore[attr-defined]
        if account is None:
            return queryset
        if not account.isdigit():
            raise DomainError("validation_error", "account must be an integer id.", status=400)
        return queryset.filter(account_id=int(account))


@extend_schema_view(
    list=extend_schema(
        summary="Balances: free and locked per asset",
        parameters=[OpenApiParameter("account", int)],
        responses={200: BalanceSerializer(many=True), **PROBLEM_RESPONSES},
    )
)
class BalanceViewSet(AccountScopedListMixin, mixins.ListModelMixin, ApiViewSet):
    queryset = Balance.objects.none()  # the schema generator's; requests use get_queryset
    serializer_class = BalanceSerializer
    pagination_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return self.account_filtered(selectors.balances_visible_to(self.request.user)).order_by(
            "account_id", "asset__code"
        )


@extend_schema_view(
    list=extend_schema(
        summary="Positions with average price, realized and unrealized P&L, market value",
        parameters=[OpenApiParameter("account", int)],
        responses={200: PositionSerializer(many=True), **PROBLEM_RESPONSES},
    )
)
class PositionViewSet(AccountScopedListMixin, mixins.ListModelMixin, ApiViewSet):
    queryset = Position.objects.none()  # the schema generator's; requests use get_queryset
    serializer_class = PositionSerializer
    pagination_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return self.account_filtered(selectors.positions_visible_to(self.request.user)).order_by(
            "account_id", "instrument__symbol"
        )


@extend_schema_view(
    list=extend_schema(
        summary="Your ledger entries", responses={200: LedgerEntrySerializer(many=True), **PROBLEM_RESPONSES}
    )
)
class LedgerViewSet(mixins.ListModelMixin, ApiViewSet):
    queryset = LedgerEntry.objects.none()  # the schema generator's; requests use get_queryset
    serializer_class = LedgerEntrySerializer
    filterset_class = LedgerFilter
    pagination_class = IdCursorPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return selectors.ledger_visible_to(self.request.user)


class _TransferViewSet(ApiViewSet):
    write_role = Role.OPERATOR
    read_role = Role.OPERATOR
    transfer = staticmethod(services.deposit_create)

    @extend_schema(request=TransferSerializer, responses={201: TransferResultSerializer, **PROBLEM_RESPONSES})
    def create(self, request):
        payload = TransferSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        account = selectors.account_get_visible(user=request.user, account_id=data["account"])
        asset = Asset.objects.filter(code__iexact=data["asset"]).first()
        if asset is None:
            raise NotFoundError("UNKNOWN_ASSET", f"No asset {data['asset']!r}.")
        applied = type(self).transfer(
            account=account, asset=asset, amount=data["amount"], reason=data["reason"], actor=_actor(request)
        )
        body = {
            "account": account.pk,
            "asset": asset.code,
            "amount": data["amount"],
            "free": applied.free,
            "locked": applied.locked,
        }
        return Response(TransferResultSerializer(body).data, status=status.HTTP_201_CREATED)


@extend_schema_view(create=extend_schema(summary="Deposit into an account (operators; reason required)"))
class DepositViewSet(_TransferViewSet):
    transfer = staticmethod(services.deposit_create)


@extend_schema_view(create=extend_schema(summary="Withdraw from an account (operators; reason required)"))
class WithdrawalViewSet(_TransferViewSet):
    transfer = staticmethod(services.withdrawal_create)
