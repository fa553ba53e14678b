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
    StrategyTypeSerializer,
)
from trading.models import Backtest
from trading.strategies.backtests import BacktestRequest, backtest_get_visible, backtest_submit, backtests_visible_to
from trading.strategies.base import Caps
from trading.strategies.builtin import CATALOGUE


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
