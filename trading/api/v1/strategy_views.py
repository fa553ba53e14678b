"""The strategy catalogue and backtests (ADR 0008). Thin: parse, call the service, render."""

from __future__ import annotations

from typing import cast

from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from portal.api.docs import PROBLEM_RESPONSES
from portal.api.pagination import CreatedCursorPagination
from portal.api.views import ApiView, ApiViewSet
from portal.errors import DomainError
from portal.models import User
from trading.api.v1.strategy_serializers import (
    BacktestEquitySerializer,
    BacktestFillSerializer,
    BacktestRequestSerializer,
    BacktestSerializer,
    StrategyLogLineSerializer,
    StrategyMarkSerializer,
    StrategySerializer,
    StrategyTypeSerializer,
    StrategyWriteSerializer,
)
from trading.models import Backtest, Strategy
from trading.strategies.backtests import BacktestRequest, backtest_get_visible, backtest_submit, backtests_visible_to
from trading.strategies.base import Caps
from trading.strategies.builtin import CATALOGUE
from trading.strategies.services import (
    StrategyDefinition,
    strategies_visible_to,
    strategy_create,
    strategy_delete,
    strategy_get_owned,
    strategy_get_visible,
    strategy_start,
    strategy_stop,
    strategy_update,
)


class StrategyTypesView(ApiView):
    @extend_schema(
        operation_id="strategy_types_list",
        summary="The strategy types: what each does and the JSON Schema of its parameters",
        responses={200: StrategyTypeSerializer(many=True), **PROBLEM_RESPONSES},
    )
    def get(self, request):
        return Response(StrategyTypeSerializer(list(CATALOGUE.values()), many=True).data)


class _FillsPagination(CursorPagination):
    ordering = ("seq",)
    page_size = 500
    page_size_query_param = "limit"
    max_page_size = 5000


@extend_schema_view(
    list=extend_schema(summary="Your backtests, newest first", responses={200: BacktestSerializer(many=True)}),
    retrieve=extend_schema(summary="One backtest and its metrics", responses={200: BacktestSerializer}),
)
class BacktestViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Backtests of a strategy type over stored candles, run by a job: POST answers 202 with the
    backtest and its job; follow the job at `jobs/{id}` or on the `jobs` WebSocket stream; the
    metrics, `equity` and `fills` appear when it succeeds."""

    serializer_class = BacktestSerializer
    pagination_class = CreatedCursorPagination
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Backtest.objects.none()
        return backtests_visible_to(cast(User, self.request.user))

    def get_object(self):
        return backtest_get_visible(user=cast(User, self.request.user), backtest_id=int(self.kwargs["pk"]))

    @extend_schema(
        summary="Start a backtest (a job): 202 with the backtest and its job",
        request=BacktestRequestSerializer,
        responses={202: BacktestSerializer, **PROBLEM_RESPONSES},
    )
    def create(self, request):
        payload = BacktestRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        backtest = backtest_submit(
            user=cast(User, request.user),
            request=BacktestRequest(
                kind=data["kind"],
                params=data["params"],
                symbol=data["symbol"],
                interval=data["interval"],
                start=data["start"],
                end=data["end"],
                starting_balance=data["starting_balance"],
                slippage_bps=data["slippage_bps"],
                caps=Caps(data.get("max_position"), data.get("max_order_qty"), data.get("max_daily_loss")),
                name=data["name"],
            ),
        )
        body = BacktestSerializer(backtest, context={"request": request}).data
        location = reverse("v1:job-detail", kwargs={"pk": backtest.job_id})
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})

    @extend_schema(
        summary="A backtest's equity, drawdown and price curves",
        responses={200: BacktestEquitySerializer, **PROBLEM_RESPONSES},
    )
    @action(detail=True, methods=["get"])
    def equity(self, request, pk=None):
        backtest = self.get_object()
        if backtest.equity is None:
            raise DomainError("not_finished", "The backtest has no result yet: its job has not succeeded.", status=409)
        return Response(BacktestEquitySerializer(backtest.equity).data)

    @extend_schema(
        summary="A backtest's fills, in order",
        responses={200: BacktestFillSerializer(many=True), **PROBLEM_RESPONSES},
    )
    @action(detail=True, methods=["get"], pagination_class=_FillsPagination)
    def fills(self, request, pk=None):
        backtest = self.get_object()
        page = self.paginate_queryset(backtest.fills.all())
        return self.get_paginated_response(BacktestFillSerializer(page, many=True).data)


def _definition(data: dict) -> StrategyDefinition:
    caps = {name: data[name] for name in ("max_position", "max_order_qty", "max_daily_loss") if name in data}
    return StrategyDefinition(
        name=data.get("name"),
        kind=data.get("kind"),
        params=data.get("params"),
        account_id=data.get("account"),
        symbol=data.get("symbol"),
        interval=data.get("interval"),
        caps=caps or None,
    )


@extend_schema_view(
    list=extend_schema(summary="Your strategies (operators: all)", responses={200: StrategySerializer(many=True)}),
    retrieve=extend_schema(summary="One strategy: status, position and P&L", responses={200: StrategySerializer}),
    create=extend_schema(
        summary="Define a strategy (stopped)",
        request=StrategyWriteSerializer,
        responses={201: StrategySerializer, **PROBLEM_RESPONSES},
    ),
    partial_update=extend_schema(
        summary="Change a stopped strategy",
        request=StrategyWriteSerializer,
        responses={200: StrategySerializer, **PROBLEM_RESPONSES},
    ),
    destroy=extend_schema(summary="Delete a stopped strategy that never placed an order", responses={204: None}),
)
class StrategyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    ApiViewSet,
):
    """Automated strategies (ADR 0008): a type from `strategy-types` with its parameters, the
    account and instrument it trades, its caps. `start` hands it to the runner; `stop` stops it
    and cancels its open orders. Its orders: `orders?strategy=<id>`, its fills:
    `trades?strategy=<id>`; its P&L over time: `marks`; its log: `log`. Only its owner changes,
    starts or deletes it; operators see every strategy and may stop any."""

    serializer_class = StrategySerializer
    pagination_class = CreatedCursorPagination
    lookup_value_regex = r"\d+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Strategy.objects.none()
        return strategies_visible_to(cast(User, self.request.user))

    def get_object(self):
        return strategy_get_visible(user=cast(User, self.request.user), strategy_id=int(self.kwargs["pk"]))

    def _owned(self) -> Strategy:
        return strategy_get_owned(user=cast(User, self.request.user), strategy_id=int(self.kwargs["pk"]))

    def create(self, request):
        payload = StrategyWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        user = cast(User, request.user)
        strategy = strategy_create(user=user, definition=_definition(payload.validated_data), actor=user)
        return Response(StrategySerializer(strategy).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        payload = StrategyWriteSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        strategy = strategy_update(
            strategy=self._owned(), definition=_definition(payload.validated_data), actor=request.user
        )
        return Response(StrategySerializer(strategy).data)

    def destroy(self, request, pk=None):
        strategy_delete(strategy=self._owned(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Start it: the runner takes it at its next tick",
        request=None,
        responses={200: StrategySerializer, **PROBLEM_RESPONSES},
    )
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        return Response(StrategySerializer(strategy_start(strategy=self._owned(), actor=request.user)).data)

    @extend_schema(
        summary="Stop it and cancel its open orders",
        request=None,
        responses={200: StrategySerializer, **PROBLEM_RESPONSES},
    )
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        strategy = strategy_stop(strategy=self.get_object(), actor=request.user, reason="by request")
        return Response(StrategySerializer(strategy).data)

    @extend_schema(
        summary="Its status, position and P&L (the same as the strategy)",
        responses={200: StrategySerializer, **PROBLEM_RESPONSES},
    )
    @action(detail=True, methods=["get"], url_path="status")
    def state(self, request, pk=None):
        return Response(StrategySerializer(self.get_object()).data)

    @extend_schema(
        summary="Its log, newest first (at most 500 lines)",
        responses={200: StrategyLogLineSerializer(many=True), **PROBLEM_RESPONSES},
    )
    @action(detail=True, methods=["get"])
    def log(self, request, pk=None):
        lines = self.get_object().log_lines.all()[:500]
        return Response(StrategyLogLineSerializer(lines, many=True).data)

    @extend_schema(
        summary="Its position and P&L at each bar's close, oldest first (the last 2,000)",
        responses={200: StrategyMarkSerializer(many=True), **PROBLEM_RESPONSES},
    )
    @action(detail=True, methods=["get"])
    def marks(self, request, pk=None):
        marks = list(self.get_object().marks.order_by("-at")[:2000])[::-1]
        return Response(StrategyMarkSerializer(marks, many=True).data)
